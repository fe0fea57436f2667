"""The sync engine: one Stripe invoice → e-conomic customer, products, then the document.

Plain Python. The caller (portal.runs.jobs) hands in the two API clients, the merchant's settings,
a recorder that persists progress and audit rows, and a store of remembered links. Every create is
recorded before and after it is sent and carries an `Idempotency-Key`, and a retry first looks for
what an earlier attempt created, so no attempt can make a second customer, product or document.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pycountry
import stripe

from .credit_notes import CREDIT_NOTE_ID_PREFIX, REVERSAL_ID_PREFIX, credit_note_as_invoice, fetch_credit_note, fetch_reversal
from .economic import EconomicClient, EconomicError
from .errors import SettingMissing, SyncFailure, SyncHeld, SyncSkipped
from .lines import LinePlan, PlannedLine, amounts_e_conomic_cannot_carry, plan_lines, product_id_of
from .mapping import Mapping, country_name, document_fields, resolve
from .money import from_minor
from .stripe_source import fetch_invoice
from .vat import (
    Figures,
    Reconciliation,
    Treatment,
    VatChoice,
    default_vat_mapping,
    distinct,
    money,
    reconcile,
    rounding_needed,
    tax_rates_of,
    treatment_of_taxes,
)

__all__ = ["EngineSettings", "RunState", "SyncEngine", "Outcome", "SyncFailure", "SettingMissing", "SyncHeld",
           "SyncSkipped", "product_number_for"]

EU_VAT_TAX_ID_TYPES = frozenset({"eu_vat"})
# e-conomic documents `vatNumber` on customers only for agreements in these countries; the others
# (Denmark among them) put a CVR or VAT id in `corporateIdentificationNumber`.
VAT_NUMBER_AGREEMENT_COUNTRIES = frozenset({"SE", "GB", "DE", "PL", "FI"})
PRODUCT_NUMBER_MAX = 25
ROUNDING_LINE_TEXT = "VAT rounding difference to Stripe's total"


@dataclass
class EngineSettings:
    """What the engine needs of the merchant's configuration, copied out of the database."""

    document_type: str  # draft_invoice, booked_invoice, draft_order
    write_back_to_stripe: bool
    mappings: dict[str, Mapping]
    match_customers_on: str = "email"
    custom_match_stripe_key: str | None = None
    custom_match_economic_field: str | None = None
    customer_number_mode: str = "economic"
    customer_number_metadata_key: str = "economic_customer_number"
    payment_terms_number: int | None = None
    customer_group_number: int | None = None
    vat_zone_domestic: int | None = None
    vat_zone_eu_with_vat_id: int | None = None
    vat_zone_eu_without_vat_id: int | None = None
    vat_zone_outside_eu: int | None = None
    home_country: str = "DK"
    currency_mode: str = "invoice"
    fixed_currency: str | None = None
    layout_number: int | None = None
    time_zone: str = "Europe/Copenhagen"
    product_matching: str = "direct"
    simple_search_on: str = "product_number"
    product_number_metadata_key: str = "economic_product_number"
    product_not_found: str = "create"
    default_product_number: str | None = None
    new_product_group_number: int | None = None
    apply_invoice_discounts: bool = True
    discount_product_number: str | None = None
    shipping_product_number: str | None = None
    rounding_product_number: str | None = None
    # Stripe VAT treatment key → where it goes in e-conomic (portal.sync.vat); None: the defaults.
    vat_mapping: dict[str, VatChoice] | None = None

    def vat_choices(self) -> dict[str, VatChoice]:
        if self.vat_mapping is not None:
            return self.vat_mapping
        return default_vat_mapping(self.home_country, self.vat_zone_domestic, self.vat_zone_eu_with_vat_id,
                                   self.vat_zone_outside_eu, self.vat_zone_eu_without_vat_id)


@dataclass
class VatPlan:
    """The VAT zone of the document and each line's treatment, decided from what Stripe charged."""

    zone: int
    treatments: list[Treatment]
    by_line: dict[str, Treatment]
    groups: dict[str, int | None]  # Stripe product id → product group for a new product


@dataclass
class RunState:
    """The run as the engine sees it; the recorder persists every change before the next call."""

    run_id: int
    stripe_invoice_id: str
    attempt: int
    economic_customer_number: int | None = None
    economic_draft_number: int | None = None
    economic_booked_number: int | None = None
    economic_order_number: int | None = None
    document_create_started: bool = False
    generation: int = 1  # "Create a new document" starts a new one: new idempotency keys
    replaced_numbers: frozenset[int] = frozenset()  # documents of earlier generations: never "found" again
    discard_draft_number: int | None = None  # a held draft to delete before making it anew
    override_reconciliation: bool = False  # "Book anyway": a person reviewed the draft


class Recorder(Protocol):
    """Where the engine reports what happened, as it happens, so a run taken back after a crash knows what its
    earlier attempt made. What the engine reports is persisted before its next call to Stripe or e-conomic
    (`document_create_started` before the create it announces), and a number with the `step` row the engine
    writes right after it; a step that made or changed something ("created", "done") at once."""

    def invoice_fetched(self, number: str | None, customer_name: str | None, customer_email: str | None,
                        currency: str | None, total_minor: int | None) -> None: ...
    def customer_known(self, number: int) -> None: ...
    def document_create_started(self) -> None: ...
    def draft_known(self, document_type: str, number: int) -> None: ...
    def invoice_booked(self, number: int) -> None: ...
    def held_draft_discarded(self) -> None: ...
    def credit_note_due(self) -> None: ...
    def step(self, step: str, outcome: str, *, numbers: str | None = None, summary: dict | None = None,
             error: str | None = None, duration_ms: int = 0) -> None: ...


