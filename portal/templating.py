"""Template filters shared by the screens."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import g, has_request_context
from flask_login import current_user
from markupsafe import Markup, escape

from .merchant_config import time_zone_of
from .sync.money import from_minor

DEFAULT_TIME_ZONE = "Europe/Copenhagen"  # SyncSettings.time_zone's default


def amount(total_minor: int | None, currency: str | None) -> str:
    """10775.00 DKK from Stripe's minor units, with the currency's own number of decimals."""
    if total_minor is None or not currency:
        return ""
    value = from_minor(total_minor, currency)
    return f"{value:,} {currency.upper()}"


def when(moment: datetime | None) -> str:
    """A moment as plain text in the merchant's time zone, named ("2026-03-05 10:30 CET"), for text built in
    Python; templates use the `when` filter."""
    if moment is None:
        return ""
    return local_moment(moment).strftime("%Y-%m-%d %H:%M %Z")


def zone_named(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIME_ZONE)


def merchant_zone() -> ZoneInfo:
    """The signed-in merchant's time zone (Customer & product settings), read once per request; reads only."""
    if not has_request_context():
        return zone_named(None)
    zone = g.get("merchant_zone")
    if zone is None:
        name = time_zone_of(current_user.merchant_id) if current_user.is_authenticated else None
        zone = g.merchant_zone = zone_named(name)
    return zone


def local_moment(moment: datetime, zone: ZoneInfo | None = None) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(zone or merchant_zone())


def short_when(moment: datetime, zone: ZoneInfo, now: datetime | None = None) -> str:
    """"today 14:05", "yesterday 09:12", "tomorrow 08:00", "28 Nov 09:12", "28 Nov 2025": short, local."""
    local = local_moment(moment, zone)
    today = local_moment(now or datetime.now(timezone.utc), zone).date()
    clock = local.strftime("%H:%M")
    days = (local.date() - today).days
    if days == 0:
        return f"today {clock}"
    if days == -1:
        return f"yesterday {clock}"
    if days == 1:
        return f"tomorrow {clock}"
    if local.year == today.year:
        return f"{local.day} {local.strftime('%b')} {clock}"
    return f"{local.day} {local.strftime('%b %Y')}"


def iso_local(moment: datetime | None, zone: ZoneInfo | None = None) -> str:
    """ISO 8601 with the offset, in the merchant's time zone: 2026-11-20T14:00:00+01:00."""
    if moment is None:
        return ""
    return local_moment(moment, zone).isoformat(timespec="seconds")


def when_html(moment: datetime | None) -> Markup:
    """The `when` filter: a short local time in a <time> element whose title gives it in full."""
    if moment is None:
        return Markup("")
    zone = merchant_zone()
    local = local_moment(moment, zone)
    full = f"{local.strftime('%Y-%m-%d %H:%M:%S')} {local.tzname()} ({zone.key})"
    return Markup(f'<time datetime="{escape(local.isoformat(timespec="seconds"))}" title="{escape(full)}">'
                  f'{escape(short_when(moment, zone))}</time>')


def register(app) -> None:
    app.add_template_filter(amount, "amount")
    app.add_template_filter(when_html, "when")
    app.add_template_filter(iso_local, "iso_local")

