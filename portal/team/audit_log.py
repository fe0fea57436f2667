"""The audit log page: who changed which setting, connection or user, and when; newest first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import abort, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import select

from ..extensions import db
from ..merchant_config import time_zone_of
from ..models import AuditArea, AuditEvent, as_utc
from . import bp

PAGE_SIZE = 50


@dataclass(frozen=True)
class Change:
    field: str
    old: str
    new: str
    secret: str | None  # "set", "changed", "removed": a secret, told without its value


@dataclass(frozen=True)
class AuditLine:
    id: int
    at: str
    actor: str
    area: str
    action: str
    subject: str
    changes: list[Change]


def audit_events_page(merchant_id: int, area: AuditArea | None, before_id: int | None,
                      limit: int = PAGE_SIZE) -> tuple[list[AuditEvent], int | None]:
    """One page of the merchant's audit events, newest first (keyset by id); and the id to continue before."""
    query = select(AuditEvent).where(AuditEvent.merchant_id == merchant_id)
    if area is not None:
        query = query.where(AuditEvent.area == area.value)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    events = list(db.session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(events) > limit
    events = events[:limit]
    return events, (events[-1].id if more else None)


def merchant_time_zone(merchant_id: int) -> tuple[ZoneInfo | timezone, str]:
    """The time zone set in the Customer & product settings, else UTC; and its name for the page."""
    name = time_zone_of(merchant_id)
    try:
        return (ZoneInfo(name), name) if name else (timezone.utc, "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc, "UTC"


def audit_line(event: AuditEvent, zone) -> AuditLine:
    at = as_utc(event.at)
    changes = [
        Change(item["field"], _shown(item.get("old")), _shown(item.get("new")), item.get("secret"))
        for item in json.loads(event.changes or "[]")
    ]
    return AuditLine(event.id, at.astimezone(zone).strftime("%Y-%m-%d %H:%M"), event.actor_email,
                     AuditArea(event.area).label, event.action, event.subject, changes)


def _shown(value) -> str:
    if value is None or value == "":
        return "—"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


@bp.route("/audit")
@login_required
def audit_log():
    area_value = request.args.get("area") or None
    try:
        area = AuditArea(area_value) if area_value else None
    except ValueError:
        abort(404)
    before = request.args.get("before", type=int)
    events, next_before = audit_events_page(current_user.merchant_id, area, before)
    zone, zone_name = merchant_time_zone(current_user.merchant_id)
    return render_template(
        "team/audit.html", lines=[audit_line(event, zone) for event in events], next_before=next_before,
        area=area, areas=list(AuditArea), zone_name=zone_name, first_page=before is None,
    )