class LinkStore(Protocol):
    def customer_number(self, stripe_customer_id: str) -> int | None: ...
    def remember_customer(self, stripe_customer_id: str, number: int) -> None: ...
    def product_number(self, stripe_product_id: str) -> str | None: ...
    def remember_product(self, stripe_product_id: str, number: str) -> None: ...


@dataclass
class Outcome:
    document_type: str
    document_number: int
    reconciled: bool
    reconciliation: str
    economic_calls: int
    notes: list[str] = field(default_factory=list)
    totals: dict[str, Any] | None = None
    needs_credit_note: bool = False


def filter_value(value: str) -> str:
    """Escape a value for e-conomic's `filter=` syntax."""
    for char in "$(),*[]":
        value = value.replace(char, "$" + char)
    return value


def idempotency_key(*parts: Any) -> str:
    """A stable `Idempotency-Key` from what makes a create unique (a run and step, or a Stripe object)."""
    raw = ":".join(str(p) for p in parts)
    return "invoice-sync-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def stripe_failure(error: stripe.StripeError) -> SyncFailure:
    message = f"Stripe: {error.user_message or str(error) or error.__class__.__name__}"
    transient = isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError)) or (
        (error.http_status or 0) >= 500
    )
    return SyncFailure(message, transient=transient)


# Where a merchant fixes what e-conomic refused, by the refused field's first part.
FIELD_HINTS = {
    "delivery": "the Invoice/Order field mappings (Delivery fields)",
    "notes": "the Invoice/Order field mappings (Heading and text lines)",
    "references": "the Stripe invoice number",
    "lines": "the products and their groups (Customer & product settings › Product sync)",
    "customer": "the customer in e-conomic and Customer & product settings › Customer sync",
    "currency": "the currency setting and e-conomic's currency list",
    "layout": "the Invoice layout setting",
    "paymentTerms": "the Payment terms setting",
    "dueDate": "the Payment terms setting (due-date terms need a due date)",
    "recipient": "the VAT mapping (the document's VAT zone) and the customer's address in Stripe",
    "vatZone": "the VAT mapping",
    "customerGroup": "the Customer group setting",
    "productGroup": "the product group setting",
    "vatNumber": "the customer's tax id in Stripe",
    "corporateIdentificationNumber": "the customer's tax id in Stripe",
    "productNumber": "the product settings",
}


def economic_failure(error: EconomicError, doing: str) -> SyncFailure:
    """e-conomic's refusal as e-conomic worded it, with where to look; transient ones are retried."""
    if error.transient:
        return SyncFailure(f"{doing}: {error}", transient=True, retry_after=error.retry_after)
    places = []
    for name in error.field_errors:
        first = name.split(".", 1)[0].split("[", 1)[0]
        hint = FIELD_HINTS.get(first) or FIELD_HINTS.get(name.rsplit(".", 1)[-1])
        if hint and hint not in places:
            places.append(hint)
    text = f"e-conomic refused {doing}: {error}"
    if places:
        text += f". Check {' and '.join(places)}, then press Sync again."
    return SyncFailure(text)


@contextmanager
def currency_refusals_held(what: str, currency: str) -> Iterator[None]:
    """A currency the agreement refuses cannot be fixed by retrying: hold the run, in e-conomic's words."""
    try:
        yield
    except EconomicError as error:
        if error.status == 400 and "currency" in error.field_errors:
            raise SyncHeld(f"e-conomic refused {what} in {currency}: {error}. Documents keep the Stripe invoice's "
                           "currency; add it to your e-conomic agreement (or, for new customers, choose a fixed "
                           "currency), then press Sync again.", setting="currency") from None
        raise


def customer_tax_id(invoice: dict) -> str | None:
    for tax_id in invoice.get("customer_tax_ids") or []:
        if tax_id.get("type") in EU_VAT_TAX_ID_TYPES and tax_id.get("value"):
            return tax_id["value"]
    for tax_id in invoice.get("customer_tax_ids") or []:
        if tax_id.get("value"):
            return tax_id["value"]
    return None


def product_number_for(stripe_product_id: str) -> str:
    """A stable e-conomic product number (≤ 25 characters) for a Stripe product id.

    Ids that fit are used as they are; longer ones keep their first 16 characters, readable, and end in 8
    hex digits of a hash of the whole id, so two ids that share a long prefix never become one product.
    """
    if len(stripe_product_id) <= PRODUCT_NUMBER_MAX:
        return stripe_product_id
    digest = hashlib.sha256(stripe_product_id.encode()).hexdigest()[:8]
    return f"{stripe_product_id[:PRODUCT_NUMBER_MAX - 9]}-{digest}"


def country_code(value: str | None) -> str | None:
    """"DK", "Denmark" or "Danmark" → "DK" (e-conomic's `/self` names the company's country in words)."""
    text = (value or "").strip()
    if not text:
        return None
    if len(text) == 2:
        return text.upper()
    for lookup in (lambda t: pycountry.countries.lookup(t), lambda t: pycountry.countries.search_fuzzy(t)[0]):
        try:
            return lookup(text).alpha_2
        except LookupError:
            continue
    return {"danmark": "DK", "sverige": "SE", "norge": "NO", "deutschland": "DE", "suomi": "FI"}.get(text.lower())


def _emails(field: str | None) -> set[str]:
    """The addresses in an e-conomic e-mail field (several may be listed, separated by spaces)."""
    return {part.strip().lower() for part in (field or "").replace(",", " ").replace(";", " ").split() if part.strip()}


def _required(value, setting: str, anchor: str):
    if value in (None, ""):
        raise SettingMissing(setting, anchor)
    return value


