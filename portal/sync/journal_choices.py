"""What a merchant chose for journal entries, as the worker and the screens read it: which money movements
after the invoice are entered in e-conomic, in which journal, on which accounts, and the entry texts.

Plain Python: no Flask, no database. `portal.merchant_config.journal_settings_for` reads a merchant's
`JournalSettings` row into a `JournalChoices`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Placeholders the entry texts may use, filled from the Stripe object the entry is for (the JournalSettings
# model's defaults come from here).
TEXT_PLACEHOLDERS = ("invoice_number", "customer_name", "payout_id", "refund_id", "credit_note_number")
DEFAULT_TEXTS = {
    "payment_text": "Stripe payment {invoice_number} {customer_name}",
    "refund_text": "Stripe refund {invoice_number} {customer_name}",
    "fee_text": "Stripe fees",  # the payout's id follows every entry text, in parentheses
    "payout_text": "Stripe payout",
}
TEXT_KINDS = {"payment": "payment_text", "refund": "refund_text", "fee": "fee_text", "payout": "payout_text"}
TEXT_MAX_LENGTH = 200

# What each kind of entry needs chosen before it can be entered; credit notes are documents, not entries.
NEEDED_BY_KIND = {
    "payments_enabled": ("journal_number", "stripe_balance_account"),
    "refunds_enabled": ("journal_number", "stripe_balance_account"),
    "credit_notes_enabled": (),
    "payouts_enabled": ("journal_number", "stripe_balance_account", "bank_account", "fees_account"),
}

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def placeholders_in_words() -> str:
    """ "{invoice_number}, {customer_name}, … or {credit_note_number}", for messages and hints."""
    names = [f"{{{name}}}" for name in TEXT_PLACEHOLDERS]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def text_problem(template: str) -> str | None:
    """Why `template` cannot be an entry text, in the merchant's words; None when it can."""
    if not template.strip():
        return f"Enter a text for the entry (at most {TEXT_MAX_LENGTH} characters)."
    if len(template) > TEXT_MAX_LENGTH:
        return f"Keep the text to {TEXT_MAX_LENGTH} characters; this one has {len(template)}."
    unknown = [name for name in dict.fromkeys(_PLACEHOLDER.findall(template)) if name not in TEXT_PLACEHOLDERS]
    if unknown:
        named = " and ".join(f"“{{{name}}}”" for name in unknown)
        verb = "is not a placeholder" if len(unknown) == 1 else "are not placeholders"
        return f"{named} {verb}. The placeholders are {placeholders_in_words()}."
    rest = _PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        return f"Use {{ and }} only around a placeholder: {placeholders_in_words()}."
    return None


@dataclass(frozen=True)
class JournalChoices:
    """A merchant's journal entry settings. The defaults are a merchant who chose nothing: everything off."""

    payments_enabled: bool = False
    refunds_enabled: bool = False
    credit_notes_enabled: bool = False
    payouts_enabled: bool = False  # the payout and Stripe's fees in it
    journal_number: int | None = None
    stripe_balance_account: int | None = None  # a clearing account for money Stripe holds
    bank_account: int | None = None  # where payouts arrive
    fees_account: int | None = None  # Stripe's fees
    payment_text: str = DEFAULT_TEXTS["payment_text"]
    refund_text: str = DEFAULT_TEXTS["refund_text"]
    fee_text: str = DEFAULT_TEXTS["fee_text"]
    payout_text: str = DEFAULT_TEXTS["payout_text"]

    def text(self, kind: str, **values) -> str:
        """The entry text of `kind` ("payment", "refund", "fee" or "payout") with its placeholders filled from
        `values` (e.g. invoice_number="INV-7"). A placeholder without a value, or not one of TEXT_PLACEHOLDERS,
        becomes empty; runs of spaces become one. Never raises over the template (it was checked on save);
        an unknown `kind` is a ValueError."""
        if kind not in TEXT_KINDS:
            raise ValueError(f"{kind!r} is not a kind of entry text: {', '.join(TEXT_KINDS)}.")
        template = getattr(self, TEXT_KINDS[kind]) or DEFAULT_TEXTS[TEXT_KINDS[kind]]

        def fill(match: re.Match) -> str:
            name = match.group(1)
            value = values.get(name) if name in TEXT_PLACEHOLDERS else None
            return "" if value is None else str(value)

        return " ".join(_PLACEHOLDER.sub(fill, template).split())
