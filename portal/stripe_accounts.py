"""A merchant's Stripe accounts, read for the screens and the jobs. Scoped by merchant id: an account id
from a form or URL is only ever looked up together with the signed-in merchant's id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from .extensions import db
from .models import StripeAccount, WebhookEvent


def stripe_accounts_of(merchant_id: int) -> list[StripeAccount]:
    """The merchant's Stripe accounts, oldest first (the first is the one it started with)."""
    return list(db.session.scalars(select(StripeAccount).where(StripeAccount.merchant_id == merchant_id)
                                   .order_by(StripeAccount.id)))


def stripe_account_of(merchant_id: int, stripe_account_id: int | str | None) -> StripeAccount | None:
    """The merchant's account with this id, or None (another merchant's id, or not a number)."""
    try:
        account_id = int(stripe_account_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return db.session.scalar(select(StripeAccount).where(StripeAccount.id == account_id,
                                                         StripeAccount.merchant_id == merchant_id))


def stripe_account_readable(merchant_id: int) -> StripeAccount | None:
    """An account whose key can read Stripe, for the settings screens' previews and lists (the first connected);
    None when no account has a key yet."""
    return db.session.scalar(select(StripeAccount).where(StripeAccount.merchant_id == merchant_id,
                                                         StripeAccount.secret_key.is_not(None))
                             .order_by(StripeAccount.id).limit(1))


def last_event_of(merchant_id: int, stripe_account_id: int) -> tuple[datetime, str] | None:
    """When the account's last Stripe event came, and its type: one seek on the (account, id) index, whatever
    the number of events stored."""
    last = db.session.execute(select(WebhookEvent.received_at, WebhookEvent.type).where(
        WebhookEvent.stripe_account_id == stripe_account_id, WebhookEvent.merchant_id == merchant_id)
        .order_by(WebhookEvent.id.desc()).limit(1)).first()
    return (last.received_at, last.type) if last else None
