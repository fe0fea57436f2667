"""Storing verified Stripe events. Nothing here calls Stripe or e-conomic."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
import stripe
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert

from ..extensions import db
from ..models import Connection, Merchant, SyncRule, SyncRun, WebhookEvent, insert_if_absent, utcnow
from ..runs.queueing import job_id_for_new_run
from ..runs.rules import RuleChoices, decide
from ..runs.services import SYNC_RUN_KEY, sync_run_key, sync_run_values


class WebhookRejected(Exception):
    """A delivery we refuse, with the HTTP status and a short reason for Stripe's dashboard."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class WebhookTarget:
    """Whose endpoint a delivery reached: the merchant, its signing secret and its sync rule."""

    merchant_id: int
    signing_secret: str | None
    rule: RuleChoices | None  # None until the merchant's rule row exists (intake creates it)


_RULE_COLUMNS = (SyncRule.trigger, SyncRule.document_type, SyncRule.write_back_to_stripe,
                 SyncRule.sent_on_finalized_for_automatic, SyncRule.sync_voided_invoices, SyncRule.sync_zero_amount_invoices)


# Built once: building a statement costs more CPU than running the cached one.
_TARGET_QUERY = (
    select(Merchant.id, Connection.stripe_webhook_secret, SyncRule.id.label("rule_id"), *_RULE_COLUMNS)
    .outerjoin(Connection, Connection.merchant_id == Merchant.id)
    .outerjoin(SyncRule, SyncRule.merchant_id == Merchant.id)
    .where(Merchant.webhook_key == bindparam("webhook_key"))
)


def webhook_target(connection: sa.Connection, webhook_key: str) -> WebhookTarget | None:
    """The merchant behind a webhook URL, in one query (this runs on every delivery).

    Callers pass a Core connection rather than using the ORM session: on this path the session's
    bookkeeping costs more than the queries.
    """
    row = connection.execute(_TARGET_QUERY, {"webhook_key": webhook_key}).first()
    if row is None:
        return None
    return WebhookTarget(row.id, row.stripe_webhook_secret, row if row.rule_id is not None else None)


def event_verify(payload: bytes, signature: str | None, secret: str | None) -> dict:
    """The event as a dict when the payload is signed with `secret`; else `WebhookRejected`."""
    if not secret:
        raise WebhookRejected(400, "No webhook signing secret is configured for this merchant.")
    if not signature:
        raise WebhookRejected(400, "Missing Stripe-Signature header.")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(400, "Body is not UTF-8.") from None
    try:
        stripe.WebhookSignature.verify_header(text, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE)
    except stripe.SignatureVerificationError as error:
        raise WebhookRejected(400, f"Signature verification failed: {error.user_message or error}") from None
    try:
        event = json.loads(text)
    except ValueError:
        raise WebhookRejected(400, "Body is not valid JSON.") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise WebhookRejected(400, "Body is not a Stripe event (no id or type).")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise WebhookRejected(400, "Body is not a Stripe event (no data.object).")
    return event


def _invoice_id(event: dict) -> str | None:
    obj = event["data"]["object"]
    if obj.get("object") == "invoice" and isinstance(obj.get("id"), str):
        return obj["id"]
    return None


@dataclass
class Intake:
    """What became of a verified event: stored or a duplicate, and the run it queued (if new)."""

    duplicate: bool
    new_run_id: int | None = None
    first_job_id: str | None = None  # the job id stored with the new run


EVENT_KEY = ["merchant_id", "stripe_event_id"]
FOREIGN_KEY_VIOLATION = "23503"  # PostgreSQL's SQLSTATE


