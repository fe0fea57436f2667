"""The invoice page in plain words: each recorded step as a sentence, the values sent as a field/value table
with the mapping labels, where the document is in e-conomic and the invoice in Stripe, and what became of
each Stripe event.

Pure functions of what the sync recorded (`SyncRun`, `AuditRow`, `WebhookEvent`): nothing written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from ..extensions import db
from ..models import AuditRow, RunStatus, StripeAccount, SyncRun, WebhookEvent
from ..sync.mapping import TARGETS_BY_KEY
from .error_advice import Advice, error_advice
from .ledger import economic_document_url
from .review import json_object

STRIPE_DASHBOARD = "https://dashboard.stripe.com"
ECONOMIC_LIST_NAMES = {"booked_invoice": "booked invoices", "draft_invoice": "draft invoices", "draft_order": "orders"}


@dataclass(frozen=True)
class EconomicDocument:
    what: str  # "booked invoice", "draft invoice", "draft order"
    number: int
    url: str
    list_name: str


def economic_document(run: SyncRun, app_url: str) -> EconomicDocument | None:
    """The document the run made, the furthest it got: a booked invoice, else its draft or order."""
    for document_type, number in (("booked_invoice", run.economic_booked_number), ("draft_order", run.economic_order_number),
                                  ("draft_invoice", run.economic_draft_number)):
        url = economic_document_url(app_url, document_type, number)
        if number and url:
            return EconomicDocument(document_type.replace("_", " "), number,
                                    url, ECONOMIC_LIST_NAMES[document_type])
    return None


def stripe_invoice_url(invoice_id: str, livemode: bool | None) -> str:
    """The invoice in Stripe's dashboard (test-mode invoices live under /test)."""
    what = "credit_notes" if invoice_id.startswith("cn_") else "invoices"
    return f"{STRIPE_DASHBOARD}/{'' if livemode else 'test/'}{what}/{invoice_id}"


def _summary(row: AuditRow) -> dict:
    return json_object(row.summary)


def _number(text: str | None) -> str:
    found = re.findall(r"\d+", text or "")
    return found[-1] if found else ""


def _names(items: list[str]) -> str:
    return ", ".join(items)


def _products(summary: dict) -> str:
    """"Created products Pro plan, Seats; found Support" from the products step's summary (by Stripe product
    id: {"number", "how", "name"}; older rows kept "number (how)")."""
    groups: dict[str, list[str]] = {"created": [], "found": [], "default product": []}
    for product_id, value in summary.items():
        if isinstance(value, dict):
            how, name = value.get("how") or "found", value.get("name") or value.get("number") or product_id
        else:
            number, _, how = str(value).partition(" (")
            how, name = how.rstrip(")") or "found", number
        groups["created" if how == "created" else "default product" if how == "default product" else "found"].append(name)
    parts = []
    for how, names in groups.items():
        if not names:
            continue
        plural = "s" if len(names) > 1 else ""
        if how == "default product":
            parts.append(f"used the default product for {_names(names)}")
        else:
            parts.append(f"{how} product{plural} {_names(names)}")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] if text else "Found the products"


WHAT_FAILED = {
    "fetch": "Could not read the invoice from Stripe",
    "vat": "Could not check the VAT Stripe charged",
    "customer": "Could not find or create the customer in e-conomic",
    "products": "Could not find or create the products in e-conomic",
    "document": "Could not make the document in e-conomic",
    "discard": "Could not delete the held draft in e-conomic",
    "rounding": "Could not add the rounding line",
    "book": "Could not book the draft in e-conomic",
    "write_back": "Could not write the e-conomic number back to Stripe",
    "reconcile": "Could not add up the payout",
    "voucher": "Could not enter the journal entry in e-conomic",
}
STOPPED = {"held": "Held for review at this step", "skipped": "Skipped at this step", "waiting": "Waiting at this step"}


