"""Reads for the Sync history: always scoped to one merchant, paged by keyset so deep pages stay fast."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import Integer, bindparam, case, exists, func, literal_column, or_, select
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import AuditRow, RunKind, SyncRun, WebhookEvent, utcnow

PAGE_SIZE = 50
IN_FLIGHT = ("queued", "running", "retrying")
# The status filter's choices and their labels; "ignored" lists events no rule took, not runs.
STATUS_FILTERS = {
    "queued": "Queued",
    "running": "Running",
    "retrying": "Retrying",
    "waiting": "Waiting",
    "succeeded": "Succeeded",
    "held": "Held for review",
    "failed": "Failed",
    "skipped": "Skipped",
    "ignored": "Ignored (not synced)",
    "attention": "Needs attention",
}
STATUSES = tuple(STATUS_FILTERS)
# Finished runs a person has to look at: failed ones, and held ones awaiting review.
NEEDS_ATTENTION = ("failed", "held")


@dataclass(frozen=True)
class HistoryFilter:
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None
    search: str = ""
    account: int | None = None  # one of the merchant's Stripe accounts (always with the merchant's id)

    @classmethod
    def from_args(cls, args) -> HistoryFilter:
        def day(name):
            try:
                return date.fromisoformat(args.get(name, ""))
            except ValueError:
                return None

        status = args.get("status", "")
        account = args.get("account", "")
        return cls(
            status=status if status in STATUSES else "",
            date_from=day("from"),
            date_to=day("to"),
            search=(args.get("q") or "").strip()[:100],
            account=int(account) if account.isdigit() else None,
        )

    def as_args(self) -> dict:
        values = {"status": self.status, "from": self.date_from and self.date_from.isoformat(),
                  "to": self.date_to and self.date_to.isoformat(), "q": self.search, "account": self.account}
        return {k: v for k, v in values.items() if v}


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def _run_conditions(merchant_id: int, f: HistoryFilter) -> list:
    conditions = [SyncRun.merchant_id == merchant_id]
    if f.account is not None:
        conditions.append(SyncRun.stripe_account_id == f.account)
    if f.status == "attention":
        conditions.append(SyncRun.status.in_(NEEDS_ATTENTION))
    elif f.status and f.status != "ignored":
        conditions.append(SyncRun.status == f.status)
    if f.date_from:
        conditions.append(SyncRun.updated_at >= _start(f.date_from))
    if f.date_to:
        conditions.append(SyncRun.updated_at < _start(f.date_to + timedelta(days=1)))
    if f.search:
        like = f"%{f.search.lower()}%"
        conditions.append(or_(
            func.lower(SyncRun.stripe_invoice_number).like(like),
            func.lower(SyncRun.customer_name).like(like),
            func.lower(SyncRun.customer_email).like(like),
            SyncRun.stripe_invoice_id == f.search,
        ))
    return conditions


def encode_cursor(updated_at: datetime, row_id: int, kind: str = "run") -> str:
    """Where a page ended: a run's (last update, id), or an ignored event's (received, "e" id)."""
    return f"{updated_at.isoformat()}_{'e' if kind == 'event' else ''}{row_id}"


def _decode(cursor: str | None) -> tuple[datetime, str, int] | None:
    if not cursor or "_" not in cursor:
        return None
    stamp, _, row_id = cursor.rpartition("_")
    kind = "event" if row_id.startswith("e") else "run"
    try:
        moment = datetime.fromisoformat(stamp)
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)), kind, int(row_id.lstrip("e"))
    except ValueError:
        return None


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    position = _decode(cursor)
    return (position[0], position[2]) if position else None


@dataclass
class Page:
    rows: list
    next_cursor: str | None


LEDGER_MERCHANT = bindparam("ledger_merchant", type_=Integer)


@functools.cache
def _not_synced() -> tuple:
    """An invoice the rules left alone: its latest ignored invoice event, when the invoice has no run. Built
    once (building SQL expressions costs more than running them); the merchant is the bound `ledger_merchant`."""
    later = aliased(WebhookEvent)
    return (
        # A literal, so that the planner sees the partial index ix_webhook_events_ignored applies.
        WebhookEvent.merchant_id == LEDGER_MERCHANT, WebhookEvent.outcome == literal_column("'ignored'"),
        WebhookEvent.stripe_invoice_id.is_not(None), WebhookEvent.type.like("invoice.%"),
        # Correlated on (merchant, invoice): the planner seeks ix_sync_runs_invoice and the invoice's events.
        ~exists().where(SyncRun.merchant_id == WebhookEvent.merchant_id, SyncRun.stripe_invoice_id == WebhookEvent.stripe_invoice_id,
                        SyncRun.kind == literal_column(f"'{RunKind.INVOICE.value}'")),
        # "+ 0" keeps the planner on the invoice's few events rather than all the merchant's later ones.
        ~exists().where(later.stripe_invoice_id == WebhookEvent.stripe_invoice_id, later.merchant_id + 0 == WebhookEvent.merchant_id,
                        later.outcome == literal_column("'ignored'"), later.id > WebhookEvent.id),
    )


def _event_conditions(f: HistoryFilter) -> list:
    """Run with `{"ledger_merchant": merchant_id}` (see `_not_synced`)."""
    conditions = list(_not_synced())
    if f.account is not None:
        conditions.append(WebhookEvent.stripe_account_id == f.account)
    if f.date_from:
        conditions.append(WebhookEvent.received_at >= _start(f.date_from))
    if f.date_to:
        conditions.append(WebhookEvent.received_at < _start(f.date_to + timedelta(days=1)))
    if f.search:
        conditions.append(or_(WebhookEvent.stripe_invoice_id == f.search, WebhookEvent.stripe_event_id == f.search))
    return conditions


def _after(position, kind: str, moment_column, id_column) -> list:
    """Keyset conditions for rows of `kind` after `position` in the ledger's order: newest first, and at the
    same moment runs before events, then by id."""
    if position is None:
        return []
    moment, cursor_kind, row_id = position
    if cursor_kind == kind:
        # The first condition lets the database seek the index; the second breaks ties by id.
        return [moment_column <= moment, or_(moment_column < moment, id_column < row_id)]
    if kind == "run":  # the cursor is an event: the runs of its moment came before it
        return [moment_column < moment]
    return [moment_column <= moment]  # the cursor is a run: the events of its moment come after it


def ledger_page(merchant_id: int, f: HistoryFilter, cursor: str | None = None, size: int = PAGE_SIZE,
                runs: bool = True) -> Page:
    """The history's rows, newest first: the merchant's runs the filter selects and, unfiltered by status, the
    invoices the rules did not sync (their ignored events). Two keyset reads merged in Python: the runs'
    page bounds the events' read to the time that page spans, so it costs what the runs' page does."""
    position = _decode(cursor)
    run_rows: list = []
    if runs:
        query = select(SyncRun).where(*_run_conditions(merchant_id, f), *_after(position, "run", SyncRun.updated_at, SyncRun.id))
        run_rows = list(db.session.scalars(query.order_by(SyncRun.updated_at.desc(), SyncRun.id.desc()).limit(size + 1)))
    event_rows: list = []
    if f.status in ("", "ignored") or not runs:
        conditions = [*_event_conditions(f),
                      *_after(position, "event", WebhookEvent.received_at, WebhookEvent.id)]
        if len(run_rows) > size:  # events older than this page's last run cannot be on this page
            conditions.append(WebhookEvent.received_at >= run_rows[size - 1].updated_at)
        event_rows = list(db.session.scalars(select(WebhookEvent).where(*conditions).order_by(
            WebhookEvent.received_at.desc(), WebhookEvent.id.desc()).limit(size + 1), {"ledger_merchant": merchant_id}))
    merged = sorted([(_moment(r.updated_at), 1, r.id, r) for r in run_rows]
                    + [(_moment(e.received_at), 0, e.id, e) for e in event_rows], key=lambda t: t[:3], reverse=True)
    if len(merged) <= size:
        return Page([t[3] for t in merged], None)
    moment, rank, row_id, _ = merged[size - 1]
    return Page([t[3] for t in merged[:size]], encode_cursor(moment, row_id, "run" if rank else "event"))


def _moment(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def ledger_for_export(merchant_id: int, f: HistoryFilter, batch: int = 1000):
    """Every row the filter selects (runs and invoices not synced), newest first, read in batches."""
    cursor = None
    while True:
        page = ledger_page(merchant_id, f, cursor, size=batch, runs=f.status != "ignored")
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def failed_runs(merchant_id: int) -> list[SyncRun]:
    """The merchant's failed runs (Retry all failed), through the (merchant, status, updated_at) index."""
    return list(db.session.scalars(select(SyncRun).where(
        SyncRun.merchant_id == merchant_id, SyncRun.status == "failed").order_by(SyncRun.updated_at, SyncRun.id)))


