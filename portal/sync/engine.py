"""The sync engine: one Stripe invoice → e-conomic customer, products, then the document.

Plain Python. The caller (portal.sync.jobs) hands in the two API clients, the merchant's settings,
a recorder that persists progress and audit rows, and a store of remembered links. Every create is
recorded before and after it is sent and carries an `Idempotency-Key`, and a retry first looks for
what an earlier attempt created, so no attempt can make a second customer, product or document.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import stripe

from .economic import EconomicClient, EconomicError
from .lines import LinePlan, plan_lines, product_id_of
from .mapping import Mapping, country_name, document_fields, resolve
from .money import to_cents
from .stripe_source import fetch_invoice

EU_COUNTRIES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
)
EU_VAT_TAX_ID_TYPES = frozenset({"eu_vat"})


class SyncFailure(Exception):
    """A run that cannot finish now: `transient` ones are retried, the others end the run as failed."""

    def __init__(self, message: str, transient: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.retry_after = retry_after


class SettingMissing(SyncFailure):
    """A setting the merchant has not made; `anchor` names where it is set."""

    def __init__(self, setting: str, anchor: str) -> None:
        super().__init__(f"{setting} is not set (Customer & product settings).")
        self.setting = setting
        self.anchor = anchor


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


class Recorder(Protocol):
    def progress(self, **fields: Any) -> None: ...
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


def economic_failure(error: EconomicError, doing: str) -> SyncFailure:
    return SyncFailure(f"e-conomic refused {doing}: {error}" if not error.transient else f"{doing}: {error}",
                       transient=error.transient, retry_after=error.retry_after)


def customer_tax_id(invoice: dict) -> str | None:
    for tax_id in invoice.get("customer_tax_ids") or []:
        if tax_id.get("type") in EU_VAT_TAX_ID_TYPES and tax_id.get("value"):
            return tax_id["value"]
    for tax_id in invoice.get("customer_tax_ids") or []:
        if tax_id.get("value"):
            return tax_id["value"]
    return None


def vat_zone_for(invoice: dict, settings: EngineSettings) -> int:
    """The VAT zone by the customer's country and VAT id: domestic, EU with or without a VAT id, or abroad."""
    address = invoice.get("customer_address") or (invoice.get("customer_shipping") or {}).get("address") or {}
    country = (address.get("country") or settings.home_country).upper()
    has_eu_vat = any(t.get("type") in EU_VAT_TAX_ID_TYPES for t in invoice.get("customer_tax_ids") or [])
    if country == settings.home_country.upper():
        zone, setting = settings.vat_zone_domestic, "VAT Zone: domestic customers"
    elif country in EU_COUNTRIES and (has_eu_vat or invoice.get("customer_tax_exempt") == "reverse"):
        zone, setting = settings.vat_zone_eu_with_vat_id, "VAT Zone: EU customers with a VAT id"
    elif country in EU_COUNTRIES:
        zone, setting = settings.vat_zone_eu_without_vat_id, "VAT Zone: EU customers without a VAT id"
    else:
        zone, setting = settings.vat_zone_outside_eu, "VAT Zone: customers outside the EU"
    if zone is None:
        raise SettingMissing(setting, "vat-zones")
    return zone


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

    def run(self, state: RunState) -> Outcome:
        calls_before = self.economic.calls
        invoice = self._timed("fetch", self._fetch, state)
        customer_number = self._timed("customer", self._customer, state, invoice)
        product_numbers = self._timed("products", self._products, state, invoice)
        plan = plan_lines(
            invoice, product_numbers, self.settings.default_product_number,
            self.settings.apply_invoice_discounts, self.settings.discount_product_number,
        )
        document = self._timed("document", self._document, state, invoice, customer_number, plan)
        outcome = self._reconcile(invoice, plan, document, self.economic.calls - calls_before)
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
        self.recorder.step(step, "failed", error=failure.message, duration_ms=int((time.monotonic() - started) * 1000))
        raise failure

    # -- step 0: the invoice, fresh from Stripe ---------------------------------------------------------

    def _fetch(self, state: RunState) -> dict:
        started = time.monotonic()
        invoice = fetch_invoice(self.stripe, state.stripe_invoice_id)
        if invoice.get("status") == "draft":
            raise SyncFailure("The Stripe invoice is still a draft; only finalized invoices are synced.")
        self.recorder.progress(
            stripe_invoice_number=invoice.get("number"),
            customer_name=invoice.get("customer_name"),
            customer_email=invoice.get("customer_email"),
            currency=(invoice.get("currency") or "").upper() or None,
            total_minor=invoice.get("total"),
        )
        self.recorder.step("fetch", "found", numbers=invoice.get("number"),
                           summary={"lines": len((invoice.get("lines") or {}).get("data") or [])},
                           duration_ms=int((time.monotonic() - started) * 1000))
        return invoice

    # -- step 1: the customer ---------------------------------------------------------------------------

    def _customer(self, state: RunState, invoice: dict) -> int:
        started = time.monotonic()
        s = self.settings
        customer = invoice.get("customer") if isinstance(invoice.get("customer"), dict) else {}
        stripe_customer_id = customer.get("id") or invoice.get("customer")
        metadata = customer.get("metadata") or {}

        def done(number: int, outcome: str, how: str) -> int:
            state.economic_customer_number = number
            self.recorder.progress(economic_customer_number=number)
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
            return done(self._create_customer(state, invoice, number), "created", "created with the number from Stripe")

        known = state.economic_customer_number or (self.links.customer_number(stripe_customer_id) if stripe_customer_id else None)
        if known:
            return done(known, "found", "remembered from an earlier sync")

        found = self._find_customer(invoice, customer)
        if found is not None:
            return done(found, "found", f"matched on {s.match_customers_on}")
        return done(self._create_customer(state, invoice, None), "created", "not found, so created")

    def _find_customer(self, invoice: dict, customer: dict) -> int | None:
        s = self.settings
        if s.match_customers_on == "custom":
            key = _required(s.custom_match_stripe_key, "Custom Field: the Stripe metadata key", "customer-sync")
            field_name = _required(s.custom_match_economic_field, "Custom Field: the e-conomic field", "customer-sync")
            value = (customer.get("metadata") or {}).get(key)
        else:
            field_name, value = {
                "name": ("name", invoice.get("customer_name")),
                "email": ("email", invoice.get("customer_email")),
                "phone": ("telephoneAndFaxNumber", invoice.get("customer_phone")),
            }[s.match_customers_on]
        if not value:
            return None
        answer = self.economic.request("GET", "/customers", params={"filter": f"{field_name}$eq:{filter_value(str(value))}", "pagesize": 1})
        collection = (answer or {}).get("collection") or []
        return collection[0]["customerNumber"] if collection else None

    def _create_customer(self, state: RunState, invoice: dict, number: int | None) -> int:
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
            "vatNumber": (customer_tax_id(invoice) or "")[:20],
            "currency": self._currency(invoice),
            "customerGroup": {"customerGroupNumber": _required(s.customer_group_number, "Customer Group", "customer-group")},
            "paymentTerms": {"paymentTermsNumber": _required(s.payment_terms_number, "Payment Terms", "payment-terms")},
            "vatZone": {"vatZoneNumber": vat_zone_for(invoice, s)},
            "layout": {"layoutNumber": s.layout_number} if s.layout_number else None,
        })
        # Keyed on the Stripe customer, not the run: two runs for one new customer get one e-conomic customer.
        stripe_customer = invoice["customer"]["id"] if isinstance(invoice.get("customer"), dict) else invoice.get("customer")
        created = self.economic.request("POST", "/customers", json=body,
                                        idempotency_key=idempotency_key("customer", stripe_customer, number))
        return int(created["customerNumber"])

    def _currency(self, invoice: dict) -> str:
        if self.settings.currency_mode == "fixed":
            return _required(self.settings.fixed_currency, "Fixed currency", "currency")
        return invoice["currency"].upper()

    # -- step 2: the products ---------------------------------------------------------------------------

    def _products(self, state: RunState, invoice: dict) -> dict[str, str]:
        started = time.monotonic()
        s = self.settings
        numbers: dict[str, str] = {}
        summary: dict[str, str] = {}
        outcome = "found"
        lines = (invoice.get("lines") or {}).get("data") or []
        for line in lines:
            product_id = product_id_of(line)
            if not product_id:
                _required(s.default_product_number, "Default product number (for lines without a Stripe product)", "default-product")
                continue
            if product_id in numbers:
                continue
            number, how = self._product(state, product_id)
            numbers[product_id] = number
            summary[product_id] = f"{number} ({how})"
            if how == "created":
                outcome = "created"
        if s.apply_invoice_discounts and invoice.get("discounts"):
            _required(s.discount_product_number, "Discount product number", "discounts")
        self.recorder.step("products", outcome if numbers else "skipped",
                           numbers=", ".join(sorted(set(numbers.values()))) or None, summary=summary,
                           duration_ms=int((time.monotonic() - started) * 1000))
        return numbers

    def _product(self, state: RunState, product_id: str) -> tuple[str, str]:
        s = self.settings
        known = self.links.product_number(product_id)
        if known:
            return known, "remembered"
        product = self.stripe.v1.products.retrieve(product_id).to_dict()
        number: str | None = None
        if s.product_matching == "direct":
            linked = str((product.get("metadata") or {}).get(s.product_number_metadata_key) or "").strip()
            if linked and self._economic_product_exists(linked):
                number = linked
        elif s.simple_search_on == "product_number":
            candidate = product_id[:25]
            if self._economic_product_exists(candidate):
                number = candidate
        else:
            answer = self.economic.request("GET", "/products", params={"filter": f"name$eq:{filter_value(product.get('name') or '')}", "pagesize": 1})
            collection = (answer or {}).get("collection") or []
            number = collection[0]["productNumber"] if collection else None
        how = "found"
        if number is None:
            if s.product_not_found == "skip":
                raise SyncFailure(f"Stripe product {product.get('name')!r} ({product_id}) was not found in e-conomic, and "
                                  "Product Sync is set to Skip Invoice Generation: nothing was created.")
            if s.product_not_found == "default":
                number, how = _required(s.default_product_number, "Default product number", "default-product"), "default product"
            else:
                number, how = self._create_product(state, product), "created"
        self.links.remember_product(product_id, number)
        return number, how

    def _economic_product_exists(self, number: str) -> bool:
        from urllib.parse import quote

        try:
            self.economic.request("GET", f"/products/{quote(number, safe='')}")
            return True
        except EconomicError as error:
            if error.status == 404:
                return False
            raise

    def _create_product(self, state: RunState, product: dict) -> str:
        group = _required(self.settings.new_product_group_number, "Product group for new products", "product-group")
        number = product["id"][:25]
        body = _drop_empty({
            "productNumber": number,
            "name": (product.get("name") or number)[:300],
            "description": (product.get("description") or "")[:500],
            "productGroup": {"productGroupNumber": group},
        })
        created = self.economic.request("POST", "/products", json=body,
                                        idempotency_key=idempotency_key("product", number))
        return str(created["productNumber"])

    # -- step 3: the document ---------------------------------------------------------------------------

    def document_body(self, invoice: dict, customer_number: int, plan: LinePlan) -> tuple[dict, list]:
        s = self.settings
        resolved = resolve(invoice, s.mappings, s.time_zone)
        fields = document_fields(resolved)
        address = invoice.get("customer_address") or {}
        street = ", ".join(p for p in (address.get("line1"), address.get("line2")) if p)
        from datetime import datetime, timezone
        from zoneinfo import ZoneInfo

        def day(timestamp):
            if not timestamp:
                return None
            return datetime.fromtimestamp(timestamp, timezone.utc).astimezone(ZoneInfo(s.time_zone)).date().isoformat()

        issued = invoice.get("effective_at") or (invoice.get("status_transitions") or {}).get("finalized_at") or invoice.get("created")
        body = _drop_empty({
            "date": day(issued),
            "dueDate": day(invoice.get("due_date")),
            "currency": self._currency(invoice),
            "customer": {"customerNumber": customer_number},
            "layout": {"layoutNumber": _required(s.layout_number, "Invoice Layout", "layout")},
            "paymentTerms": {"paymentTermsNumber": _required(s.payment_terms_number, "Payment Terms", "payment-terms")},
            "recipient": {
                "name": (invoice.get("customer_name") or invoice.get("customer_email") or "Stripe customer")[:250],
                "address": street[:250],
                "zip": (address.get("postal_code") or "")[:50],
                "city": (address.get("city") or "")[:250],
                "country": country_name(address.get("country") or "")[:50],
                "vatZone": {"vatZoneNumber": vat_zone_for(invoice, s)},
            },
            "delivery": fields.get("delivery"),
            "notes": fields.get("notes"),
            "references": {"other": (invoice.get("number") or invoice["id"])[:250]},
            "lines": [line.as_economic(n) for n, line in enumerate(plan.lines, start=1)],
        })
        for line in body["lines"]:
            if "product" not in line:
                raise SettingMissing("Default product number (for lines without a Stripe product)", "default-product")
        return body, resolved

    def _document(self, state: RunState, invoice: dict, customer_number: int, plan: LinePlan) -> dict:
        started = time.monotonic()
        body, resolved = self.document_body(invoice, customer_number, plan)
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

        retrying = state.document_create_started or state.attempt > 1
        label = "draft order" if kind == "draft_order" else "draft invoice"

        def found_booked(booked: dict) -> dict:
            number = booked["bookedInvoiceNumber"]
            state.economic_booked_number = number
            self.recorder.progress(economic_booked_number=number)
            self.recorder.step("document", "found", numbers=f"booked invoice {number}", summary=summary,
                               duration_ms=int((time.monotonic() - started) * 1000))
            return booked

        if kind == "booked_invoice" and state.economic_booked_number:
            return found_booked(self.economic.request("GET", f"/invoices/booked/{state.economic_booked_number}"))
        if kind == "booked_invoice" and retrying:
            # An earlier attempt may have booked it and lost the answer: the draft is gone by then.
            booked = self._lookup("/invoices/booked", reference)
            if booked:
                return found_booked(booked)

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
            found = self._lookup(path, reference)
            if found:
                draft_number = found[number_field]
                draft = self.economic.request("GET", f"{path}/{draft_number}")
        outcome = "found"
        if draft_number is None:
            state.document_create_started = True
            self.recorder.progress(document_create_started=True)
            draft = self.economic.request("POST", path, json=body,
                                          idempotency_key=idempotency_key(state.run_id, "document", kind))
            draft_number = draft[number_field]
            outcome = "created"
        setattr(state, state_field, draft_number)
        self.recorder.progress(**{state_field: draft_number})
        self.recorder.step("document", outcome, numbers=f"{label} {draft_number}", summary=summary,
                           duration_ms=int((time.monotonic() - started) * 1000))
        if kind != "booked_invoice":
            return draft
        return self._book(state, draft_number, draft)

    def _lookup(self, path: str, reference: str) -> dict | None:
        """What an earlier attempt created for this invoice, found by `references.other`."""
        query = {"filter": f"references.other$eq:{filter_value(reference)}", "pagesize": 1}
        found = (self.economic.request("GET", path, params=query) or {}).get("collection") or []
        return found[0] if found else None

    def _book(self, state: RunState, draft_number: int, draft: dict) -> dict:
        started = time.monotonic()
        booked = self.economic.request(
            "POST", "/invoices/booked", json={"draftInvoice": {"draftInvoiceNumber": draft_number}},
            idempotency_key=idempotency_key(state.run_id, "book", draft_number),
        )
        number = booked["bookedInvoiceNumber"]
        state.economic_booked_number = number
        self.recorder.progress(economic_booked_number=number)
        self.recorder.step("book", "created", numbers=f"booked invoice {number} (from draft {draft_number})",
                           duration_ms=int((time.monotonic() - started) * 1000))
        for total in ("netAmount", "vatAmount", "grossAmount"):
            booked.setdefault(total, draft.get(total))
        return booked

    # -- totals and write-back --------------------------------------------------------------------------

    def _reconcile(self, invoice: dict, plan: LinePlan, document: dict, calls: int) -> Outcome:
        kind = self.settings.document_type
        number = document.get("bookedInvoiceNumber") or document.get("orderNumber") or document.get("draftInvoiceNumber")
        figures = {
            "net": (plan.expected_net, document.get("netAmount")),
            "vat": (plan.expected_vat, document.get("vatAmount")),
            "gross": (plan.expected_gross, document.get("grossAmount")),
        }
        allowance = plan.rounding_allowance
        problems = []
        for name, (stripe_value, economic_value) in figures.items():
            if economic_value is None:
                continue
            difference = abs(to_cents(Decimal(str(economic_value))) - to_cents(stripe_value))
            tolerance = allowance if name == "net" else allowance * 2 + Decimal("0.01")
            if difference > tolerance:
                problems.append(f"{name}: Stripe {to_cents(stripe_value)}, e-conomic {to_cents(Decimal(str(economic_value)))}")
        text = "; ".join(
            f"{name} Stripe {to_cents(s_val)} / e-conomic {to_cents(Decimal(str(e_val))) if e_val is not None else '—'}"
            for name, (s_val, e_val) in figures.items()
        )
        reconciliation = ("Totals do not reconcile: " + "; ".join(problems)) if problems else f"Totals reconcile ({text})"
        return Outcome(kind, int(number), not problems, reconciliation, calls, plan.notes)

    def _write_back(self, state: RunState, invoice: dict, outcome: Outcome) -> None:
        started = time.monotonic()
        labels = {"draft_invoice": "draft_invoice", "booked_invoice": "booked_invoice", "draft_order": "draft_order"}
        self.stripe.v1.invoices.update(invoice["id"], params={"metadata": {
            "economic_document_type": labels[outcome.document_type],
            "economic_document_number": str(outcome.document_number),
            "economic_sync_status": "synced" if outcome.reconciled else "synced_totals_differ",
        }})
        self.recorder.step("write_back", "done", numbers=f"Stripe invoice {invoice.get('number')}",
                           duration_ms=int((time.monotonic() - started) * 1000))