def step_sentence(row: AuditRow, run: SyncRun) -> str:
    """One recorded step in words: "Read invoice NB-0042 from Stripe", "Found customer 1001 Kystlys Studio ApS"."""
    step, outcome, numbers, summary = row.step, row.outcome, row.numbers or "", _summary(row)
    if outcome == "failed":
        return WHAT_FAILED.get(step, f"The {step.replace('_', ' ')} step failed")
    if outcome in STOPPED and step not in ("products",):
        return STOPPED[outcome]
    if step == "fetch":
        if numbers.startswith(("payment", "refund", "payout")):
            return f"Read the {numbers} from Stripe"
        lines = summary.get("lines")
        count = f" ({lines} line{'s' if lines != 1 else ''})" if isinstance(lines, int) else ""
        return f"Read invoice {numbers or run.stripe_invoice_number or ''} from Stripe{count}".replace("  ", " ")
    if step == "vat":
        treatments = ", ".join(summary.get("treatments") or [])
        return f"Checked the VAT Stripe charged{f' ({treatments})' if treatments else ''}: {numbers} in e-conomic"
    if step == "customer":
        name = f" {run.customer_name}" if run.customer_name else ""
        verb = "Created" if outcome == "created" else "Found"
        how = summary.get("how") or ""
        detail = "" if how in ("", "not found, so created") else f" ({how})"
        return f"{verb} customer {_number(numbers)}{name}{detail}"
    if step == "products":
        if outcome == "skipped" and not summary:
            return "No product to look up (no line names a Stripe product)"
        return _products(summary)
    if step == "document":
        verb = "Created" if outcome == "created" else "Found"
        tail = "" if outcome == "created" else " (made by an earlier attempt)"
        return f"{verb} {numbers} in e-conomic{tail}"
    if step == "discard":
        kind = "draft order" if "orders" in numbers else "draft invoice"
        return f"Deleted the held {kind} {_number(numbers)} in e-conomic"
    if step == "rounding":
        return f"Added a {numbers} to the draft"
    if step == "book":
        found = re.match(r"booked invoice (\d+) \(from draft (\d+)\)", numbers)
        return f"Booked draft {found.group(2)} as invoice {found.group(1)}" if found else f"Booked {numbers}"
    if step == "write_back":
        return f"Wrote the e-conomic number into {numbers or 'the Stripe invoice'}"
    if step == "reconcile":
        return f"Added up the payout: {numbers}"
    if step == "voucher":
        return f"{'Entered' if outcome == 'created' else 'Found'} {numbers}"
    words = step.replace("_", " ").capitalize()
    return f"{words}: {numbers}" if numbers else f"{words} ({outcome})"


OUTCOME_WORDS = {"found": "done", "created": "done", "done": "done", "failed": "failed", "held": "held for review",
                 "skipped": "skipped", "waiting": "waiting"}


def outcome_words(outcome: str) -> str:
    return OUTCOME_WORDS.get(outcome, outcome)


def took(row: AuditRow) -> str:
    """The step's duration, for hovering: "took 0.04 s"."""
    ms = row.duration_ms or 0
    return f"took {ms} ms" if ms < 1000 else f"took {ms / 1000:.1f} s"


@dataclass(frozen=True)
class ValueRow:
    field: str
    value: str
    note: str  # "shortened to 50 characters", "from the fallback", or ""


def values_sent(rows: list[AuditRow]) -> list[ValueRow]:
    """The mapped values of the latest document step, labelled as on the mappings page."""
    for row in reversed(rows):
        if row.step != "document":
            continue
        summary = _summary(row)
        mapped = summary.get("mapped")
        if not isinstance(mapped, dict) or not mapped:
            continue
        cut = summary.get("cut") or {}
        fallbacks = summary.get("fallbacks") or []
        order = list(TARGETS_BY_KEY)
        values = []
        for key in sorted(mapped, key=lambda k: order.index(k) if k in order else len(order)):
            target = TARGETS_BY_KEY.get(key)
            note = str(cut.get(key) or "") or ("from the fallback field" if key in fallbacks else "")
            values.append(ValueRow(target.label if target else key, str(mapped[key]), note))
        return values
    return []


def step_advice(row: AuditRow, run: SyncRun) -> Advice | None:
    """A failed step's error in words, unless it is the run's own last error (said once, at the top)."""
    if not row.error:
        return None
    if row.outcome in ("held", "skipped", "waiting"):
        return Advice(row.error.rstrip("."))
    last = (run.last_error or "").split(" [setting:")[0]
    if run.status in (RunStatus.FAILED, RunStatus.RETRYING) and row.error == last:
        return None
    return error_advice(row.error, stripe_account_id=run.stripe_account_id)


def run_advice(run: SyncRun) -> Advice | None:
    return error_advice(run.last_error, stripe_account_id=run.stripe_account_id, retry_at=run.next_retry_at,
                        will_retry=run.status == "retrying")


def event_outcome(event: WebhookEvent) -> str:
    """What became of a Stripe event, in words."""
    if event.outcome == "ignored":
        return f"Not synced: {event.ignored_reason or 'the rules do not use it'}"
    if event.outcome == "queued":
        if event.ignored_reason:  # ignored first, then "Sync this invoice now"
            return f"Synced on request (by itself it was not: {event.ignored_reason.rstrip('.')})"
        return "Started or advanced this invoice's sync"
    if event.outcome == "received":
        return "Received; being read in a moment"
    if event.outcome == "duplicate":
        return "Received twice; the second delivery changed nothing"
    return event.outcome


