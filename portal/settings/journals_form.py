"""The Journal entries form. The journal and accounts are chosen from the merchant's e-conomic lists; when
those cannot be read they are typed as numbers, and checked against e-conomic only when it can be read."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, SubmitField
from wtforms.validators import ValidationError
from wtforms.widgets import NumberInput, Select

from ..sync.economic_journals import POSTABLE_ACCOUNT_TYPES, Account, Journal
from ..sync.journal_choices import DEFAULT_TEXTS, NEEDED_BY_KIND, JournalChoices, text_problem
from .forms import select_choices
from .sync_config import JournalLists

KINDS = tuple(NEEDED_BY_KIND)
ACCOUNTS = ("stripe_balance_account", "bank_account", "fees_account")
NUMBERS = ("journal_number", *ACCOUNTS)
TEXTS = tuple(DEFAULT_TEXTS)

# How each kind and each account is named in messages.
KIND_WORDS = {"payments_enabled": "customer payments", "refunds_enabled": "refunds", "payouts_enabled": "payouts"}
ACCOUNT_WORDS = {"stripe_balance_account": "Stripe balance account", "bank_account": "bank account", "fees_account": "fees account"}
NEEDED = {
    "journal_number": "Choose the journal to enter {kinds} in.",
    "stripe_balance_account": "Choose the Stripe balance account: {kinds} are entered on it.",
    "bank_account": "Choose the bank account payouts arrive in.",
    "fees_account": "Choose the account for Stripe's fees.",
}
ENTRY_TYPE_WORDS = {"customerPayment": "customer payment", "financeVoucher": "finance", "supplierInvoice": "supplier invoice",
                    "supplierPayment": "supplier payment", "manualCustomerInvoice": "manual customer invoice"}
NOT_SET = "— not set —"


def _words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


class _SelectOrNumber:
    """A select of e-conomic's list, or a number input when the list could not be read (choices None)."""

    def __call__(self, field, **kwargs):
        if field.choices is None:
            return NumberInput(min=1, step=1)(field, inputmode="numeric", **kwargs)
        return Select()(field, **kwargs)


class EconomicNumberField(SelectField):
    """A journal or account number as text ("" when not set); `number` is it as an int, once validated."""

    widget = _SelectOrNumber()

    def __init__(self, label=None, validators=None, **kwargs):
        super().__init__(label, validators, validate_choice=False, **kwargs)

    def process_data(self, value):
        self.data = "" if value is None else str(value)

    def process_formdata(self, valuelist):
        if valuelist:
            self.data = (valuelist[0] or "").strip()

    def pre_validate(self, form):
        if self.data and not (self.data.isascii() and self.data.isdigit() and 0 < int(self.data) < 2**31):
            raise ValidationError("Enter the number only, in digits.")

    def _value(self) -> str:
        return self.data or ""

    @property
    def number(self) -> int | None:
        return int(self.data) if self.data else None


