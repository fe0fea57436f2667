"""Sync history: the list, one invoice's timeline, CSV export, and the manual actions."""

from __future__ import annotations

import csv
import io

from flask import Response, abort, current_app, flash, make_response, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user, login_required

from datetime import date

from ..extensions import db
from ..models import Backfill, SyncRule, SyncRun
from ..runs.backfill import BackfillRefused, backfill_create, backfill_progress
from ..runs.entries import reversal_create
from ..runs.services import RunActionRefused, event_sync_now, sync_run_again, sync_run_book_anyway
from ..sync.money import from_minor
from ..merchant_config import rule_for
from ..stripe_accounts import stripe_accounts_of
from . import bp
from ..templating import iso_local, merchant_zone
from .ledger import invoice_facts, row_from_event, row_from_run, status_look
from .review import differences, held_review, payout_view, row_note, run_made, run_what, run_when, status_words
from .selectors import (
    IN_FLIGHT,
    STATUS_FILTERS,
    HistoryFilter,
    event_for_merchant,
    events_waiting,
    failed_runs,
    invoice_timeline,
    ledger_for_export,
    ledger_page,
    overview,
    payout_runs,
    run_for_merchant,
)

HTMX_STOP_POLLING = 286


@bp.context_processor
def run_words():
    """How the history's templates put a run into words (see review.py)."""
    return {"status_words": status_words, "status_look": status_look, "row_note": row_note, "held_review": held_review,
            "run_what": run_what, "run_when": run_when, "run_made": run_made}


def _page(f: HistoryFilter):
    """The page's runs and, unfiltered by status, the invoices the rules did not sync, newest first."""
    return ledger_page(current_user.merchant_id, f, request.args.get("after"), runs=f.status != "ignored")


def _ledger_rows(page) -> list:
    """The page's rows as the ledger shows them (see ledger.py)."""
    app_url = current_app.config["ECONOMIC_APP_URL"]
    return [row_from_run(row, app_url) if isinstance(row, SyncRun) else row_from_event(row) for row in page.rows]


def _events_waiting(f: HistoryFilter) -> int:
    """Events Stripe delivered that no job has read yet, shown (and polled for) on the unfiltered first page."""
    if f.as_args() or request.args.get("after"):
        return 0
    return events_waiting(current_user.merchant_id)


def _account_names() -> dict[int, str]:
    """The merchant's Stripe accounts by id, when it has several (one account needs no naming)."""
    accounts = stripe_accounts_of(current_user.merchant_id)
    return {account.id: account.name for account in accounts} if len(accounts) > 1 else {}


def _in_flight(page, waiting: int) -> bool:
    return bool(waiting) or any(isinstance(row, SyncRun) and row.status in IN_FLIGHT for row in page.rows)


@bp.route("/history")
@login_required
def index():
    f = HistoryFilter.from_args(request.args)
    page = _page(f)
    waiting = _events_waiting(f)
    return render_template(
        "history/index.html", f=f, page=page, rows=_ledger_rows(page), status_filters=STATUS_FILTERS,
        overview=overview(current_user.merchant_id), in_flight=_in_flight(page, waiting), waiting=waiting,
        account_names=_account_names(), demo_enabled="demo.send_invoice" in current_app.view_functions,
    )


@bp.route("/history/rows")
@login_required
def rows():
    """The table body and, out of band, the overview cards: polled by HTMX while runs are in flight, so both
    show the same moment; 286 tells HTMX to stop polling."""
    f = HistoryFilter.from_args(request.args)
    page = _page(f)
    waiting = _events_waiting(f)
    in_flight = _in_flight(page, waiting)
    response = make_response(render_template(
        "history/_rows.html", f=f, page=page, rows=_ledger_rows(page), in_flight=in_flight, waiting=waiting,
        account_names=_account_names(), overview=overview(current_user.merchant_id), out_of_band=True,
    ))
    response.headers["Vary"] = "HX-Request"
    if not in_flight:
        response.status_code = HTMX_STOP_POLLING
    return response


@bp.route("/history/invoices/<stripe_invoice_id>")
@login_required
def invoice(stripe_invoice_id: str):
    timeline = invoice_timeline(current_user.merchant_id, stripe_invoice_id)
    if timeline is None:
        abort(404)
    return render_template(
        "history/invoice.html", invoice_id=stripe_invoice_id, timeline=timeline,
        document_types=SyncRule.DOCUMENT_TYPES, triggers=SyncRule.TRIGGERS,
        economic_app_url=current_app.config["ECONOMIC_APP_URL"],
    )


