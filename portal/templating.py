"""Template filters shared by the screens."""

from __future__ import annotations

from datetime import datetime, timezone

from .sync.money import from_minor


def amount(total_minor: int | None, currency: str | None) -> str:
    """10775.00 DKK from Stripe's minor units, with the currency's own number of decimals."""
    if total_minor is None or not currency:
        return ""
    value = from_minor(total_minor, currency)
    return f"{value:,} {currency.upper()}"


def when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def register(app) -> None:
    app.add_template_filter(amount, "amount")
    app.add_template_filter(when, "when")