def entry_text(form, field) -> None:
    problem = text_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class JournalSettingsForm(FlaskForm):
    payments_enabled = BooleanField(
        "Enter customer payments",
        description="When a Stripe invoice whose e-conomic document is a booked invoice is paid, the payment is entered "
        "against the customer, on the Stripe balance account.",
    )
    refunds_enabled = BooleanField(
        "Enter refunds", description="When Stripe refunds a payment, the money going back to the customer is entered."
    )
    credit_notes_enabled = BooleanField(
        "Make credit notes from Stripe credit notes",
        description="Follows your Invoice Sync Rules: a draft credit note, or a booked one when the rules book invoices.",
    )
    payouts_enabled = BooleanField(
        "Enter payouts and Stripe's fees",
        description="When Stripe pays out, the payout moves from the Stripe balance account to your bank account, and the "
        "fees Stripe kept go to the fees account.",
    )
    journal_number = EconomicNumberField("Journal", description="The e-conomic journal (kassekladde) the entries wait in until you book it.")
    stripe_balance_account = EconomicNumberField(
        "Stripe balance account",
        description="A clearing account for the money Stripe holds for you between a payment and its payout, "
        "e.g. “5830 Stripe”.",
    )
    bank_account = EconomicNumberField("Bank account payouts arrive in")
    fees_account = EconomicNumberField("Fees account", description="Where Stripe's fees are entered, an expense account.")
    payment_text = StringField("Payment text", filters=[_strip], validators=[entry_text])
    refund_text = StringField("Refund text", filters=[_strip], validators=[entry_text])
    fee_text = StringField("Fee text", filters=[_strip], validators=[entry_text])
    payout_text = StringField("Payout text", filters=[_strip], validators=[entry_text])
    submit = SubmitField("Save journal entries")

    _lists: JournalLists | None = None  # e-conomic's lists, when they could be read

    def set_economic_lists(self, lists: JournalLists | None, stored: JournalChoices) -> None:
        """Fill the journal and account dropdowns from e-conomic (accounts: only those taking entries); a saved
        number e-conomic does not list stays choosable. Without lists (None) the numbers are typed."""
        self._lists = lists
        if lists is None:
            for name in NUMBERS:
                getattr(self, name).choices = None
            return
        journals = [(str(journal.number), f"{journal.number} – {journal.name}") for journal in lists.journals]
        accounts = [(str(account.number), f"{account.number} – {account.name}") for account in lists.accounts if account.accepts_entries]
        for name in NUMBERS:
            choices = list(journals if name == "journal_number" else accounts)
            saved = getattr(stored, name)
            if saved is not None and str(saved) not in {value for value, _ in choices}:
                choices.append((str(saved), f"{saved} (saved)"))
            getattr(self, name).choices = select_choices([("", NOT_SET), *choices])

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for problem in (self._needed_problems, self._economic_problems, self._same_account_problems):
            for name, message in problem():
                field = getattr(self, name)
                if not field.errors:  # one message a field: the first that applies
                    field.errors = [*field.errors, message]
                ok = False
        return ok

    def _needed_problems(self):
        """A kind turned on needs its journal and accounts."""
        for name, message in NEEDED.items():
            needing = [KIND_WORDS[kind] for kind in KINDS if getattr(self, kind).data and name in NEEDED_BY_KIND[kind]]
            if needing and not getattr(self, name).data:
                yield name, message.format(kinds=_words(needing))

    def _economic_problems(self):
        """Each number chosen exists in e-conomic, an account takes entries, the journal takes the entries meant for it."""
        if self._lists is None:
            return
        journals = {journal.number: journal for journal in self._lists.journals}
        accounts = {account.number: account for account in self._lists.accounts}
        number = None if self.journal_number.errors else self.journal_number.number
        if number is not None:
            journal = journals.get(number)
            if journal is None:
                yield "journal_number", f"Your e-conomic has no journal {number}: choose one from the list."
            else:
                yield from self._journal_type_problems(journal)
        for name in ACCOUNTS:
            field = getattr(self, name)
            if field.number is None or field.errors:
                continue
            account = accounts.get(field.number)
            if account is None:
                yield name, f"Your e-conomic has no account {field.number}: choose one from the list."
            elif not account.accepts_entries:
                yield name, f"Account {account.number} – {account.name} takes no entries ({_why_no_entries(account)}): choose one that does."

    def _journal_type_problems(self, journal: Journal):
        restricted = journal.entry_type_restricted_to
        if not restricted:
            return
        only = ENTRY_TYPE_WORDS.get(restricted, restricted)
        if self.payouts_enabled.data:
            yield "journal_number", (f"Journal {journal.number} – {journal.name} takes only {only} entries, so payouts and "
                                     "Stripe's fees cannot be entered in it: choose a journal that takes every kind of entry.")
        elif self.payments_enabled.data and restricted != "customerPayment":
            yield "journal_number", (f"Journal {journal.number} – {journal.name} takes only {only} entries, so customer payments "
                                     "cannot be entered in it: choose another journal.")

    def _same_account_problems(self):
        """The Stripe balance, bank and fees accounts are three different accounts."""
        numbers = {name: getattr(self, name).number for name in ACCOUNTS if not getattr(self, name).errors}
        for index, name in enumerate(ACCOUNTS):
            number = numbers.get(name)
            for earlier in ACCOUNTS[:index]:
                if number is not None and number == numbers.get(earlier):
                    yield name, (f"Account {number} is already the {ACCOUNT_WORDS[earlier]}: the Stripe balance, bank and fees "
                                 "accounts must be three different accounts.")
                    break

    def choices(self) -> JournalChoices:
        """What the form holds, once validated."""
        return JournalChoices(
            **{kind: bool(getattr(self, kind).data) for kind in KINDS},
            **{name: getattr(self, name).number for name in NUMBERS},
            **{name: getattr(self, name).data for name in TEXTS},
        )


def _why_no_entries(account: Account) -> str:
    if account.type not in POSTABLE_ACCOUNT_TYPES:
        return "it is a heading or a total"
    return "it is barred or blocked for direct entries"