@bp.route("/history/payouts")
@login_required
def payouts():
    """Stripe's payouts and what was entered for each: how it adds up, its vouchers, its transactions."""
    runs = payout_runs(current_user.merchant_id)
    return render_template("history/payouts.html", runs=runs, views={run.id: payout_view(run) for run in runs},
                           demo_enabled="demo.payout" in current_app.view_functions)


def _run_page(run) -> str:
    """Where a run is shown: its invoice's page, or the Payouts page."""
    if run.stripe_invoice_id:
        return url_for("history.invoice", stripe_invoice_id=run.stripe_invoice_id)
    return url_for("history.payouts") + f"#run-{run.id}"


def _own_run(run_id: int):
    """The signed-in merchant's run, or 404 (another merchant's run is as unknown as a missing one)."""
    run = run_for_merchant(current_user.merchant_id, run_id)
    if run is None:
        abort(404)
    return run


@bp.route("/history/runs/<int:run_id>/sync-again", methods=["POST"])
@login_required
def sync_again(run_id: int):
    run = _own_run(run_id)
    try:
        sync_run_again(run, force_new_document=request.form.get("new_document") == "1")
        flash("Queued: the invoice will be synced again in a moment." if run.kind == "invoice"
              else f"Queued: the {run_what(run).lower()} will be entered again in a moment.", "success")
    except RunActionRefused as refusal:
        flash(str(refusal), "error")
    return redirect(_run_page(run))


@bp.route("/history/retry-failed", methods=["POST"])
@login_required
def retry_failed():
    """"Retry all failed": Sync again for each failed run of the merchant (one being synced this moment is
    left alone)."""
    queued = refused = 0
    for run in failed_runs(current_user.merchant_id):
        try:
            sync_run_again(run)
            queued += 1
        except RunActionRefused:
            refused += 1
    if queued:
        flash(f"Queued {queued} failed run{'s' if queued != 1 else ''} to sync again"
              + (f"; {refused} could not be retried now (open them to see why)." if refused else "."), "success")
    else:
        flash("Nothing to retry: no run has failed." if not refused else
              f"{refused} failed run{'s' if refused != 1 else ''} could not be retried now (open them to see why).",
              "success" if not refused else "error")
    return redirect(url_for("history.index", status="attention"))


@bp.route("/history/runs/<int:run_id>/credit-note", methods=["POST"])
@login_required
def credit_note(run_id: int):
    """An invoice voided in Stripe after it was booked: make the credit note that reverses it in e-conomic."""
    run = _own_run(run_id)
    try:
        reversal_create(run)
        flash("Queued: the credit note for the whole invoice will be made in e-conomic in a moment.", "success")
    except RunActionRefused as refusal:
        flash(str(refusal), "error")
    return redirect(_run_page(run))


@bp.route("/history/runs/<int:run_id>/book-anyway", methods=["POST"])
@login_required
def book_anyway(run_id: int):
    """A held run, reviewed by a person: book its draft (or keep it, for draft rules) as it is."""
    run = _own_run(run_id)
    if request.form.get("reviewed") != "1":
        flash("Nothing was done: tick “I have reviewed the draft in e-conomic” to confirm first.", "error")
    else:
        try:
            sync_run_book_anyway(run)
            flash(_book_anyway_done(run), "success")
        except RunActionRefused as refusal:
            flash(str(refusal), "error")
    return redirect(url_for("history.invoice", stripe_invoice_id=run.stripe_invoice_id))


def _book_anyway_done(run) -> str:
    if run.status == "succeeded":
        kept = "Kept the draft as it is" if run.document_type != "booked_invoice" else "Booked the draft as it is"
        return f"{kept}; its totals still differ from Stripe's."
    return "Queued: the reviewed draft will be booked as it is in a moment."


@bp.route("/history/events/<int:event_id>/sync-now", methods=["POST"])
@login_required
def sync_now(event_id: int):
    event = event_for_merchant(current_user.merchant_id, event_id)
    if event is None:
        abort(404)
    try:
        event_sync_now(event, rule_for(current_user.merchant_id))
        flash("Queued: the invoice will be synced in a moment.", "success")
    except RunActionRefused as refusal:
        flash(str(refusal), "error")
    return redirect(url_for("history.invoice", stripe_invoice_id=event.stripe_invoice_id) if event.stripe_invoice_id else url_for("history.index"))


