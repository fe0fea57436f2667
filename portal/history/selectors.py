"""Reads for the Sync history: always scoped to one merchant, paged by keyset so deep pages stay fast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, or_, select

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
    "ignored": "Ignored",
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
    if f.status and f.status != "ignored":
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


def encode_cursor(updated_at: datetime, row_id: int) -> str:
    return f"{updated_at.isoformat()}_{row_id}"


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    if not cursor or "_" not in cursor:
        return None
    stamp, _, row_id = cursor.rpartition("_")
    try:
        moment = datetime.fromisoformat(stamp)
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)), int(row_id)
    except ValueError:
        return None


@dataclass
class Page:
    rows: list
    next_cursor: str | None


def _keyset_page(query, moment_column, id_column, cursor: str | None, size: int) -> Page:
    """Newest first by (moment, id); `cursor` is where the previous page ended."""
    position = decode_cursor(cursor)
    if position:
        moment, row_id = position
        # The first condition lets the database seek the index; the second breaks ties by id.
        query = query.where(moment_column <= moment, or_(moment_column < moment, id_column < row_id))
    rows = list(db.session.scalars(query.order_by(moment_column.desc(), id_column.desc()).limit(size + 1)))
    if len(rows) <= size:
        return Page(rows, None)
    last = rows[size - 1]
    return Page(rows[:size], encode_cursor(getattr(last, moment_column.key), last.id))


def runs_page(merchant_id: int, f: HistoryFilter, cursor: str | None = None, size: int = PAGE_SIZE) -> Page:
    """The merchant's runs the filter selects, newest first (by last update, then id)."""
    query = select(SyncRun).where(*_run_conditions(merchant_id, f))
    return _keyset_page(query, SyncRun.updated_at, SyncRun.id, cursor, size)


def ignored_events_page(merchant_id: int, f: HistoryFilter, cursor: str | None = None, size: int = PAGE_SIZE) -> Page:
    conditions = [WebhookEvent.merchant_id == merchant_id, WebhookEvent.outcome == "ignored"]
    if f.account is not None:
        conditions.append(WebhookEvent.stripe_account_id == f.account)
    if f.date_from:
        conditions.append(WebhookEvent.received_at >= _start(f.date_from))
    if f.date_to:
        conditions.append(WebhookEvent.received_at < _start(f.date_to + timedelta(days=1)))
    if f.search:
        conditions.append(or_(WebhookEvent.stripe_invoice_id == f.search, WebhookEvent.stripe_event_id == f.search))
    return _keyset_page(select(WebhookEvent).where(*conditions), WebhookEvent.received_at, WebhookEvent.id, cursor, size)


def runs_for_export(merchant_id: int, f: HistoryFilter, batch: int = 1000):
    """Every run the filter selects, newest first, read in batches."""
    cursor = None
    while True:
        page = runs_page(merchant_id, f, cursor, size=batch)
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


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
    return Overview(counts(today_start), counts(week_start), [(d, s, f) for d, (s, f) in days.items()],
                    waiting.get("failed", 0), waiting.get("held", 0))


def events_waiting(merchant_id: int) -> int:
    """Stripe events stored but not decided yet (their job has not read them): a handful at most, found
    through the partial index on waiting events."""
    return db.session.scalar(select(func.count()).select_from(WebhookEvent).where(
        WebhookEvent.outcome == "received", WebhookEvent.merchant_id == merchant_id)) or 0