def _drop_empty(value: Any) -> Any:
    """e-conomic rejects explicit nulls: leave out None and empty strings and objects."""
    if isinstance(value, dict):
        cleaned = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", {}, [])}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


class SyncEngine:
    def __init__(self, stripe_client: stripe.StripeClient, economic: EconomicClient, settings: EngineSettings,
                 recorder: Recorder, links: LinkStore) -> None:
        self.stripe = stripe_client
        self.economic = economic
        self.settings = settings
        self.recorder = recorder
        self.links = links

    # -- the run -------------------------------------------------------------------------------------

    def run(self, state: RunState, invoice: dict | None = None) -> Outcome:
        """Sync the run's invoice. `invoice`: the invoice as the caller fetched it a moment ago, if it did."""
        calls_before = self.economic.calls
        invoice = self._timed("fetch", self._fetch, state, invoice)
        rates = self._tax_rates(invoice)
        vat = self._timed("vat", self._vat_plan, invoice, rates)
        customer_number = self._timed("customer", self._customer, state, invoice, vat)
        product_numbers = self._timed("products", self._products, state, invoice, vat)
        s = self.settings
        plan = plan_lines(
            invoice, product_numbers, s.default_product_number, s.apply_invoice_discounts, s.discount_product_number,
            shipping_product_number=s.shipping_product_number, rates=rates,
        )
        outcome = self._timed("document", self._document, state, invoice, customer_number, plan, vat)
        outcome.economic_calls = self.economic.calls - calls_before
        outcome.notes = plan.notes + outcome.notes
        if self.settings.write_back_to_stripe:
            self._timed("write_back", self._write_back, state, invoice, outcome)
        return outcome

    def _timed(self, step: str, function, *args):
        started = time.monotonic()
        try:
            return function(*args)
        except EconomicError as error:
            failure = economic_failure(error, step)
        except stripe.StripeError as error:
            failure = stripe_failure(error)
        except SyncFailure as error:
            failure = error
        except SyncHeld as held:
            self.recorder.step(step, "held", error=held.reason, duration_ms=int((time.monotonic() - started) * 1000))
            raise
        except SyncSkipped as skipped:
            self.recorder.step(step, "skipped", error=skipped.reason, duration_ms=int((time.monotonic() - started) * 1000))
            raise
        self.recorder.step(step, "failed", error=failure.message, duration_ms=int((time.monotonic() - started) * 1000))
        raise failure

    # -- step 0: the invoice, fresh from Stripe ---------------------------------------------------------

    def _fetch(self, state: RunState, fetched: dict | None) -> dict:
        started = time.monotonic()
        if fetched and fetched.get("id") == state.stripe_invoice_id:
            invoice = fetched
        elif state.stripe_invoice_id.startswith(CREDIT_NOTE_ID_PREFIX):
            # A Stripe credit note, read fresh and adapted to the invoice's shape (portal.sync.credit_notes).
            invoice = credit_note_as_invoice(fetch_credit_note(self.stripe, state.stripe_invoice_id))
        elif state.stripe_invoice_id.startswith(REVERSAL_ID_PREFIX):
            # The credit note that reverses a voided, booked invoice in full (portal.sync.credit_notes).
            invoice = fetch_reversal(self.stripe, state.stripe_invoice_id)
        else:
            invoice = fetch_invoice(self.stripe, state.stripe_invoice_id)
        if invoice.get("status") == "draft":
            raise SyncFailure("The Stripe invoice is still a draft; only finalized invoices are synced.")
        if invoice.get("status") == "void" and not state.override_reconciliation:
            if state.economic_booked_number:
                self.recorder.credit_note_due()
            elif state.economic_draft_number or state.economic_order_number:
                raise SyncHeld("The Stripe invoice was voided after its draft was made in e-conomic. Delete the "
                               "draft in e-conomic; nothing was booked.")
            else:
                raise SyncSkipped("The Stripe invoice was voided before it was synced: nothing was made in e-conomic.")
        self.recorder.invoice_fetched(invoice.get("number"), invoice.get("customer_name"), invoice.get("customer_email"),
                                      (invoice.get("currency") or "").upper() or None, invoice.get("total"))
        self.recorder.step("fetch", "found", numbers=invoice.get("number"),
                           summary={"lines": len((invoice.get("lines") or {}).get("data") or [])},
                           duration_ms=int((time.monotonic() - started) * 1000))
        return invoice

    # -- before anything is made: VAT as Stripe charged it, amounts e-conomic can carry --------------------

    def _tax_rates(self, invoice: dict) -> dict[str, dict]:
        """The invoice's TaxRates, fetched through the SDK when the invoice names one it did not expand."""
        rates = tax_rates_of(invoice)
        wanted: set[str] = set()
        for line in (invoice.get("lines") or {}).get("data") or []:
            for tax in line.get("taxes") or []:
                rate = (tax.get("tax_rate_details") or {}).get("tax_rate")
                if isinstance(rate, str) and rate not in rates:
                    wanted.add(rate)
        for rate_id in sorted(wanted):
            rates[rate_id] = self.stripe.v1.tax_rates.retrieve(rate_id).to_dict()
        return rates

    def _vat_plan(self, invoice: dict, rates: dict[str, dict]) -> VatPlan:
        started = time.monotonic()
        s = self.settings
        inexact = amounts_e_conomic_cannot_carry(invoice)
        if inexact:
            currency = invoice["currency"].upper()
            shown = ", ".join(f"{amount} {currency}" for amount in inexact[:3])
            raise SyncHeld(f"This {currency} invoice has amounts with three decimals ({shown}); e-conomic's invoice "
                           "lines take two, so it cannot be booked exactly. Book it by hand in e-conomic.")
        by_line: dict[str, Treatment] = {}
        groups: dict[str, int | None] = {}
        choices = s.vat_choices()
        found: list[Treatment] = []
        for line in (invoice.get("lines") or {}).get("data") or []:
            treatment = treatment_of_taxes(line.get("taxes"), invoice, rates, s.home_country)
            by_line[line.get("id") or ""] = treatment
            found.append(treatment)
            product_id = product_id_of(line)
            choice = choices.get(treatment.key)
            if product_id and choice and choice.product_group_number:
                groups.setdefault(product_id, choice.product_group_number)
        shipping = invoice.get("shipping_cost") or {}
        if int(shipping.get("amount_total") or 0):
            found.append(treatment_of_taxes(shipping.get("taxes"), invoice, rates, s.home_country))
        if not found:  # an invoice without lines: its customer's country decides
            found.append(treatment_of_taxes([], invoice, rates, s.home_country))
        treatments = distinct(found)
        unmapped = [t for t in treatments if not (choices.get(t.key) and choices[t.key].vat_zone_number)]
        if unmapped:
            names = ", ".join(f"“{t.label}”" for t in unmapped)
            raise SyncHeld(f"Stripe's VAT on this invoice is {names}, which has no VAT mapping yet. Choose its "
                           "e-conomic VAT zone under Customer & product settings › VAT mapping, then press Sync again.",
                           setting="vat-mapping")
        zones = {choices[t.key].vat_zone_number for t in treatments}
        if len(zones) > 1:
            names = "; ".join(f"“{t.label}” → VAT zone {choices[t.key].vat_zone_number}" for t in treatments)
            raise SyncHeld(f"This invoice mixes VAT treatments that go to different VAT zones ({names}), and an "
                           "e-conomic document has one VAT zone. Book it by hand, or change the VAT mapping.",
                           setting="vat-mapping")
        zone = zones.pop()
        self.recorder.step("vat", "found", numbers=f"VAT zone {zone}",
                           summary={"treatments": [t.label for t in treatments]},
                           duration_ms=int((time.monotonic() - started) * 1000))
        return VatPlan(int(zone), treatments, by_line, groups)

    # -- step 1: the customer ---------------------------------------------------------------------------

    def _customer(self, state: RunState, invoice: dict, vat: VatPlan) -> int:
        started = time.monotonic()
        s = self.settings
        customer = invoice.get("customer") if isinstance(invoice.get("customer"), dict) else {}
        stripe_customer_id = customer.get("id") or invoice.get("customer")
        metadata = customer.get("metadata") or {}

        def done(number: int, outcome: str, how: str) -> int:
            state.economic_customer_number = number
            self.recorder.customer_known(number)
            if stripe_customer_id:
                self.links.remember_customer(stripe_customer_id, number)
            self.recorder.step("customer", outcome, numbers=f"customer {number}", summary={"how": how},
                               duration_ms=int((time.monotonic() - started) * 1000))
            return number

        number_from_stripe = str(metadata.get(s.customer_number_metadata_key) or "").strip()
        if number_from_stripe:
            if not number_from_stripe.isdigit():
                raise SyncFailure(f"The Stripe customer's metadata {s.customer_number_metadata_key} is "
                                  f"{number_from_stripe!r}, not an e-conomic customer number.")
            number = int(number_from_stripe)
            if state.economic_customer_number == number or self.links.customer_number(stripe_customer_id) == number:
                return done(number, "found", f"customer number {number} from the Stripe customer's metadata")
            try:
                self.economic.request("GET", f"/customers/{number}")
                return done(number, "found", f"customer number {number} from the Stripe customer's metadata")
            except EconomicError as error:
                if error.status != 404:
                    raise
                if s.customer_number_mode != "stripe":
                    raise SyncFailure(f"e-conomic has no customer {number}, the number in the Stripe customer's "
                                      f"metadata ({s.customer_number_metadata_key}).") from None
            return done(self._create_customer(state, invoice, number, vat), "created", "created with the number from Stripe")

        known = state.economic_customer_number or (self.links.customer_number(stripe_customer_id) if stripe_customer_id else None)
        if known and state.attempt > 1 and not self._economic_customer_exists(known):
            # A retry trusts no stored number: this one was deleted in e-conomic since an earlier attempt or sync
            # stored it (the document would be refused again). Found or made anew below; its link is replaced.
            known = state.economic_customer_number = None
        if known:
            return done(known, "found", "remembered from an earlier sync")

        found = self._find_customer(invoice, customer)
        if found is not None:
            return done(found, "found", f"matched on {s.match_customers_on}")
        return done(self._create_customer(state, invoice, None, vat), "created", "not found, so created")

    def _exists(self, path: str) -> bool:
        """Whether e-conomic has the resource (`GET` answers; a 404 is "no"; anything else is raised)."""
        try:
            self.economic.request("GET", path)
            return True
        except EconomicError as error:
            if error.status == 404:
                return False
            raise

    def _economic_customer_exists(self, number: int) -> bool:
        return self._exists(f"/customers/{number}")

    def _custom_match(self, customer: dict) -> dict[str, str]:
        """A customer the sync creates carries the value it is matched on, so the next look-up (a retry
        long after the first attempt, or the next invoice) finds it rather than making it again."""
        s = self.settings
        if s.match_customers_on != "custom" or not (s.custom_match_stripe_key and s.custom_match_economic_field):
            return {}
        value = str((customer.get("metadata") or {}).get(s.custom_match_stripe_key) or "").strip()
        return {s.custom_match_economic_field: value} if value else {}

    def _find_customer(self, invoice: dict, customer: dict) -> int | None:
        s = self.settings
        if s.match_customers_on == "custom":
            key = _required(s.custom_match_stripe_key, "Custom field: the Stripe metadata key", "customer-sync")
            field_name = _required(s.custom_match_economic_field, "Custom field: the e-conomic field", "customer-sync")
            value = (customer.get("metadata") or {}).get(key)
        else:
            field_name, value = {
                "name": ("name", invoice.get("customer_name")),
                "email": ("email", invoice.get("customer_email")),
                "phone": ("telephoneAndFaxNumber", invoice.get("customer_phone")),
            }[s.match_customers_on]
        if not value:
            return None
        value = str(value)
        if field_name == "email":
            # e-conomic's e-mail field may list several addresses: find it among them, then check exactly.
            query = f"email$like:*{filter_value(value)}*"
            wanted = value.strip().lower()

            def matches(item: dict) -> bool:
                return wanted in _emails(item.get("email"))
        else:
            query = f"{field_name}$eq:{filter_value(value)}"

            def matches(item: dict) -> bool:
                return True
        answer = self.economic.request("GET", "/customers", params={"filter": query, "pagesize": 20})
        candidates = [item for item in (answer or {}).get("collection") or [] if matches(item)]
        if len(candidates) > 1:
            names = ", ".join(f"{c['customerNumber']} {c.get('name') or ''}".strip() for c in candidates[:5])
            raise SyncHeld(f"{len(candidates)} e-conomic customers match {field_name} “{value}” ({names}), and the sync "
                           "will not guess. Put the right customer number in the Stripe customer's metadata "
                           f"({s.customer_number_metadata_key}), or make the match unique in e-conomic, then press "
                           "Sync again.", setting="customer-sync")
        return candidates[0]["customerNumber"] if candidates else None

    def _create_customer(self, state: RunState, invoice: dict, number: int | None, vat: VatPlan) -> int:
        s = self.settings
        address = invoice.get("customer_address") or {}
        street = ", ".join(p for p in (address.get("line1"), address.get("line2")) if p)
        body = _drop_empty({
            "customerNumber": number,
            "name": (invoice.get("customer_name") or invoice.get("customer_email") or "Stripe customer")[:255],
            "email": (invoice.get("customer_email") or "")[:255],
            "telephoneAndFaxNumber": (invoice.get("customer_phone") or "")[:255],
            "address": street[:510],
            "zip": (address.get("postal_code") or "")[:30],
            "city": (address.get("city") or "")[:50],
            "country": country_name(address.get("country") or "")[:50],
            **self._tax_id_field(invoice),
            "currency": self._customer_currency(invoice),
            "customerGroup": {"customerGroupNumber": _required(s.customer_group_number, "Customer group", "customer-group")},
            "paymentTerms": {"paymentTermsNumber": _required(s.payment_terms_number, "Payment terms", "payment-terms")},
            "vatZone": {"vatZoneNumber": vat.zone},
            "layout": {"layoutNumber": s.layout_number} if s.layout_number else None,
            **self._custom_match(invoice["customer"] if isinstance(invoice.get("customer"), dict) else {}),
        })
        # Keyed on the Stripe customer, not the run: two runs for one new customer get one e-conomic customer.
        stripe_customer = invoice["customer"]["id"] if isinstance(invoice.get("customer"), dict) else invoice.get("customer")
        with currency_refusals_held("a customer", body["currency"]):
            created = self.economic.request("POST", "/customers", json=body,
                                            idempotency_key=idempotency_key("customer", stripe_customer, number))
        return int(created["customerNumber"])

    def _tax_id_field(self, invoice: dict) -> dict[str, str]:
        """The customer's tax id in the field e-conomic uses for the agreement's country, never cut."""
        tax_id = customer_tax_id(invoice)
        if not tax_id:
            return {}
        country = self._agreement_country()
        field_name, limit = ("vatNumber", 20) if country in VAT_NUMBER_AGREEMENT_COUNTRIES else ("corporateIdentificationNumber", 40)
        if len(tax_id) > limit:
            raise SyncHeld(f"The customer's tax id in Stripe, “{tax_id}”, has {len(tax_id)} characters; e-conomic's "
                           f"{field_name} takes at most {limit}. Correct it on the Stripe customer, then press Sync again.")
        return {field_name: tax_id}

    def _agreement_country(self) -> str | None:
        if not hasattr(self, "_agreement_country_code"):
            agreement = self.economic.get_self() or {}
            self._agreement_country_code = country_code((agreement.get("company") or {}).get("country"))
        return self._agreement_country_code

    def _customer_currency(self, invoice: dict) -> str:
        """A new customer's currency: the invoice's, or the fixed one the merchant chose for new customers."""
        if self.settings.currency_mode == "fixed":
            return _required(self.settings.fixed_currency, "Fixed currency", "currency")
        return invoice["currency"].upper()

    # -- step 2: the products ---------------------------------------------------------------------------

    def _products(self, state: RunState, invoice: dict, vat: VatPlan) -> dict[str, str]:
        started = time.monotonic()
        s = self.settings
        numbers: dict[str, str] = {}
        summary: dict[str, dict] = {}
        outcome = "found"
        lines = (invoice.get("lines") or {}).get("data") or []
        for line in lines:
            product_id = product_id_of(line)
            if not product_id:
                _required(s.default_product_number, "Default product number (for lines without a Stripe product)", "default-product")
                continue
            if product_id in numbers:
                continue
            number, how, name = self._product(state, product_id, vat.groups.get(product_id))
            numbers[product_id] = number
            # The product's name too, so the invoice page can say "Created products Pro plan, Seats".
            summary[product_id] = {"number": number, "how": how, "name": name or line.get("description") or None}
            if how == "created":
                outcome = "created"
        if s.apply_invoice_discounts and invoice.get("discounts"):
            _required(s.discount_product_number, "Discount product number", "discounts")
        shipping = invoice.get("shipping_cost") or {}
        if int(shipping.get("amount_total") or 0):
            _required(s.shipping_product_number, "Shipping product (Stripe charged shipping on this invoice)", "shipping-product")
        self.recorder.step("products", outcome if numbers else "skipped",
                           numbers=", ".join(sorted(set(numbers.values()))) or None, summary=summary,
                           duration_ms=int((time.monotonic() - started) * 1000))
        return numbers

    def _product(self, state: RunState, product_id: str, group: int | None) -> tuple[str, str, str | None]:
        """(e-conomic product number, how it was found, the Stripe product's name when it was read)."""
        s = self.settings
        known = self.links.product_number(product_id)
        if known and (state.attempt == 1 or self._economic_product_exists(known)):
            return known, "remembered", None  # on a retry only once e-conomic still has it (deleted since: found or made anew)
        product = self.stripe.v1.products.retrieve(product_id).to_dict()
        number: str | None = None
        if s.product_matching == "direct":
            linked = str((product.get("metadata") or {}).get(s.product_number_metadata_key) or "").strip()
            if linked and self._economic_product_exists(linked):
                number = linked
            elif state.attempt > 1 and self._economic_product_exists(product_number_for(product_id)):
                number = product_number_for(product_id)  # an earlier attempt made it and lost the answer
        elif s.simple_search_on == "product_number":
            candidate = product_number_for(product_id)
            if self._economic_product_exists(candidate):
                number = candidate
        else:
            answer = self.economic.request("GET", "/products", params={"filter": f"name$eq:{filter_value(product.get('name') or '')}", "pagesize": 1})
            collection = (answer or {}).get("collection") or []
            number = collection[0]["productNumber"] if collection else None
        if number is None:
            if s.product_not_found == "skip":
                raise SyncFailure(f"Stripe product {product.get('name')!r} ({product_id}) was not found in e-conomic, and "
                                  "Product Sync is set to Skip Invoice Generation: nothing was created.")
            if s.product_not_found == "default":
                # Not remembered: the next sync looks for the real product again.
                return _required(s.default_product_number, "Default product number", "default-product"), "default product", product.get("name")
            number = self._create_product(state, product, group)
            self.links.remember_product(product_id, number)
            return number, "created", product.get("name")
        self.links.remember_product(product_id, number)
        return number, "found", product.get("name")

    def _economic_product_exists(self, number: str) -> bool:
        return self._exists(f"/products/{quote(number, safe='')}")

    def _create_product(self, state: RunState, product: dict, group: int | None) -> str:
        group = group or _required(self.settings.new_product_group_number, "Product group for new products", "product-group")
        number = product_number_for(product["id"])
        body = _drop_empty({
            "productNumber": number,
            "name": (product.get("name") or number)[:300],
            "description": (product.get("description") or "")[:500],
            "productGroup": {"productGroupNumber": group},
        })
        # Keyed on the whole Stripe id: two products can never share a key. Past e-conomic's key window a
        # repeated create is refused as a number in use: that product is ours, made by an earlier attempt.
        try:
            created = self.economic.request("POST", "/products", json=body,
                                            idempotency_key=idempotency_key("product", product["id"]))
        except EconomicError as error:
            if error.status == 400 and self._economic_product_exists(number):
                return number
            raise
        return str(created["productNumber"])

    # -- step 3: the document ---------------------------------------------------------------------------

    def document_body(self, invoice: dict, customer_number: int, plan: LinePlan, zone: int) -> tuple[dict, list]:
        s = self.settings
        resolved = resolve(invoice, s.mappings, s.time_zone)
        fields = document_fields(resolved)
        address = invoice.get("customer_address") or {}
        street = ", ".join(p for p in (address.get("line1"), address.get("line2")) if p)

        def day(timestamp):
            if not timestamp:
                return None
            return datetime.fromtimestamp(timestamp, timezone.utc).astimezone(ZoneInfo(s.time_zone)).date().isoformat()

        issued = day(invoice.get("effective_at") or (invoice.get("status_transitions") or {}).get("finalized_at") or invoice.get("created"))
        notes = fields.get("notes")
        credit_note = invoice.get("credit_note") or {}
        if credit_note.get("heading"):
            # A Stripe credit note (portal.sync.credit_notes): the heading names it and the invoice it credits,
            # whatever the heading mapping says, so the e-conomic credit note is never read as an invoice.
            notes = {**(notes or {}), "heading": credit_note["heading"][:250]}
        body = _drop_empty({
            "date": issued,
            # Used by e-conomic when the payment terms are of the due-date type (then it is mandatory: an
            # automatically charged invoice, which has no due date, is due on its date); other terms
            # compute their own due date.
            "dueDate": day(invoice.get("due_date")) or issued,
            "currency": invoice["currency"].upper(),
            "customer": {"customerNumber": customer_number},
            "layout": {"layoutNumber": _required(s.layout_number, "Invoice layout", "layout")},
            "paymentTerms": {"paymentTermsNumber": _required(s.payment_terms_number, "Payment terms", "payment-terms")},
            "recipient": {
                "name": (invoice.get("customer_name") or invoice.get("customer_email") or "Stripe customer")[:250],
                "address": street[:250],
                "zip": (address.get("postal_code") or "")[:50],
                "city": (address.get("city") or "")[:250],
                "country": country_name(address.get("country") or "")[:50],
                "vatZone": {"vatZoneNumber": zone},
            },
            "delivery": fields.get("delivery"),
            "notes": notes,
            "references": {"other": (invoice.get("number") or invoice["id"])[:250]},
            "lines": [line.as_economic(n) for n, line in enumerate(plan.lines, start=1)],
        })
        for line in body["lines"]:
            if "product" not in line:
                raise SettingMissing("Default product number (for lines without a Stripe product)", "default-product")
        return body, resolved

    def _document(self, state: RunState, invoice: dict, customer_number: int, plan: LinePlan, vat: VatPlan) -> Outcome:
        started = time.monotonic()
        body, resolved = self.document_body(invoice, customer_number, plan, vat.zone)
        summary = {
            "mapped": {f.target.key: f.value for f in resolved if f.value is not None},
            "cut": {f.target.key: f.note for f in resolved if f.cut_from is not None},
            "fallbacks": [f.target.key for f in resolved if f.used_fallback],
            "lines": len(body["lines"]),
        }
        reference = body["references"]["other"]
        kind = self.settings.document_type
        path = "/orders/drafts" if kind == "draft_order" else "/invoices/drafts"
        number_field = "orderNumber" if kind == "draft_order" else "draftInvoiceNumber"
        state_field = "economic_order_number" if kind == "draft_order" else "economic_draft_number"
        label = "draft order" if kind == "draft_order" else "draft invoice"
        retrying = state.document_create_started or state.attempt > 1

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        if kind == "booked_invoice" and state.economic_booked_number:
            booked = self.economic.request("GET", f"/invoices/booked/{state.economic_booked_number}")
            self.recorder.step("document", "found", numbers=f"booked invoice {state.economic_booked_number}",
                               summary=summary, duration_ms=elapsed())
            return self._outcome(state, invoice, plan, booked, found_booked=True)
        if kind == "booked_invoice" and retrying:
            # An earlier attempt may have booked it and lost the answer: the draft is gone by then.
            booked = self._lookup("/invoices/booked", reference, state.replaced_numbers)
            if booked:
                number = booked["bookedInvoiceNumber"]
                state.economic_booked_number = number
                self.recorder.invoice_booked(number)
                self.recorder.step("document", "found", numbers=f"booked invoice {number}", summary=summary,
                                   duration_ms=elapsed())
                return self._outcome(state, invoice, plan, booked, found_booked=True)

        if state.discard_draft_number is not None:
            self._discard(path, state.discard_draft_number)
            state.discard_draft_number = None
            self.recorder.held_draft_discarded()

        draft_number = getattr(state, state_field)
        draft = None
        if draft_number is not None:
            try:
                draft = self.economic.request("GET", f"{path}/{draft_number}")
            except EconomicError as error:
                if error.status != 404:
                    raise
                draft_number = None  # deleted in e-conomic since: look again, else make it anew
        if draft_number is None and retrying:
            found = self._lookup(path, reference, state.replaced_numbers)
            if found:
                draft_number = found[number_field]
                draft = self.economic.request("GET", f"{path}/{draft_number}")
        outcome = "found"
        if draft_number is None:
            state.document_create_started = True
            self.recorder.document_create_started()
            with currency_refusals_held("a document", body["currency"]):
                draft = self.economic.request("POST", path, json=body,
                                              idempotency_key=self._key(state, "document", kind))
            draft_number = draft[number_field]
            outcome = "created"
        setattr(state, state_field, draft_number)
        self.recorder.draft_known(kind, draft_number)
        self.recorder.step("document", outcome, numbers=f"{label} {draft_number}", summary=summary, duration_ms=elapsed())

        draft, result = self._reconciled(state, invoice, plan, vat, body, path, draft_number, draft)
        if not result.agrees and not state.override_reconciliation:
            raise self._held(result, vat, label, draft_number, kind)
        if kind != "booked_invoice":
            return self._outcome(state, invoice, plan, draft, result=result)
        booked = self._book(state, draft_number)
        return self._outcome(state, invoice, plan, booked, result=result)

    def _key(self, state: RunState, *parts: Any) -> str:
        """The Idempotency-Key of a create in this run; later generations of a run get keys of their own."""
        if state.generation > 1:
            return idempotency_key(state.run_id, *parts, "generation", state.generation)
        return idempotency_key(state.run_id, *parts)

    def _discard(self, path: str, number: int) -> None:
        """Delete a held draft that "Sync again" replaces (gone already is fine)."""
        try:
            self.economic.request("DELETE", f"{path}/{number}")
        except EconomicError as error:
            if error.status != 404:
                raise
        self.recorder.step("discard", "done", numbers=f"{path.strip('/').replace('/', ' ')} {number} deleted")

    def _lookup(self, path: str, reference: str, exclude: frozenset[int] = frozenset()) -> dict | None:
        """What an earlier attempt of this generation created for this invoice, found by `references.other`."""
        query = {"filter": f"references.other$eq:{filter_value(reference)}", "pagesize": 100}
        for item in (self.economic.request("GET", path, params=query) or {}).get("collection") or []:
            number = item.get("bookedInvoiceNumber") or item.get("orderNumber") or item.get("draftInvoiceNumber")
            if number not in exclude:
                return item
        return None

    # -- reconciliation, before anything is booked --------------------------------------------------------

    def _stripe_figures(self, plan: LinePlan) -> Figures:
        return Figures(plan.expected_net, plan.expected_vat, plan.expected_gross)

    def _rounding_on(self, draft: dict) -> Decimal:
        """The rounding line an earlier attempt put on this draft, if any."""
        number = self.settings.rounding_product_number
        total = Decimal(0)
        for line in draft.get("lines") or []:
            if number and (line.get("product") or {}).get("productNumber") == number and \
                    str(line.get("description") or "").startswith(ROUNDING_LINE_TEXT):
                total += Decimal(str(line.get("unitNetPrice") or 0)) * Decimal(str(line.get("quantity") or 1))
        return total

    def _reconciled(self, state: RunState, invoice: dict, plan: LinePlan, vat: VatPlan, body: dict, path: str,
                    draft_number: int, draft: dict) -> tuple[dict, Reconciliation]:
        """e-conomic's own totals for the draft beside Stripe's; a VAT rounding difference of a few minor
        units is put on an explicit rounding line (the merchant's rounding product), never passed silently."""
        currency = invoice["currency"].upper()
        stripe_figures = self._stripe_figures(plan)
        rounding = self._rounding_on(draft)
        result = reconcile(currency, stripe_figures, Figures.from_economic(draft), rounding)
        if result.agrees or state.override_reconciliation:
            return draft, result
        adjustment = rounding_needed(result, from_minor(1, currency))
        if adjustment is None:
            return draft, result
        product = self.settings.rounding_product_number
        if not product:
            raise SyncHeld(
                f"e-conomic's VAT differs from Stripe's by {money(abs(adjustment), currency)} (rounding: "
                f"{result.summary()}). Choose a rounding product (in a product group without VAT) under Customer & "
                "product settings, then press Sync again; the draft is kept.",
                setting="rounding-product", totals=result.as_json(), summary=result.summary())
        lines = [*body["lines"]]
        lines.append(PlannedLine(f"{ROUNDING_LINE_TEXT} ({money(adjustment, currency)})", Decimal(1), rounding + adjustment,
                                 product_number=product).as_economic(len(lines) + 1))
        started = time.monotonic()
        updated = self.economic.request("PUT", f"{path}/{draft_number}", json={**body, "lines": lines})
        self.recorder.step("rounding", "created", numbers=f"rounding line {money(adjustment, currency)}",
                           duration_ms=int((time.monotonic() - started) * 1000))
        result = reconcile(currency, stripe_figures, Figures.from_economic(updated), rounding + adjustment)
        return updated, result

    def _held(self, result: Reconciliation, vat: VatPlan, label: str, number: int, kind: str) -> SyncHeld:
        differs = "; ".join(result.differences)
        net_agrees = result.economic.net - result.rounding == result.stripe.net
        if net_agrees:
            treatments = ", ".join(t.label for t in vat.treatments)
            hint = (f"The net agrees, so the VAT differs: Stripe charged {treatments}, and e-conomic computes VAT from "
                    f"each product's group for VAT zone {vat.zone}. Check the VAT mapping and the products' groups.")
            setting = "vat-mapping"
        else:
            hint = ("The net differs, so a line was booked at another amount than Stripe charged: compare the draft's "
                    "lines with the Stripe invoice (products, discounts, shipping).")
            setting = "product-sync"
        kept = (f"The {label} {number} is kept in e-conomic for review; nothing was booked." if kind == "booked_invoice"
                else f"The {label} {number} is in e-conomic, flagged for review.")
        return SyncHeld(f"e-conomic's totals differ from Stripe's ({differs}). {hint} {kept}", setting=setting,
                        totals=result.as_json(), summary=result.summary())

    def _outcome(self, state: RunState, invoice: dict, plan: LinePlan, document: dict,
                 result: Reconciliation | None = None, found_booked: bool = False) -> Outcome:
        kind = self.settings.document_type
        number = document.get("bookedInvoiceNumber") or document.get("orderNumber") or document.get("draftInvoiceNumber")
        if result is None:
            currency = invoice["currency"].upper()
            result = reconcile(currency, self._stripe_figures(plan), Figures.from_economic(document), self._rounding_on(document))
        notes = []
        if state.override_reconciliation and not result.agrees:
            notes.append("Booked as reviewed although the totals differ (Book anyway).")
        return Outcome(kind, int(number), result.agrees, result.summary(), 0, notes, totals=result.as_json(),
                       needs_credit_note=invoice.get("status") == "void" and bool(state.economic_booked_number))

    def _book(self, state: RunState, draft_number: int) -> dict:
        started = time.monotonic()
        booked = self.economic.request(
            "POST", "/invoices/booked", json={"draftInvoice": {"draftInvoiceNumber": draft_number}},
            idempotency_key=self._key(state, "book", draft_number),
        )
        number = booked["bookedInvoiceNumber"]
        state.economic_booked_number = number
        self.recorder.invoice_booked(number)
        self.recorder.step("book", "created", numbers=f"booked invoice {number} (from draft {draft_number})",
                           duration_ms=int((time.monotonic() - started) * 1000))
        return booked

    # -- write-back --------------------------------------------------------------------------------------

    def _write_back(self, state: RunState, invoice: dict, outcome: Outcome) -> None:
        started = time.monotonic()
        # A Stripe credit note (portal.sync.credit_notes) gets the e-conomic number in its own metadata.
        is_credit_note = bool(invoice.get("credit_note"))
        service = self.stripe.v1.credit_notes if is_credit_note else self.stripe.v1.invoices
        service.update(invoice["id"], params={"metadata": {
            "economic_document_type": outcome.document_type,
            "economic_document_number": str(outcome.document_number),
            "economic_sync_status": "synced" if outcome.reconciled else "synced_after_review",
        }})
        what = "credit note" if is_credit_note else "invoice"
        self.recorder.step("write_back", "done", numbers=f"Stripe {what} {invoice.get('number')}",
                           duration_ms=int((time.monotonic() - started) * 1000))
