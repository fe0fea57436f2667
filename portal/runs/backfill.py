"""Backfill: sync past Stripe invoices created in a date range, under the merchant's current rule, and the
journal entries of the range (payments, refunds, credit notes, payouts) the merchant turned on."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone

import stripe
from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..merchant_config import journal_settings_for, rule_for
from ..models import FINISHED_STATUSES, Backfill, StripeAccount, SyncRun, utcnow
from ..sync.stripe_source import created_between, stripe_client
from .entries import entry_runs_for_event
from .queueing import backfill_enqueue, sync_run_enqueue
from .recovery import Heartbeat
from .rules import decide
from .services import sync_run_create, sync_run_describe

log = logging.getLogger(__name__)
MAX_DAYS = 366


class BackfillRefused(ValueError):
    pass


def backfill_create(merchant_id: int, stripe_account_id: int, date_from: date, date_to: date) -> Backfill:
    """A backfill of one of the merchant's Stripe accounts, queued."""
    today = utcnow().date()
    if date_from > date_to:
        raise BackfillRefused("The start date is after the end date.")
    if date_to > today:
        raise BackfillRefused("The end date is in the future.")
    if (date_to - date_from).days >= MAX_DAYS:
        raise BackfillRefused(f"Choose at most {MAX_DAYS} days at a time.")
    running = db.session.scalar(select(Backfill).where(Backfill.merchant_id == merchant_id, Backfill.status.in_(("listing", "syncing"))))
    if running is not None:
        raise BackfillRefused("A backfill is running already; wait for it to finish.")
    if db.session.scalar(select(StripeAccount.id).where(StripeAccount.id == stripe_account_id,
                                                         StripeAccount.merchant_id == merchant_id)) is None:
        raise BackfillRefused("Choose one of your Stripe accounts.")
    backfill = Backfill(merchant_id=merchant_id, stripe_account_id=stripe_account_id, date_from=date_from,
                        date_to=date_to, status="listing")
    db.session.add(backfill)
    db.session.commit()
    backfill_enqueue(backfill.id)  # Redis down: the requeue pass queues it when it is back
    return backfill


def _event_type_for(invoice: dict, trigger: str) -> str:
    """The event that would have started a sync of this invoice, judged from its state now."""
    if trigger == "paid":
        return "invoice.paid" if invoice.get("status") == "paid" else "invoice.updated"
    if invoice.get("status") == "void":
        return "invoice.voided"
    if invoice.get("status") in ("open", "paid", "uncollectible"):
        return "invoice.sent" if invoice.get("collection_method") == "send_invoice" else "invoice.finalized"
    return "invoice.updated"


def backfill_job(backfill_id: int) -> str:
    """List the range's invoices and make a run for each the rules would have synced. Its lease is renewed
    while it lists; if it dies, the requeue pass queues it again, and listing again makes nothing twice."""
    backfill = db.session.get(Backfill, backfill_id)
    if backfill is None or backfill.status not in ("listing",):
        return "skipped"
    backfill.invoices_listed = backfill.runs_created = backfill.already_synced = 0
    backfill.heartbeat_at = utcnow()
    db.session.commit()
    with Heartbeat(Backfill, backfill.id, "listing"):
        return _backfill_list(backfill)