def audit_by_attempt(rows: list[AuditRow]) -> list[tuple[int, list[AuditRow]]]:
    """The steps grouped by attempt, in order."""
    groups: list[tuple[int, list[AuditRow]]] = []
    for row in rows:
        if not groups or groups[-1][0] != row.attempt:
            groups.append((row.attempt, []))
        groups[-1][1].append(row)
    return groups


@dataclass(frozen=True)
class UnrecordedLine:
    """A line of the steps table that no step recorded: what the latest attempt did before its first step,
    or what comes next. `at` (optional) ends the sentence ("… at today 13:05"); `moment` is the When column."""

    moment: datetime | None
    sentence: str
    result: str
    at: datetime | None = None


STOPPED_BEFORE = (RunStatus.WAITING, RunStatus.HELD, RunStatus.SKIPPED)  # not failed: its result in OUTCOME_WORDS


def _why(run: SyncRun) -> str:
    """The run's reason in one sentence, in the merchant's words (as the error box at the top says it)."""
    if run.status == RunStatus.WAITING:
        return (run.waiting_for or "").rstrip(".")
    if run.status == RunStatus.HELD:
        return (run.held_reason or "").rstrip(".")
    advice = run_advice(run)
    return advice.sentence if advice else ""


def _before_first_step(run: SyncRun) -> UnrecordedLine | None:
    """The latest attempt, when it recorded no step: under way, or stopped before its first step."""
    attempt = f"Attempt {run.attempts}" if run.attempts else "The sync"
    ended = run.finished_at or run.updated_at
    if run.status == RunStatus.RUNNING:
        return UnrecordedLine(run.started_at, f"{attempt} has started; its first step is under way", "running")
    if run.status in (RunStatus.FAILED, RunStatus.RETRYING, *STOPPED_BEFORE):
        why = _why(run)
        verb = "failed" if run.status in (RunStatus.FAILED, RunStatus.RETRYING) else "stopped"
        return UnrecordedLine(ended, f"{attempt} {verb} before any step{f': {why}' if why else ''}",
                              outcome_words(run.status) if run.status in STOPPED_BEFORE else "failed")
    if run.attempts:
        return UnrecordedLine(ended, f"{attempt} recorded no step", outcome_words(run.status))
    return None


def unrecorded_lines(run: SyncRun, rows: list[AuditRow]) -> list[UnrecordedLine]:
    """What the steps table says beyond the recorded steps: a run not started yet, an attempt that stopped
    before its first step ("Attempt 2 failed before any step: …") or is under way, and a retry to come."""
    lines: list[UnrecordedLine] = []
    if run.status == RunStatus.QUEUED:
        queued = f"Queued for attempt {run.attempts + 1}" if run.attempts else "Queued"
        lines.append(UnrecordedLine(run.updated_at, f"{queued}: it starts as soon as the worker picks it up", "queued"))
    elif not any(row.attempt == run.attempts for row in rows):
        line = _before_first_step(run)
        lines.extend([line] if line else [])
    if run.status == RunStatus.RETRYING:
        lines.append(UnrecordedLine(run.finished_at or run.updated_at, "Waiting for its next attempt", "waiting",
                                    at=run.next_retry_at))
    return lines


def raw_summary(row: AuditRow) -> str:
    """The summary as recorded, indented, for the support disclosure."""
    summary = _summary(row)
    return json.dumps(summary, ensure_ascii=False, indent=1) if summary else (row.summary or "")


def invoice_livemode(events: list[WebhookEvent], runs: list[SyncRun]) -> bool:
    """Whether the invoice is a live one: its latest event says so, else its Stripe account (a backfilled
    invoice has no event)."""
    if events:
        return bool(events[-1].livemode)
    account = db.session.get(StripeAccount, runs[0].stripe_account_id) if runs else None
    return bool(account and account.livemode)


def template_helpers() -> dict:
    """The invoice page's words, for the history blueprint's templates."""
    return {"step_sentence": step_sentence, "outcome_words": outcome_words, "took": took, "values_sent": values_sent,
            "step_advice": step_advice, "run_advice": run_advice, "event_outcome": event_outcome,
            "audit_by_attempt": audit_by_attempt, "unrecorded_lines": unrecorded_lines, "raw_summary": raw_summary, "economic_document": economic_document,
            "stripe_invoice_url": stripe_invoice_url, "invoice_livemode": invoice_livemode}
