"""What a finished run tells a person: its status in words, the one-line note in the list, and for a
held run the review panel's figures (Stripe's and e-conomic's totals side by side).

Pure functions of a `SyncRun`: no queries, nothing written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from ..models import RunStatus, SyncRun
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


def row_note(run: SyncRun) -> str:
    """The list's note for a finished run: a held run's first difference (or its reason), why a run
    was skipped, or a failed run's error. Empty for the others."""
    if run.status == "held":
        differences = _totals(run).get("differences") or []
        return _short(differences[0] if differences else (run.held_reason or "Held for review."))
    if run.status in ("skipped", "failed"):
        return _short(run.last_error or "")
    return ""


def differences(run: SyncRun) -> list[str]:
    """Every difference between Stripe's and e-conomic's totals, in plain words (for the CSV)."""
    return list(_totals(run).get("differences") or [])


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
    totals = _totals(run)
    figures, rounding = _figures(totals, run.currency)
    return HeldReview(headline=headline, reason=run.held_reason, draft_number=draft_number, is_draft_rule=is_draft_rule,
                      figures=figures, rounding=rounding, setting_anchor=run.held_setting or None)


def _totals(run: SyncRun) -> dict:
    if not run.totals:
        return {}
    try:
        totals = json.loads(run.totals)
    except ValueError:
        return {}
    return totals if isinstance(totals, dict) else {}


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