def event_intake(connection: sa.Connection, target: WebhookTarget, event: dict, payload: bytes) -> Intake:
    """Store the event with what the merchant's rule made of it and the run it calls for, then commit;
    or roll back when the event was stored before (a repeated delivery keeps nothing of its own).

    The inserts are INSERT … ON CONFLICT DO NOTHING on unique keys, so repeated and concurrent
    deliveries agree without locks: one event row per Stripe event, one run per invoice and document.
    """
    rule = target.rule or _rule_created(connection, target.merchant_id)
    invoice_id = _invoice_id(event)
    decision = decide(event["type"], event["data"]["object"], rule)
    event_row = _event_row(target.merchant_id, event, payload, invoice_id)
    if decision.sync and invoice_id:
        run_row = sync_run_values(target.merchant_id, invoice_id, rule, job_id_for_new_run())
        store = _store_with_run_in_one_statement if connection.dialect.name == "postgresql" else _store_with_run
        intake = store(connection, event_row, run_row)
    else:
        reason = decision.reason or "The event names no invoice."
        if event["type"] == "invoice.voided" and invoice_id and _flag_credit_note_due(connection, target.merchant_id, invoice_id):
            reason = "The invoice was voided after its document was booked in e-conomic: a credit note is due."
        event_row.update(outcome="ignored", ignored_reason=reason[:500])
        intake = Intake(duplicate=insert_if_absent(WebhookEvent, event_row, EVENT_KEY, on=connection) is None)
    if intake.duplicate:
        connection.rollback()  # nothing of this delivery is kept: the first one was
    else:
        connection.commit()
    return intake


def _flag_credit_note_due(connection: sa.Connection, merchant_id: int, invoice_id: str) -> bool:
    """Mark the invoice's booked runs: a booked invoice can only be undone by a credit note."""
    table = SyncRun.__table__
    flagged = connection.execute(
        table.update()
        .where(table.c.merchant_id == merchant_id, table.c.stripe_invoice_id == invoice_id,
               table.c.economic_booked_number.is_not(None))
        .values(needs_credit_note=True)
    ).rowcount
    return bool(flagged)


def _rule_created(connection: sa.Connection, merchant_id: int) -> RuleChoices:
    """The merchant's rule row with its defaults, for a delivery that arrives before any rule was saved."""
    insert_if_absent(SyncRule, {"merchant_id": merchant_id}, ["merchant_id"], on=connection)
    return connection.execute(select(*_RULE_COLUMNS).where(SyncRule.merchant_id == merchant_id)).one()


def _event_row(merchant_id: int, event: dict, payload: bytes, invoice_id: str | None) -> dict:
    created = event.get("created")
    return {
        "merchant_id": merchant_id,
        "stripe_event_id": event["id"][:255],
        "type": event["type"][:100],
        "livemode": bool(event.get("livemode")),
        "api_version": event["api_version"][:40] if isinstance(event.get("api_version"), str) else None,
        "stripe_created_at": datetime.fromtimestamp(created, timezone.utc) if isinstance(created, int) else None,
        "stripe_invoice_id": invoice_id,
        "received_at": utcnow(),
        "payload": payload.decode("utf-8"),
    }


def _store_with_run(connection: sa.Connection, event_row: dict, run_row: dict) -> Intake:
    """The run (unless the invoice has it already), then the event linked to it: two statements."""
    new_run_id = insert_if_absent(SyncRun, run_row, SYNC_RUN_KEY, on=connection)
    return _store_event_of_run(connection, event_row, run_row, new_run_id)


def _store_event_of_run(connection: sa.Connection, event_row: dict, run_row: dict, new_run_id: int | None) -> Intake:
    """The event, queued by the run it created or a duplicate of the invoice's existing run."""
    event_row.update(_run_outcome(connection, run_row, new_run_id))
    if insert_if_absent(WebhookEvent, event_row, EVENT_KEY, on=connection) is None:
        return Intake(duplicate=True)
    return Intake(duplicate=False, new_run_id=new_run_id, first_job_id=run_row["job_id"] if new_run_id else None)


def _store_with_run_in_one_statement(connection: sa.Connection, event_row: dict, run_row: dict) -> Intake:
    """`_store_with_run` as one statement (PostgreSQL, autocommitted: no BEGIN and COMMIT round trips).

    The event row points at the invoice's run: the existing one, or a new one whose id is drawn from
    the sequence first and which is inserted only when the event was (a repeated delivery adds
    nothing). If another delivery inserts the invoice's run while this statement runs, the run insert
    does nothing, the event's reference to the unused id breaks the foreign key at the end of the
    statement and the statement undoes itself; the event is then stored as a duplicate of that run.
    """
    statement = _store_with_run_statement(tuple(run_row), tuple(event_row))
    parameters = {**run_row, **event_row, "duplicate_reason": _duplicate_reason(run_row["document_type"])}
    try:
        row = connection.execute(statement, parameters).one()
    except sa.exc.IntegrityError as error:
        if getattr(error.orig, "sqlstate", None) != FOREIGN_KEY_VIOLATION:
            raise
        return _store_event_of_run(connection, event_row, run_row, None)
    if row.event_id is None:
        return Intake(duplicate=True)
    return Intake(duplicate=False, new_run_id=row.new_run_id,
                  first_job_id=run_row["job_id"] if row.new_run_id else None)


