"""Small helpers the tests share: CSRF tokens, signed Stripe deliveries, accounts."""

from __future__ import annotations

import hashlib
import html
import hmac
import json
import re
import time
from dataclasses import dataclass

from portal.auth.services import merchant_create, user_create
from portal.extensions import db

PASSWORD = "correct horse battery staple"

_CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')


def csrf_token_from(html: str) -> str:
    match = _CSRF_INPUT.search(html) or _CSRF_HEADER.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def csrf_token(client, path: str = "/login") -> str:
    return csrf_token_from(client.get(path).get_data(as_text=True))


@dataclass(frozen=True)
class Account:
    merchant_id: int
    merchant_name: str
    webhook_key: str
    user_id: int
    email: str


def make_account(merchant_name: str = "Acme ApS", email: str = "owner@acme.test", password: str = PASSWORD) -> Account:
    """A merchant and its admin (call inside an app context); plain values, usable after it closes."""
    merchant = merchant_create(merchant_name)
    user = user_create(merchant, email, password, is_admin=True)
    db.session.commit()
    return Account(merchant.id, merchant.name, merchant.webhook_key, user.id, user.email)


def login(client, email: str, password: str = PASSWORD, next_url: str | None = None):
    token = csrf_token(client)
    path = "/login" + (f"?next={next_url}" if next_url else "")
    return client.post(path, data={"email": email, "password": password, "csrf_token": token})


def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header exactly as Stripe makes it: t=<unix>,v1=<HMAC-SHA256 of "t.payload">."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_payload(event: dict) -> bytes:
    return json.dumps(event).encode()


def page_text(client, path: str) -> str:
    """A page's text as a person reads it (entities unescaped), after checking it answered 200."""
    response = client.get(path)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))