CSV_COLUMNS = ("run_id", "stripe_invoice_id", "invoice_number", "customer", "email", "amount", "currency", "trigger",
               "document_type", "status", "economic_document_number", "attempts", "last_update", "error",
               "held_reason", "totals_differences", "needs_credit_note", "not_synced_reason")


@bp.route("/history.csv")
@login_required
def export_csv():
    """The rows the filters select, in words (Booked invoice, Paid, Succeeded), times in ISO 8601 with the
    merchant's offset, invoices the rules did not sync included, and every cell safe to open in a spreadsheet."""
    f = HistoryFilter.from_args(request.args)
    merchant_id = current_user.merchant_id
    zone = merchant_zone()

    def lines():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for row in ledger_for_export(merchant_id, f):
            writer.writerow([_safe(str(cell)) for cell in (_run_cells(row, zone) if isinstance(row, SyncRun) else _event_cells(row, zone))])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    return Response(stream_with_context(lines()), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=sync-history.csv"})


def _run_cells(run, zone) -> list:
    return [run.id, run.stripe_invoice_id or run.stripe_object_id, run.stripe_invoice_number or "", run.customer_name or "",
            run.customer_email or "", _amount(run.total_minor, run.currency), run.currency or "", run_when(run), run_what(run),
            status_look(run.status).word, run_made(run), run.attempts, iso_local(run.updated_at, zone), run.last_error or "",
            run.held_reason or "", "; ".join(differences(run)), "yes" if run.needs_credit_note else "", ""]


def _event_cells(event, zone) -> list:
    facts = invoice_facts(event.payload)
    return ["", event.stripe_invoice_id or "", facts.number or "", facts.customer_name or "", facts.customer_email or "",
            _amount(facts.total_minor, facts.currency), facts.currency or "", "", "", status_look("ignored").word, "", "",
            iso_local(event.received_at, zone), "", "", "", "", event.ignored_reason or ""]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _safe(text: str | None) -> str:
    """Spreadsheet apps run cells that start with = + - @ (or a tab or carriage return) as formulas: defuse
    them. A plain number (-12.50) stays a number."""
    text = text or ""
    if text[:1] in FORMULA_STARTS and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    body = text[1:] if text[:1] == "-" else text
    whole, _, fraction = body.partition(".")
    return whole.isdigit() and (fraction == "" or fraction.isdigit()) and whole.isascii() and fraction.isascii()


def _amount(total_minor: int | None, currency: str | None) -> str:
    if total_minor is None or not currency:
        return ""
    return str(from_minor(total_minor, currency))


@bp.route("/history/backfill", methods=["GET", "POST"])
@login_required
def backfill():
    merchant_id = current_user.merchant_id
    accounts = stripe_accounts_of(merchant_id)
    if request.method == "POST":
        form = {name: (request.form.get(name) or "").strip()[:20] for name in ("from", "to", "account")}
        try:
            date_from = date.fromisoformat(form["from"])
            date_to = date.fromisoformat(form["to"])
        except ValueError:
            return _backfill_page(accounts, form, "Enter both dates.")
        chosen = form["account"] or (str(accounts[0].id) if len(accounts) == 1 else "")
        try:
            created = backfill_create(merchant_id, int(chosen) if chosen.isdigit() else 0, date_from, date_to)
        except BackfillRefused as refusal:
            return _backfill_page(accounts, form, str(refusal))
        return redirect(url_for("history.backfill", shown=created.id))
    return _backfill_page(accounts, {})


def _backfill_page(accounts, form: dict, refusal: str | None = None):
    """The backfill screen; after a refusal, with the reason and what was entered kept (422)."""
    merchant_id = current_user.merchant_id
    recent = db.session.scalars(db.select(Backfill).where(Backfill.merchant_id == merchant_id).order_by(Backfill.id.desc()).limit(5)).all()
    progress = {item.id: backfill_progress(item) for item in recent}
    if refusal:
        flash(refusal, "error")
    page = render_template("history/backfill.html", recent=recent, progress=progress, today=date.today().isoformat(),
                           accounts=accounts, form=form)
    return (page, 422) if refusal else page


@bp.route("/history/backfills/<int:backfill_id>/progress")
@login_required
def backfill_status(backfill_id: int):
    item = db.session.scalar(db.select(Backfill).where(Backfill.id == backfill_id, Backfill.merchant_id == current_user.merchant_id))
    if item is None:
        abort(404)
    response = make_response(render_template("history/_backfill_progress.html", item=item, progress=backfill_progress(item)))
    if item.status in ("done", "failed"):
        response.status_code = HTMX_STOP_POLLING
    return response