def run_for_merchant(merchant_id: int, run_id: int) -> SyncRun | None:
    return db.session.scalar(select(SyncRun).where(SyncRun.id == run_id, SyncRun.merchant_id == merchant_id))


PAYOUTS_SHOWN = 50


def payout_runs(merchant_id: int, limit: int = PAYOUTS_SHOWN) -> list[SyncRun]:
    """The merchant's latest payouts, newest first."""
    return list(db.session.scalars(select(SyncRun).where(
        SyncRun.merchant_id == merchant_id, SyncRun.kind == RunKind.PAYOUT, SyncRun.superseded_by.is_(None),
    ).order_by(SyncRun.created_at.desc(), SyncRun.id.desc()).limit(limit)))


def event_for_merchant(merchant_id: int, event_id: int) -> WebhookEvent | None:
    return db.session.scalar(select(WebhookEvent).where(WebhookEvent.id == event_id, WebhookEvent.merchant_id == merchant_id))


@dataclass
class Timeline:
    events: list[WebhookEvent]
    runs: list[SyncRun]
    audit: dict[int, list[AuditRow]]


def invoice_timeline(merchant_id: int, stripe_invoice_id: str) -> Timeline | None:
    events = list(db.session.scalars(select(WebhookEvent).where(
        WebhookEvent.merchant_id == merchant_id, WebhookEvent.stripe_invoice_id == stripe_invoice_id
    ).order_by(WebhookEvent.received_at, WebhookEvent.id)))
    runs = list(db.session.scalars(select(SyncRun).where(
        SyncRun.merchant_id == merchant_id, SyncRun.stripe_invoice_id == stripe_invoice_id
    ).order_by(SyncRun.created_at, SyncRun.id)))
    if not events and not runs:
        return None
    audit: dict[int, list[AuditRow]] = {run.id: [] for run in runs}
    if runs:
        for row in db.session.scalars(select(AuditRow).where(
            AuditRow.merchant_id == merchant_id, AuditRow.run_id.in_([r.id for r in runs])
        ).order_by(AuditRow.id)):
            audit[row.run_id].append(row)
    return Timeline(events, runs, audit)