def _backfill_list(backfill: Backfill) -> str:
    account = db.session.get(StripeAccount, backfill.stripe_account_id)
    if account is None or not account.secret_key:
        backfill.status, backfill.finished_at = "failed", utcnow()
        backfill.error = "No secret key is saved for this Stripe account (Connections)."
        db.session.commit()
        return backfill.status
    rule = rule_for(backfill.merchant_id)
    client = stripe_client(account.secret_key, current_app.config["STRIPE_API_BASE"])
    start = datetime.combine(backfill.date_from, time.min, tzinfo=timezone.utc)
    end = datetime.combine(backfill.date_to + timedelta(days=1), time.min, tzinfo=timezone.utc)
    params = {"created": {"gte": int(start.timestamp()), "lt": int(end.timestamp())}, "limit": 100}
    created_runs: list[SyncRun] = []
    paid: list[dict] = []
    try:
        for invoice in client.v1.invoices.list(params=params).auto_paging_iter():
            data = invoice.to_dict()
            backfill.invoices_listed += 1
            if data.get("status") == "paid":
                paid.append(data)
            if decide(_event_type_for(data, rule.trigger), data, rule).sync:
                run, created = sync_run_create(backfill.merchant_id, backfill.stripe_account_id, data["id"], rule)
                if created or run.backfill_id == backfill.id:  # made now, or by this backfill's earlier job
                    run.backfill_id = backfill.id
                    sync_run_describe(run, data)
                    backfill.runs_created += 1
                    created_runs.append(run)
                else:
                    backfill.already_synced += 1
            if backfill.invoices_listed % 25 == 0:
                db.session.commit()  # progress the portal can show
        db.session.commit()
        created_runs += _backfill_entries(backfill, client, paid, int(start.timestamp()), int(end.timestamp()), rule.document_type)
    except stripe.StripeError as error:
        db.session.commit()
        backfill.status, backfill.error, backfill.finished_at = "failed", f"Stripe: {error.user_message or error}", utcnow()
        db.session.commit()
        return backfill.status
    backfill.status = "syncing" if created_runs else "done"
    if not created_runs:
        backfill.finished_at = utcnow()
    db.session.commit()
    for run in created_runs:
        if run.status == "queued" and not run.job_id:
            sync_run_enqueue(run)
    return backfill.status


def _backfill_entries(backfill: Backfill, client: stripe.StripeClient, paid_invoices: list[dict], start: int, end: int,
                      invoice_document_type: str) -> list[SyncRun]:
    """The journal entries of the range, for the kinds the merchant turned on: the paid invoices' payments, and
    the refunds, credit notes and payouts created in it. Runs that exist already are left as they are."""
    on = journal_settings_for(backfill.merchant_id)
    found: list[tuple[str, dict]] = []
    if on.payments_enabled:
        found += [("invoice.paid", invoice) for invoice in paid_invoices]
    if on.refunds_enabled:
        found += [("refund.created", refund) for refund in created_between(client, "refunds", start, end)]
    if on.credit_notes_enabled:
        found += [("credit_note.created", note) for note in created_between(client, "credit_notes", start, end)]
    if on.payouts_enabled:
        found += [("payout.paid", payout) for payout in created_between(client, "payouts", start, end, status="paid")]
    made: list[SyncRun] = []
    for event_type, obj in found:
        runs, _ = entry_runs_for_event(backfill.merchant_id, backfill.stripe_account_id, event_type, obj, client,
                                       invoice_document_type)
        for run in runs:
            run.backfill_id = backfill.id
        backfill.runs_created += len(runs)
        made += runs
    db.session.commit()
    return made


def backfill_progress(backfill: Backfill) -> dict:
    """How far it is: runs finished out of runs created (the listing phase has no total yet), and what became
    of the invoices listed: to sync (a run made now), synced before, or not synced under the rules — the three
    add up to the invoices listed. Entries are the journal-entry runs (payments, refunds, payouts) made too."""
    finished = 0
    by_kind: dict[str, int] = {}
    if backfill.runs_created:
        finished = db.session.scalar(select(func.count()).select_from(SyncRun).where(
            SyncRun.backfill_id == backfill.id, SyncRun.status.in_(FINISHED_STATUSES))) or 0
        by_kind = dict(db.session.execute(select(SyncRun.kind, func.count()).where(
            SyncRun.backfill_id == backfill.id).group_by(SyncRun.kind)).all())
    if backfill.status == "syncing" and finished >= backfill.runs_created:
        backfill.status, backfill.finished_at = "done", utcnow()
        db.session.commit()
    invoices_to_sync = by_kind.get("invoice", 0)
    percent = int(finished * 100 / backfill.runs_created) if backfill.runs_created else (100 if backfill.status == "done" else 0)
    return {"finished": finished, "total": backfill.runs_created, "percent": percent,
            "invoices_to_sync": invoices_to_sync, "synced_before": backfill.already_synced,
            "not_synced": max(backfill.invoices_listed - invoices_to_sync - backfill.already_synced, 0),
            "entries": max(backfill.runs_created - invoices_to_sync, 0)}
