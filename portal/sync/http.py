"""The HTTP sessions our API clients share: one per thread and base address, kept between calls.

Kept, a session reuses its connections (no new TCP and TLS handshake per call). It also reads the
environment once: a plain `requests` session looks for proxy and CA-bundle variables on every request,
a scan of the whole environment that cost about 2 ms a call here, several times an e-conomic call.
"""

from __future__ import annotations

import os
import threading

import requests
from requests.utils import get_environ_proxies

_local = threading.local()


def http_session(base_url: str) -> requests.Session:
    """This thread's session for `base_url`, with the proxy (HTTPS_PROXY, NO_PROXY, …) and CA bundle
    (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) the environment sets for it, as requests would have chosen."""
    sessions: dict[str, requests.Session] = _local.__dict__.setdefault("sessions", {})
    session = sessions.get(base_url)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # the environment is read here, once, not on every request
        session.proxies.update(get_environ_proxies(base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        sessions[base_url] = session
    return session
