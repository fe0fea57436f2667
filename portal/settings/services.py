"""The e-conomic connection: storing its tokens and checking them against e-conomic (Stripe accounts: stripe_connect.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..extensions import db
from ..models import Connection, Merchant, utcnow
from ..sync.economic import EconomicClient, EconomicError


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


@dataclass
class CheckResult:
    ok: bool
    message: str


def connection_check_economic(connection: Connection, base_url: str, timeout: float) -> CheckResult:
    """Ask e-conomic's `/self` whether the stored tokens still open the agreement, and record the answer
    as the connection's state (the caller commits)."""
    client = economic_client_for(connection, base_url, timeout)
    if client is None:
        return CheckResult(False, "Enter and save both e-conomic tokens first.")
    try:
        me = client.get_self()
    except EconomicError as error:
        result = CheckResult(False, str(error))
    else:
        connection.economic_company_name, connection.economic_agreement_number = economic_agreement_of(me)
        result = CheckResult(True, economic_connected_message(connection))
    connection_economic_check_record(connection, result)
    return result


def economic_client_for(connection: Connection, base_url: str, timeout: float) -> EconomicClient | None:
    if not (connection.economic_app_secret_token and connection.economic_agreement_grant_token):
        return None
    return economic_client(connection.economic_app_secret_token, connection.economic_agreement_grant_token, base_url, timeout)


def economic_client(app_secret_token: str, agreement_grant_token: str, base_url: str, timeout: float) -> EconomicClient:
    return EconomicClient(app_secret_token, agreement_grant_token, base_url=base_url, timeout=(5.0, timeout))


def economic_agreement_of(me: dict) -> tuple[str | None, int | None]:
    """The company name and agreement number in e-conomic's `/self` answer."""
    name = ((me.get("company") or {}).get("name") or "").strip() or None
    number = me.get("agreementNumber")
    return (name[:255] if name else None), (number if isinstance(number, int) else None)


def economic_connected_message(connection: Connection) -> str:
    company = connection.economic_company_name or "your company"
    number = connection.economic_agreement_number
    return f"Connected to e-conomic as {company}" + (f" (agreement {number})." if number else ".")


def connection_economic_check_record(connection: Connection, result: CheckResult) -> None:
    connection.economic_checked_at = utcnow()
    connection.economic_check_ok = result.ok
    connection.economic_check_message = result.message[:1000]


def connection_economic_connect(connection: Connection, app_secret_token: str, agreement_grant_token: str,
                                me: dict) -> CheckResult:
    """Store tokens that `/self` (its answer `me`) just accepted, with the agreement they open."""
    connection.economic_app_secret_token = app_secret_token
    connection.economic_agreement_grant_token = agreement_grant_token
    connection.economic_company_name, connection.economic_agreement_number = economic_agreement_of(me)
    connection.economic_connected_at = utcnow()
    result = CheckResult(True, economic_connected_message(connection))
    connection_economic_check_record(connection, result)
    return result


def connection_economic_disconnect(connection: Connection) -> None:
    """Forget the e-conomic tokens and everything known about the agreement they opened."""
    for name in ("economic_app_secret_token", "economic_agreement_grant_token", "economic_company_name",
                 "economic_agreement_number", "economic_connected_at", "economic_checked_at",
                 "economic_check_ok", "economic_check_message"):
        setattr(connection, name, None)
