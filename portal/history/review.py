"""What a finished run tells a person: its status in words, the one-line note in the list, and for a
held run the review panel's figures (Stripe's and e-conomic's totals side by side).

Pure functions of a `SyncRun`: no queries, nothing written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from ..models import RunKind, RunStatus, SyncRule, SyncRun
from ..sync.vat import money

NOTE_LENGTH = 120
DRAFT_RULES = ("draft_invoice", "draft_order")


def status_words(status: str) -> str:
    """"held for review" for held; any other status as it is stored."""
    try:
        return RunStatus(status).label
    except ValueError:
        return status


def _short(text: str, limit: int = NOTE_LENGTH) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


ENTRY_LABELS = {RunKind.PAYMENT: "Customer payment", RunKind.REFUND: "Refund", RunKind.PAYOUT: "Payout and Stripe's fees"}


def run_what(run: SyncRun) -> str:
    """What the run makes in e-conomic, in words: "Booked invoice", "Credit note (draft)", "Customer payment"."""
    kind = RunKind(run.kind)
    if kind is RunKind.CREDIT_NOTE:
        return f"Credit note ({'booked' if run.document_type == 'booked_invoice' else 'draft'})"
    if kind in ENTRY_LABELS:
        return ENTRY_LABELS[kind]
    return SyncRule.DOCUMENT_TYPES.get(run.document_type, run.document_type)


def run_when(run: SyncRun) -> str:
    """What started it: the rule's Sent or Paid for an invoice; for the others the Stripe object it enters."""
    if run.kind == RunKind.INVOICE:
        return SyncRule.TRIGGERS.get(run.trigger, run.trigger)
    return run.stripe_object_id


def run_made(run: SyncRun) -> str:
    """Its number in e-conomic: the document's, or the journal entry's voucher."""
    if run.economic_voucher_number:
        return f"voucher {run.economic_voucher_number}"
    return str(run.document_number or "")


def row_note(run: SyncRun) -> str:
    """The list's note for a finished run: a held run's first difference (or its reason), why a run
    was skipped, or a failed run's error; what a waiting run waits for. Empty for the others."""
    if run.status == RunStatus.WAITING:
        return _short(run.waiting_for or "")
    if run.status == "held":
        differences = json_object(run.totals).get("differences") or []
        return _short(differences[0] if differences else (run.held_reason or "Held for review."))
    if run.status in ("skipped", "failed"):
        return _short(run.last_error or "")
    return ""


def differences(run: SyncRun) -> list[str]:
    """Every difference between Stripe's and e-conomic's totals, in plain words (for the CSV)."""
    return list(json_object(run.totals).get("differences") or [])


@dataclass(frozen=True)
class FigureRow:
    name: str
    stripe: str
    economic: str
    difference: str  # e-conomic less Stripe, signed; "" when they agree


@dataclass(frozen=True)
class HeldReview:
    """The review panel of a held run."""

    headline: str
    reason: str | None
    draft_number: int | None  # the held draft (invoice or order) in e-conomic, when one was made
    is_draft_rule: bool
    figures: list[FigureRow] = field(default_factory=list)  # empty when no draft's totals are known
    rounding: str | None = None  # the rounding line already on the e-conomic document
    setting_anchor: str | None = None

    @property
    def can_book(self) -> bool:
        """Book anyway (or keep the draft) needs a draft to have been made."""
        return self.draft_number is not None

    @property
    def book_label(self) -> str:
        return "Keep the draft as it is" if self.is_draft_rule else "Book anyway"


def held_draft_number(run: SyncRun) -> int | None:
    return run.economic_order_number if run.document_type == "draft_order" else run.economic_draft_number


def held_review(run: SyncRun) -> HeldReview:
    is_draft_rule = run.document_type in DRAFT_RULES
    draft_number = held_draft_number(run)
    if not is_draft_rule:
        headline = "Held for review — nothing was booked"
    elif draft_number is not None:
        headline = "The draft is in e-conomic, flagged for review"
    else:
        headline = "Held for review — nothing was made in e-conomic"
    totals = json_object(run.totals)
    figures, rounding = _figures(totals, run.currency)
    return HeldReview(headline=headline, reason=run.held_reason, draft_number=draft_number, is_draft_rule=is_draft_rule,
                      figures=figures, rounding=rounding, setting_anchor=run.held_setting or None)


def json_object(text: str | None) -> dict:
    """A JSON object the sync recorded (a run's totals, a step's summary), or {} when there is none or it is
    not an object: what a screen shows is never broken by one bad value."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


def _figures(totals: dict, fallback_currency: str | None) -> tuple[list[FigureRow], str | None]:
    currency = totals.get("currency") or fallback_currency
    stripe, economic = totals.get("stripe") or {}, totals.get("economic") or {}
    if not (currency and stripe and economic):
        return [], None
    rows = []
    for key, name in (("net", "Net"), ("vat", "VAT"), ("gross", "Gross")):
        ours, theirs = _decimal(stripe.get(key)), _decimal(economic.get(key))
        if ours is None or theirs is None:
            return [], None
        gap = theirs - ours
        rows.append(FigureRow(name, money(ours, currency), money(theirs, currency),
                              "" if gap == 0 else ("+" if gap > 0 else "") + money(gap, currency)))
    rounding = _decimal(totals.get("rounding"))
    return rows, (money(rounding, currency) if rounding else None)


@dataclass(frozen=True)
class PayoutView:
    """A payout as the Payouts page shows it: how it adds up, what was entered, and its transactions."""

    totals: list[tuple[str, str]]  # (what, amount in words), in the order an accountant reads them
    entries: list[dict]
    transactions: list[dict]
    difference: str | None  # a held payout's difference, in words


PAYOUT_TOTALS = (("charges", "Charges"), ("refunds", "− refunds"), ("fees", "− Stripe's fees"),
                 ("adjustments", "± adjustments"), ("payout", "= payout"))


def payout_view(run: SyncRun) -> PayoutView:
    """What a payout run recorded: its reconciliation (entered or held) and the transactions it paid out."""
    stored = json_object(run.totals)
    sums = stored.get("totals") if "totals" in stored else stored  # entered: {"totals", …}; held: the sums
    sums = sums or {}
    currency = run.currency or ""
    rows = [(label, money(Decimal(sums[name]), currency)) for name, label in PAYOUT_TOTALS if sums.get(name) is not None]
    difference = money(Decimal(stored["difference"]), currency) if stored.get("difference") else None
    return PayoutView(rows, list(stored.get("entries") or []), list(stored.get("transactions") or []), difference)