@dataclass
class Overview:
    today: dict[str, int]
    week: dict[str, int]
    per_day: list[tuple[date, int, int]]  # (day, succeeded, failed)
    attention: int  # failed runs, at any time
    held: int  # runs held for review, at any time


def overview(merchant_id: int) -> Overview:
    now = utcnow()
    today_start = _start(now.date())
    week_start = _start(now.date() - timedelta(days=6))

    def counts(since: datetime) -> dict[str, int]:
        # Naming the statuses lets the (merchant, status, updated_at) index seek each one's range.
        rows = db.session.execute(select(SyncRun.status, func.count()).where(
            SyncRun.merchant_id == merchant_id, SyncRun.status.in_(SyncRun.STATUSES), SyncRun.updated_at >= since,
        ).group_by(SyncRun.status)).all()
        return {status: count for status, count in rows}

    day = func.date(SyncRun.updated_at)
    day_rows = db.session.execute(select(day, SyncRun.status, func.count()).where(
        SyncRun.merchant_id == merchant_id, SyncRun.updated_at >= week_start,
        SyncRun.status.in_(("succeeded", "failed"))).group_by(day, SyncRun.status)).all()
    days = {now.date() - timedelta(days=n): [0, 0] for n in range(6, -1, -1)}
    for day_value, status, count in day_rows:
        key = day_value if isinstance(day_value, date) else date.fromisoformat(str(day_value)[:10])
        if key in days:
            days[key][0 if status == "succeeded" else 1] += count
    # One seek per status on the (merchant, status, updated_at) index.
    waiting = dict(db.session.execute(select(SyncRun.status, func.count()).where(
        SyncRun.merchant_id == merchant_id, SyncRun.status.in_(NEEDS_ATTENTION)).group_by(SyncRun.status)).all())
    today, week = counts(today_start), counts(week_start)
    # Invoices the rules left alone, this week and today, in one read of the week's ignored events.
    ignored_week, ignored_today = db.session.execute(select(
        func.count(), func.coalesce(func.sum(case((WebhookEvent.received_at >= today_start, 1), else_=0)), 0),
    ).where(*_not_synced(), WebhookEvent.received_at >= week_start), {"ledger_merchant": merchant_id}).one()
    if ignored_week:
        week["ignored"] = ignored_week
    if ignored_today:
        today["ignored"] = ignored_today
    return Overview(today, week, [(d, s, f) for d, (s, f) in days.items()], waiting.get("failed", 0), waiting.get("held", 0))


def events_waiting(merchant_id: int) -> int:
    """Stripe events stored but not decided yet (their job has not read them): a handful at most, found
    through the partial index on waiting events."""
    return db.session.scalar(select(func.count()).select_from(WebhookEvent).where(
        # The literal lets the planner prove the partial index applies, and "+ 0" keeps it off the merchant's
        # index (every event the merchant ever had): the waiting ones are a handful.
        WebhookEvent.outcome == literal_column("'received'"), WebhookEvent.merchant_id + 0 == merchant_id)) or 0
