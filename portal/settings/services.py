"""Connection settings: storing a merchant's secrets and checking them against Stripe and e-conomic."""

from __future__ import annotations

from dataclasses import dataclass

import stripe
from sqlalchemy import select

from ..extensions import db
from ..models import Connection, Merchant
from ..sync.economic import EconomicClient, EconomicError
from ..sync.stripe_source import check_invoice_access, key_mode, stripe_client


def mask_secret(value: str | None) -> str:
    """What the portal shows of a stored secret: its last four characters, nothing more."""
    if not value:
        return ""
    return "…" + value[-4:] if len(value) > 8 else "…"


def connection_for(merchant: Merchant) -> Connection:
    connection = db.session.scalar(select(Connection).where(Connection.merchant_id == merchant.id))
    if connection is None:
        connection = Connection(merchant_id=merchant.id)
        db.session.add(connection)
    return connection


def connection_update(connection: Connection, values: dict[str, str | None]) -> list[str]:
    """Store the secrets given; a blank field keeps what is stored. Returns the names changed."""
    changed = []
    for name in Connection.SECRET_FIELDS:
        value = (values.get(name) or "").strip()
        if value and value != getattr(connection, name):
            setattr(connection, name, value)
            changed.append(name)
    return changed


@dataclass
class CheckResult:
    ok: bool
    message: str


def connection_check_stripe(connection: Connection, api_base: str) -> CheckResult:
    if not connection.stripe_secret_key:
        return CheckResult(False, "Enter and save a Stripe secret key first.")
    try:
        check_invoice_access(stripe_client(connection.stripe_secret_key, api_base, max_network_retries=0))
    except stripe.StripeError as error:
        reason = error.user_message or getattr(error, "_message", None) or str(error) or error.__class__.__name__
        return CheckResult(False, f"Stripe refused: {reason}")
    mode = key_mode(connection.stripe_secret_key)
    return CheckResult(True, f"Connected to Stripe ({mode} mode); the key can read invoices.")


def connection_check_economic(connection: Connection, base_url: str, timeout: float) -> CheckResult:
    client = economic_client_for(connection, base_url, timeout)
    if client is None:
        return CheckResult(False, "Enter and save both e-conomic tokens first.")
    try:
        me = client.get_self()
    except EconomicError as error:
        return CheckResult(False, str(error))
    company = (me.get("company") or {}).get("name") or "your company"
    agreement = me.get("agreementNumber")
    suffix = f" (agreement {agreement})" if agreement else ""
    return CheckResult(True, f"Connected to e-conomic as {company}{suffix}.")


def economic_client_for(connection: Connection, base_url: str, timeout: float) -> EconomicClient | None:
    if not (connection.economic_app_secret_token and connection.economic_agreement_grant_token):
        return None
    return EconomicClient(
        connection.economic_app_secret_token,
        connection.economic_agreement_grant_token,
        base_url=base_url,
        timeout=(5.0, timeout),
    )
