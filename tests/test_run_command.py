"""`make run` end to end: web, worker and the embedded Redis start, the login works, Ctrl-C stops all."""

import re
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from .helpers import csrf_token_from
from .live import alive, descendants, running_portal


def embedded_redis_url(tmp_path: Path) -> str:
    """The URL `make run` keeps for `flask` commands run beside it; only its owner may read it."""
    url_file = tmp_path / "instance" / "embedded-redis.url"
    assert url_file.stat().st_mode & 0o777 == 0o600
    return url_file.read_text().strip()


def assert_embedded_redis_is_locked(portal, tmp_path: Path) -> None:
    """Nobody reaches the embedded Valkey without the password, which only web and worker are given."""
    url = embedded_redis_url(tmp_path)
    address = urlsplit(url)
    assert (address.hostname, address.username, address.path) == ("127.0.0.1", "", "/0")
    assert len(address.password) >= 43  # secrets.token_urlsafe(32)
    assert f"Embedded Redis-compatible server (Valkey) on 127.0.0.1:{address.port}, password-protected" in portal.log()
    assert address.password not in portal.log()

    with pytest.raises(redis.AuthenticationError, match="Authentication required"):  # NOAUTH
        redis.Redis(host="127.0.0.1", port=address.port, retry=Retry(NoBackoff(), 0)).ping()
    assert redis.Redis.from_url(url).ping()

    processes = {pid: Path(f"/proc/{pid}/cmdline").read_text().split("\0") for pid in descendants(portal.process.pid)}
    web_and_worker = [pid for pid, args in processes.items()
                      if "worker.py" in " ".join(args) or "gunicorn" in args]
    assert len(web_and_worker) >= 3  # the worker, the gunicorn master and its workers
    for pid in web_and_worker:
        assert f"REDIS_URL={url}\0" in Path(f"/proc/{pid}/environ").read_text(errors="replace")
    for args in processes.values():
        assert address.password not in " ".join(args)


def test_make_run_starts_everything_and_ctrl_c_leaves_no_process(tmp_path):
    with running_portal(tmp_path) as portal:
        log = portal.log()
        assert f"Invoice Sync is running on {portal.base_url}" in log
        assert "Embedded Redis-compatible server (Valkey)" in log
        email = re.search(r"e-mail:\s+(\S+)", log).group(1)
        password = re.search(r"password:\s+(\S+)", log).group(1)

        session = requests.Session()
        token = csrf_token_from(session.get(portal.base_url + "/login").text)
        response = session.post(
            portal.base_url + "/login", data={"email": email, "password": password, "csrf_token": token}
        )
        assert response.url == portal.base_url + "/"
        assert "Getting set up" in response.text

        deadline = time.monotonic() + 20
        while "Listening on invoice-sync" not in portal.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Listening on invoice-sync" in portal.log()  # the RQ worker is up too
        assert_embedded_redis_is_locked(portal, tmp_path)

        processes = descendants(portal.process.pid)
        assert len(processes) >= 4  # gunicorn master + workers, the RQ worker, Valkey
        portal.process.send_signal(signal.SIGINT)
        assert portal.process.wait(timeout=30) == 0
        assert [pid for pid in processes if alive(pid)] == []
        assert "Stopped." in portal.log()
        assert not (tmp_path / "instance" / "embedded-redis.url").exists()


def test_second_start_keeps_the_data_and_prints_no_new_login(tmp_path):
    env = {"PORTAL_ADMIN_EMAIL": "ops@shop.test", "PORTAL_ADMIN_PASSWORD": "a long deployment password", "PORTAL_MERCHANT_NAME": "Shop ApS"}
    with running_portal(tmp_path, env) as portal:
        assert "Created merchant “Shop ApS”" in portal.log()
        assert "ops@shop.test" in portal.log()
        assert "a long deployment password" not in portal.log()
        first_redis_password = urlsplit(embedded_redis_url(tmp_path)).password
    with running_portal(tmp_path, env) as portal:
        assert "Created merchant" not in portal.log()
        assert urlsplit(embedded_redis_url(tmp_path)).password != first_redis_password  # made anew each start
        session = requests.Session()
        token = csrf_token_from(session.get(portal.base_url + "/login").text)
        response = session.post(
            portal.base_url + "/login",
            data={"email": "ops@shop.test", "password": "a long deployment password", "csrf_token": token},
        )
        assert "Shop ApS" in response.text
