"""The audit log: who changed which setting, connection or user, and when.

A `before_flush` listener on the app's session looks at the new, changed and removed rows of the models in
AUDITED and adds one AuditEvent per row, with the old and new value of each changed column. Secret columns
(encrypted ones, password and token hashes) are recorded as set, changed or removed, never with a value.

Only changes someone made are recorded: in a web request (by the signed-in user) or inside `acting_as(…)`
(the command line, someone accepting an invitation). The worker's bookkeeping happens in neither, so it
is never audited. The Flask-free sync engine does not import this module.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import has_request_context
from flask_login import current_user
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from .crypto import EncryptedString
from .extensions import db
from .models import (
    AuditArea,
    AuditEvent,
    Connection,
    FieldMapping,
    Invitation,
    JournalSettings,
    StripeAccount,
    SyncRule,
    SyncSettings,
    User,
    VatMapping,
)


@dataclass(frozen=True)
class Audited:
    """How changes to one model are recorded."""

    area: AuditArea
    subject: Callable[[Any], str]  # the row, in the merchant's words ("Invoice Sync Rules", "anna@bikes.dk")
    secrets: tuple[str, ...] = ()  # recorded without values, besides every encrypted column
    ignore: tuple[str, ...] = ()  # bookkeeping, not a change anybody made
    created: str = "created"
    removed: str = "removed"


# Every audited model. A new settings or connection table gets a line here.
AUDITED: dict[type, Audited] = {
    SyncRule: Audited(AuditArea.SETTINGS, lambda row: "Invoice Sync Rules"),
    FieldMapping: Audited(AuditArea.SETTINGS, lambda row: f"Field mapping {row.target}"),
    SyncSettings: Audited(AuditArea.SETTINGS, lambda row: "Customer & product settings"),
    VatMapping: Audited(AuditArea.SETTINGS, lambda row: f"VAT mapping {row.treatment}"),
    JournalSettings: Audited(AuditArea.SETTINGS, lambda row: "Journal entries"),
    Connection: Audited(AuditArea.CONNECTION, lambda row: "e-conomic connection"),
    StripeAccount: Audited(AuditArea.CONNECTION, lambda row: f"Stripe account {row.name}",
                           ignore=("checked_at", "check_ok", "check_message")),
    User: Audited(AuditArea.USER, lambda row: row.email, secrets=("password_hash",),
                  ignore=("session_version", "last_login_at"), created="added"),
    Invitation: Audited(AuditArea.USER, lambda row: f"Invitation for {row.email}", secrets=("token_hash",),
                        ignore=("invited_by_id", "invited_by_email", "expires_at"), created="invited", removed="revoked"),
}

ALWAYS_IGNORED = ("id", "merchant_id", "created_at", "updated_at")
CHANGE_FIELD_LABELS = {"password_hash": "Password", "token_hash": "Link"}


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    label: str  # the e-mail, or "command line"


_acting_as: ContextVar[Actor | None] = ContextVar("audit_acting_as", default=None)


@contextlib.contextmanager
def acting_as(label: str, user_id: int | None = None) -> Iterator[None]:
    """Record changes made inside as made by `label` (outside a signed-in request: the CLI, an invitee)."""
    token = _acting_as.set(Actor(user_id, label))
    try:
        yield
    finally:
        _acting_as.reset(token)


def current_actor() -> Actor | None:
    """Who is making changes now, or None when nobody is (the worker)."""
    actor = _acting_as.get()
    if actor is not None:
        return actor
    if has_request_context() and current_user.is_authenticated:
        return Actor(current_user.id, current_user.email)
    return None


def audit_listen() -> None:
    """Start recording changes made through the app's session (once per process, whatever the apps)."""
    if not event.contains(db.session, "before_flush", _record_changes):
        event.listen(db.session, "before_flush", _record_changes)


def _record_changes(session: Session, flush_context, instances) -> None:
    rows = [(row, "new") for row in session.new] + [(row, "dirty") for row in session.dirty] \
        + [(row, "deleted") for row in session.deleted]
    rows = [(row, state) for row, state in rows if type(row) in AUDITED]
    if not rows:
        return
    actor = current_actor()
    if actor is None:
        return
    for row, state in rows:
        audited = AUDITED[type(row)]
        merchant_id = getattr(row, "merchant_id", None) or getattr(getattr(row, "merchant", None), "id", None)
        if merchant_id is None:
            continue
        if state == "new":
            action, changes = audited.created, _values_set(row, audited)
            if not changes and audited.area is not AuditArea.USER:
                continue  # a settings row made with its defaults on first visit: nothing was chosen
        elif state == "deleted":
            action, changes = audited.removed, []
        else:
            action, changes = "changed", _changes(row, audited)
            if not changes:
                continue
        session.add(AuditEvent(
            merchant_id=merchant_id, user_id=actor.user_id, actor_email=actor.label[:254], area=audited.area.value,
            action=action, subject=audited.subject(row)[:300], changes=json.dumps(changes),
        ))


def _columns(row, audited: Audited):
    for column in inspect(type(row)).columns:
        name = column.key
        if name in ALWAYS_IGNORED or name in audited.ignore:
            continue
        secret = name in audited.secrets or isinstance(column.type, EncryptedString)
        yield name, column, secret


def _values_set(row, audited: Audited) -> list[dict]:
    """What a new row was made with: the values chosen, leaving out the columns' defaults."""
    changes = []
    for name, column, secret in _columns(row, audited):
        value = getattr(row, name)
        if value is None:
            continue
        default = column.default.arg if column.default is not None and column.default.is_scalar else None
        if default is not None and _plain(value) == _plain(default):
            continue
        changes.append({"field": _label(name), "secret": "set"} if secret else {"field": _label(name), "old": None, "new": _plain(value)})
    return changes


def _changes(row, audited: Audited) -> list[dict]:
    state = inspect(row)
    changes = []
    for name, _column, secret in _columns(row, audited):
        history = state.attrs[name].history
        if not history.has_changes():
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        if secret:
            how = "removed" if new is None else "set" if old is None else "changed"
            changes.append({"field": _label(name), "secret": how})
        elif _plain(old) != _plain(new):
            changes.append({"field": _label(name), "old": _plain(old), "new": _plain(new)})
    return changes


def _label(name: str) -> str:
    return CHANGE_FIELD_LABELS.get(name) or name.replace("_", " ").capitalize()


def _plain(value: Any) -> str | int | float | bool | None:
    """A value as JSON keeps it: enums by their value, dates as ISO text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
