"""Small helpers the tests share: CSRF tokens, signed Stripe deliveries, accounts."""

from __future__ import annotations

import hashlib
import html
import hmac
import json
import re
import time
from dataclasses import dataclass

from sqlalchemy import select

from portal.auth.services import merchant_create, user_create
from portal.extensions import db
from portal.models import Role, StripeAccount

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
    stripe_account_id: int  # the merchant's first Stripe account, whose webhook URL `webhook_key` is


def make_account(merchant_name: str = "Acme ApS", email: str = "owner@acme.test", password: str = PASSWORD) -> Account:
    """A merchant and its owner (call inside an app context); plain values, usable after it closes."""
    merchant = merchant_create(merchant_name)
    user = user_create(merchant, email, password, role=Role.OWNER)
    db.session.commit()
    first = merchant.stripe_accounts[0]
    return Account(merchant.id, merchant.name, first.webhook_key, user.id, user.email, first.id)


def first_stripe_account(merchant_id: int) -> int:
    """The id of the merchant's first Stripe account (call inside an app context)."""
    return db.session.scalar(select(StripeAccount.id).where(StripeAccount.merchant_id == merchant_id).order_by(StripeAccount.id))


def stripe_connect(merchant_id: int, secret_key: str | None = None, webhook_secret: str | None = None,
                   label: str | None = None, new: bool = False) -> StripeAccount:
    """Give the merchant's first Stripe account (or, with `new`, another one) a key and signing secret, as the
    Connections page stores them (call inside an app context; the caller commits)."""
    account = None if new else db.session.scalar(
        select(StripeAccount).where(StripeAccount.merchant_id == merchant_id).order_by(StripeAccount.id))
    if account is None:
        account = StripeAccount(merchant_id=merchant_id)
        db.session.add(account)
    account.secret_key, account.webhook_secret = secret_key, webhook_secret
    if label:
        account.label = label
    db.session.flush()
    return account


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