def _run_outcome(connection: sa.Connection, run_row: dict, new_run_id: int | None) -> dict:
    """The event's outcome: queued by the run it created, or a duplicate of the invoice's existing run."""
    if new_run_id is not None:
        return {"outcome": "queued", "ignored_reason": None, "sync_run_id": new_run_id}
    run_id = connection.scalar(select(SyncRun.id).where(
        *sync_run_key(run_row["merchant_id"], run_row["stripe_invoice_id"], run_row["document_type"])))
    return {"outcome": "duplicate", "ignored_reason": _duplicate_reason(run_row["document_type"]), "sync_run_id": run_id}


def _duplicate_reason(document_type: str) -> str:
    return f"A sync of this invoice into a {SyncRule.DOCUMENT_TYPES[document_type]} exists already."


@functools.cache
def _store_with_run_statement(run_columns: tuple[str, ...], event_columns: tuple[str, ...]) -> sa.Select:
    """WITH existing AS (SELECT id FROM sync_runs WHERE <the run's key>),
         run_id AS (SELECT coalesce((SELECT id FROM existing), nextval(<sync_runs' id sequence>))),
         new_event AS (INSERT event …, 'queued' or 'duplicate', run_id ON CONFLICT DO NOTHING RETURNING id),
         new_run AS (INSERT run (id, …) SELECT run_id, …
                     WHERE EXISTS (new_event) AND NOT EXISTS (existing) ON CONFLICT DO NOTHING RETURNING id)
    SELECT (SELECT id FROM new_event) AS event_id, (SELECT id FROM new_run) AS new_run_id

    Parameters are the two rows' values, named by their columns (the columns both rows have, such as
    merchant_id, take the same value), and duplicate_reason; the tables' Python-side defaults are
    filled in by SQLAlchemy. Every delivery takes the event's key before the run's, so concurrent
    ones wait, never deadlock.
    """
    run_table, event_table = SyncRun.__table__, WebhookEvent.__table__

    def parameters(table: sa.Table, columns: tuple[str, ...]) -> list[sa.BindParameter]:
        return [bindparam(name, type_=table.c[name].type) for name in columns]

    key = [run_table.c[name] == bindparam(name, type_=run_table.c[name].type) for name in SYNC_RUN_KEY]
    existing = select(run_table.c.id).where(*key).cte("existing")
    run_exists = sa.exists(select(existing.c.id))
    next_id = sa.func.nextval(sa.func.pg_get_serial_sequence(run_table.name, "id"))
    run_id = select(sa.func.coalesce(select(existing.c.id).scalar_subquery(), next_id).label("id")).cte("run_id")
    new_event = (postgresql_insert(event_table)
                 .from_select([*event_columns, "outcome", "ignored_reason", "sync_run_id"],
                              select(*parameters(event_table, event_columns),
                                     sa.case((run_exists, "duplicate"), else_="queued"),
                                     sa.case((run_exists, bindparam("duplicate_reason", type_=sa.String))),
                                     run_id.c.id))
                 .on_conflict_do_nothing(index_elements=EVENT_KEY)
                 .returning(event_table.c.id).cte("new_event"))
    new_run = (postgresql_insert(run_table)
               .from_select(["id", *run_columns], select(run_id.c.id, *parameters(run_table, run_columns))
                            .where(sa.exists(select(new_event.c.id)), ~run_exists))
               .on_conflict_do_nothing(index_elements=SYNC_RUN_KEY)
               .returning(run_table.c.id).cte("new_run"))
    return select(select(new_event.c.id).scalar_subquery().label("event_id"),
                  select(new_run.c.id).scalar_subquery().label("new_run_id"))


@contextmanager
def intake_connection() -> Iterator[sa.Connection]:
    """A pooled Core connection for one delivery. On PostgreSQL it autocommits: each statement of the
    intake is atomic on its own (see `_store_with_run_in_one_statement`)."""
    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection
