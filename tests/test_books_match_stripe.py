"""Books that match Stripe: the engine against the local e-conomic, which computes VAT as e-conomic does.

Each case builds a Stripe invoice whose figures add up the way Stripe's do (tax per line, rounded half up),
runs the sync engine (no Flask) against the fake Stripe and the fake e-conomic, and asserts what an
accountant would check: booked with e-conomic's net, VAT and gross equal to Stripe's to the minor unit,
or held with the reason and both figures — and then nothing booked.
"""

from __future__ import annotations

import copy
import itertools
from decimal import ROUND_HALF_UP, Decimal

import pytest

from doubles.economic import FakeEconomic
from doubles.stripe import FakeStripe, example
from portal.sync.economic import EconomicClient
from portal.sync.engine import EngineSettings, RunState, SyncEngine, SyncFailure, SyncHeld, SyncSkipped, product_number_for
from portal.sync.mapping import DEFAULT_MAPPINGS
from portal.sync.stripe_source import stripe_client
from portal.sync.vat import VatChoice

from .engine_support import MemoryLinks, MemoryRecorder

DK25 = {"id": "txr_dk25", "object": "tax_rate", "country": "DK", "percentage": 25, "inclusive": False, "jurisdiction": "DK",
        "display_name": "Moms", "active": True}
DK25_INCL = {**DK25, "id": "txr_dk25_incl", "inclusive": True}
DE19 = {**DK25, "id": "txr_de19", "country": "DE", "percentage": 19, "jurisdiction": "DE", "display_name": "MwSt."}
SE25 = {**DK25, "id": "txr_se25", "country": "SE", "jurisdiction": "SE"}
GB20 = {**DK25, "id": "txr_gb20", "country": "GB", "percentage": 20, "jurisdiction": "GB", "display_name": "VAT"}
DK0 = {**DK25, "id": "txr_dk0", "percentage": 0}

ids = itertools.count(1)


def rounded(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def line(product: str, amount: int, quantity: str = "1", *, rate: dict | None = DK25, own_discount: int = 0,
         shared_discount: int = 0, credit: int = 0, reason: str = "standard_rated", description: str | None = None) -> dict:
    """A Stripe line item; its tax computed as Stripe does (on amount less discounts and credits, per line)."""
    n = next(ids)
    taxable = amount - own_discount - shared_discount - credit
    taxes = []
    if rate is not None:
        pct = Decimal(str(rate["percentage"]))
        if rate["inclusive"]:
            tax = taxable - rounded(Decimal(taxable) * 100 / (100 + pct)) if pct else 0
            base = taxable - tax
        else:
            tax, base = rounded(Decimal(taxable) * pct / 100), taxable
        if reason != "standard_rated":
            tax = 0
        taxes = [{"amount": tax, "tax_behavior": "inclusive" if rate["inclusive"] else "exclusive",
                  "tax_rate_details": {"tax_rate": rate["id"]}, "taxability_reason": reason, "taxable_amount": base,
                  "type": "tax_rate_details"}]
    discounts = []
    if own_discount:
        discounts.append({"amount": own_discount, "discount": "di_line"})
    if shared_discount:
        discounts.append({"amount": shared_discount, "discount": "di_invoice"})
    return {
        "id": f"il_{n:04d}", "object": "line_item", "amount": amount, "currency": "dkk",
        "description": description or f"{quantity} × {product}", "discount_amounts": discounts, "discountable": True,
        "discounts": ["di_line"] if own_discount else [], "metadata": {}, "parent": None,
        "pretax_credit_amounts": ([{"amount": credit, "credit_balance_transaction": "cbtxn_1", "discount": None,
                                    "type": "credit_balance_transaction"}] if credit else []),
        "pricing": {"type": "price_details", "price_details": {"price": f"price_{n}", "product": product},
                    "unit_amount_decimal": str(Decimal(amount) / Decimal(quantity))},
        "quantity": int(Decimal(quantity)), "quantity_decimal": quantity, "taxes": taxes,
    }


def stripe_invoice(lines: list[dict], *, currency: str = "dkk", country: str | None = "DK", exempt: str = "none",
                   tax_ids: tuple = (), shipping: tuple[int, dict | None] | None = None, invoice_discount: bool = False,
                   status: str = "paid", due_date: int | None = 1795434300) -> dict:
    """An invoice whose totals are Stripe's: Σ amounts − discounts − credits, less inclusive tax, is the net;
    the net plus every tax (+ shipping) is the total."""
    base = example("invoice_send_invoice_open")
    for item in lines:
        item["currency"] = currency
    taxes_by_rate: dict[tuple, list[int]] = {}
    net = 0
    taxes = 0
    for item in lines:
        discounted = item["amount"] - sum(d["amount"] for d in item["discount_amounts"]) - sum(
            c["amount"] for c in item["pretax_credit_amounts"])
        inclusive = sum(t["amount"] for t in item["taxes"] if t["tax_behavior"] == "inclusive")
        net += discounted - inclusive
        for tax in item["taxes"]:
            key = (tax["tax_rate_details"]["tax_rate"], tax["tax_behavior"], tax["taxability_reason"])
            taxes_by_rate.setdefault(key, [0, 0])
            taxes_by_rate[key][0] += tax["amount"]
            taxes_by_rate[key][1] += tax["taxable_amount"]
            taxes += tax["amount"]
    shipping_cost = None
    if shipping:
        shipping_net, shipping_rate = shipping
        shipping_tax = rounded(Decimal(shipping_net) * Decimal(str(shipping_rate["percentage"])) / 100) if shipping_rate else 0
        shipping_cost = {"amount_subtotal": shipping_net, "amount_tax": shipping_tax, "amount_total": shipping_net + shipping_tax,
                         "shipping_rate": "shr_1", "taxes": ([{"amount": shipping_tax, "rate": shipping_rate}] if shipping_rate else [])}
        net += shipping_net
        taxes += shipping_tax
        if shipping_rate:
            key = (shipping_rate["id"], "exclusive", "standard_rated")
            taxes_by_rate.setdefault(key, [0, 0])
            taxes_by_rate[key][0] += shipping_tax
            taxes_by_rate[key][1] += shipping_net
    address = {**base["customer_address"], "country": country} if country else None
    return {
        **base, "id": f"in_case{next(ids):05d}", "currency": currency, "status": status,
        "customer": "cus_zWcPDxNG0RaLgg", "customer_address": address,
        "customer_shipping": None, "shipping_details": None,
        "customer_tax_exempt": exempt, "customer_tax_ids": [{"type": t, "value": v} for t, v in tax_ids],
        "discounts": ["di_invoice"] if invoice_discount else [],
        "lines": {"object": "list", "data": lines, "has_more": False, "url": "/v1/invoices/x/lines"},
        "total_excluding_tax": net, "total": net + taxes, "shipping_cost": shipping_cost,
        "amount_shipping": shipping[0] if shipping else 0,
        "total_taxes": [{"amount": amount, "tax_behavior": behavior, "tax_rate_details": {"tax_rate": rate_id},
                         "taxability_reason": reason, "taxable_amount": taxable, "type": "tax_rate_details"}
                        for (rate_id, behavior, reason), (amount, taxable) in taxes_by_rate.items()],
        "default_tax_rates": [], "due_date": due_date,
    }


class Case:
    """One merchant: a fake Stripe and a fake e-conomic with the products the settings name."""

    def __init__(self, stripe_double: FakeStripe, economic: FakeEconomic) -> None:
        self.stripe = stripe_double
        self.economic = economic
        self.links = MemoryLinks()
        for rate in (DK25, DK25_INCL, DE19, SE25, GB20, DK0):
            stripe_double.add_tax_rate(rate)
        stripe_double.add_customer(example("customer"))
        economic.add_product("SHIP", "Fragt", productGroup={"productGroupNumber": 1})
        economic.add_product("DISCOUNT", "Rabat", productGroup={"productGroupNumber": 1})
        economic.add_product("ROUND", "Øreafrunding", productGroup={"productGroupNumber": 3})
        economic.add_product("MISC", "Diverse", productGroup={"productGroupNumber": 1})

    def settings(self, **overrides) -> EngineSettings:
        values = dict(
            document_type="booked_invoice", write_back_to_stripe=False, mappings=dict(DEFAULT_MAPPINGS),
            payment_terms_number=1, customer_group_number=1, vat_zone_domestic=1, vat_zone_eu_with_vat_id=2,
            vat_zone_eu_without_vat_id=2, vat_zone_outside_eu=3, layout_number=19, product_matching="simple",
            product_not_found="create", new_product_group_number=1, default_product_number="MISC",
            discount_product_number="DISCOUNT", shipping_product_number="SHIP", rounding_product_number="ROUND",
        )
        values.update(overrides)
        return EngineSettings(**values)

    def run(self, invoice: dict, state: RunState | None = None, **settings):
        """(outcome or SyncHeld, recorder): the engine's run of `invoice` under these settings."""
        products = {item["pricing"]["price_details"]["product"] for item in invoice["lines"]["data"]}
        self.stripe.add_invoice(invoice, products=[{**example("product"), "id": p, "name": f"Product {p}", "metadata": {}}
                                                   for p in sorted(products)])
        recorder = MemoryRecorder()
        engine = SyncEngine(stripe_client("sk_test_fake", self.stripe.url, max_network_retries=0),
                            EconomicClient("app", "grant", self.economic.url), self.settings(**settings), recorder, self.links)
        state = state or RunState(run_id=next(ids), stripe_invoice_id=invoice["id"], attempt=1)
        try:
            return engine.run(state), recorder
        except (SyncHeld, SyncFailure) as stopped:
            return stopped, recorder

    def booked(self) -> list[dict]:
        return self.economic.documents("invoices/booked")

    def totals(self, document: dict) -> tuple[str, str, str]:
        return tuple(f"{Decimal(str(document[k])):.2f}" for k in ("netAmount", "vatAmount", "grossAmount"))


@pytest.fixture
def case():
    with FakeStripe() as stripe_double, FakeEconomic() as economic:
        yield Case(stripe_double, economic)


def test_exclusive_danish_vat_is_booked_with_stripes_figures(case):
    outcome, _ = case.run(stripe_invoice([line("prod_hours", 712500, "7.5"), line("prod_setup", 149500)]))
    [booked] = case.booked()
    assert case.totals(booked) == ("8620.00", "2155.00", "10775.00")
    assert outcome.reconciled and outcome.totals["stripe"] == {"net": "8620.00", "vat": "2155.00", "gross": "10775.00"}


def test_inclusive_danish_vat_books_the_net_price(case):
    # 125.00 including 25 % VAT: 100.00 + 25.00.
    case.run(stripe_invoice([line("prod_box", 12500, rate=DK25_INCL)]))
    [booked] = case.booked()
    assert case.totals(booked) == ("100.00", "25.00", "125.00")
    assert booked["lines"][0]["unitNetPrice"] == 100


def test_two_rates_on_one_invoice_each_line_on_its_own_product_group(case):
    # A DK 25 % service and a DK zero-rated (product exempt) book on one document in the domestic zone;
    # the mapping sends new exempt products to the group without VAT.
    invoice = stripe_invoice([line("prod_service", 40000), line("prod_book", 20000, rate=DK0, reason="product_exempt")])
    mapping = {"rate:DK:25": VatChoice(1), "product_exempt:DK": VatChoice(1, 3)}
    outcome, _ = case.run(invoice, vat_mapping=mapping)
    [booked] = case.booked()
    assert case.totals(booked) == ("600.00", "100.00", "700.00")
    assert case.economic.store["products"]["prod_book"]["productGroup"]["productGroupNumber"] == 3


def test_a_danish_customer_charged_no_vat_is_held_before_anything_is_made(case):
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5", rate=None), line("prod_setup", 149500, rate=None)], exempt="exempt")
    held, recorder = case.run(invoice)
    assert isinstance(held, SyncHeld)
    assert "“Customer exempt from VAT”, which has no VAT mapping yet" in held.reason
    assert held.setting == "vat-mapping"
    assert not case.economic.store["customers"] and not case.booked() and not case.economic.documents("invoices/drafts")
    assert recorder.outcomes()[-1] == ("vat", "held")


def test_a_danish_exempt_customer_mapped_to_the_exempt_zone_is_booked_without_vat(case):
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5", rate=None), line("prod_setup", 149500, rate=None)], exempt="exempt")
    case.run(invoice, vat_mapping={"exempt": VatChoice(4)})
    [booked] = case.booked()
    assert case.totals(booked) == ("8620.00", "0.00", "8620.00")  # not 10,775.00
    assert booked["recipient"]["vatZone"]["vatZoneNumber"] == 4


def test_a_wrong_mapping_never_books_vat_stripe_did_not_charge(case):
    # Mapped to the domestic zone by mistake: e-conomic would add 25 %; the draft is held, not booked.
    invoice = stripe_invoice([line("prod_hours", 712500, "7.5", rate=None), line("prod_setup", 149500, rate=None)], exempt="exempt")
    held, _ = case.run(invoice, vat_mapping={"exempt": VatChoice(1)})
    assert isinstance(held, SyncHeld) and not case.booked()
    assert "VAT: Stripe 0.00 DKK, e-conomic 2,155.00 DKK" in held.reason
    assert "gross: Stripe 8,620.00 DKK, e-conomic 10,775.00 DKK" in held.reason
    assert "The draft invoice 1 is kept in e-conomic for review; nothing was booked." in held.reason
    assert held.totals["economic"] == {"net": "8620.0", "vat": "2155.0", "gross": "10775.0"}
    assert len(case.economic.documents("invoices/drafts")) == 1


def test_reverse_charge_goes_to_the_eu_zone_with_the_vat_id_in_the_cvr_field(case):
    invoice = stripe_invoice([line("prod_hours", 100000, reason="reverse_charge", rate=DE19)], country="DE", exempt="reverse",
                             tax_ids=(("eu_vat", "DE123456789"),))
    case.run(invoice)
    [booked] = case.booked()
    assert case.totals(booked) == ("1000.00", "0.00", "1000.00")
    [customer] = case.economic.store["customers"].values()
    assert customer["corporateIdentificationNumber"] == "DE123456789" and "vatNumber" not in customer
    assert customer["vatZone"] == {"vatZoneNumber": 2}


def test_a_german_consumer_charged_oss_vat_is_booked_with_19_percent(case):
    invoice = stripe_invoice([line("prod_cloud", 20700, "3", rate=DE19), line("prod_addon", 990, rate=DE19)],
                             currency="eur", country="DE")
    held, _ = case.run(invoice)  # no mapping for OSS yet: held, naming it
    assert isinstance(held, SyncHeld) and "“DE 19 % (OSS)”" in held.reason and not case.booked()
    case.run(invoice, vat_mapping={"rate:DE:19": VatChoice(2, 4)})
    [booked] = case.booked()
    assert booked["currency"] == "EUR"
    assert case.totals(booked) == ("216.90", "41.21", "258.11")


def test_a_swedish_consumer_charged_swedish_vat_is_booked_with_it(case):
    invoice = stripe_invoice([line("prod_cloud", 10000, rate=SE25)], currency="sek", country="SE")
    case.run(invoice, vat_mapping={"rate:SE:25": VatChoice(2, 5)})
    [booked] = case.booked()
    assert booked["currency"] == "SEK" and case.totals(booked) == ("100.00", "25.00", "125.00")


def test_uk_vat_is_held_until_the_merchant_says_where_it_goes(case):
    held, _ = case.run(stripe_invoice([line("prod_cloud", 10000, rate=GB20)], currency="gbp", country="GB"))
    assert isinstance(held, SyncHeld) and "“GB 20 %”, which has no VAT mapping yet" in held.reason
    assert not case.economic.store["customers"] and not case.booked()


def test_a_customer_without_an_address_is_taxed_as_stripe_charged_not_as_domestic(case):
    invoice = stripe_invoice([line("prod_cloud", 10000, rate=DE19)], currency="eur", country=None)
    case.run(invoice, vat_mapping={"rate:DE:19": VatChoice(2, 4), "rate:DK:25": VatChoice(1)})
    [booked] = case.booked()
    assert case.totals(booked) == ("100.00", "19.00", "119.00")
    assert booked["recipient"]["vatZone"]["vatZoneNumber"] == 2


def test_an_invoice_discount_on_oss_vat_needs_a_discount_product_with_that_vat(case):
    # 10 % off 216.90: Stripe taxes 195.21 at 19 % = 37.09. The discount product sits in a group without
    # EU VAT, so e-conomic would compute 41.21: held, not booked. Folded into the lines, it books.
    lines = [line("prod_cloud", 20700, "3", rate=DE19, shared_discount=2070), line("prod_addon", 990, rate=DE19, shared_discount=99)]
    invoice = stripe_invoice(lines, currency="eur", country="DE", invoice_discount=True)
    assert (invoice["total_excluding_tax"], invoice["total"]) == (19521, 23230)
    mapping = {"rate:DE:19": VatChoice(2, 4)}
    held, _ = case.run(invoice, vat_mapping=mapping)
    assert isinstance(held, SyncHeld) and not case.booked()
    assert "VAT: Stripe 37.09 EUR, e-conomic 41.21 EUR" in held.reason
    case.economic.store["invoices/drafts"].clear()
    case.run(copy.deepcopy({**invoice, "id": invoice["id"] + "b"}), vat_mapping=mapping, apply_invoice_discounts=False)
    [booked] = case.booked()
    assert case.totals(booked) == ("195.21", "37.09", "232.30")


def test_a_billing_credit_is_on_the_document(case):
    # 100.00 with a 30.00 credit: 70.00 + 17.50 VAT, not 100.00.
    case.run(stripe_invoice([line("prod_plan", 10000, credit=3000)]))
    [booked] = case.booked()
    assert case.totals(booked) == ("70.00", "17.50", "87.50")
    assert [(l["description"], l["unitNetPrice"]) for l in booked["lines"]][-1] == ("Billing credit applied: 1 × prod_plan", -30)


def test_shipping_is_on_the_document_with_its_vat(case):
    case.run(stripe_invoice([line("prod_lamp", 100000)], shipping=(4900, DK25)))
    [booked] = case.booked()
    assert case.totals(booked) == ("1049.00", "262.25", "1311.25")
    assert booked["lines"][-1]["product"]["productNumber"] == "SHIP"


@pytest.mark.parametrize("own, shared, expected", [
    (1500, 0, ("85.00", "21.25", "106.25")),   # 15 % off the line
    (0, 2000, ("80.00", "20.00", "100.00")),   # 20.00 off the invoice
])
def test_coupons(case, own, shared, expected):
    invoice = stripe_invoice([line("prod_plan", 10000, own_discount=own, shared_discount=shared)], invoice_discount=bool(shared))
    case.run(invoice)
    [booked] = case.booked()
    assert case.totals(booked) == expected


def test_a_100_percent_coupon_on_a_tax_inclusive_price(case):
    invoice = stripe_invoice([line("prod_box", 12500, rate=DK25_INCL, own_discount=12500)])
    case.run(invoice)
    [booked] = case.booked()
    assert case.totals(booked) == ("0.00", "0.00", "0.00")
    assert (booked["lines"][0]["unitNetPrice"], booked["lines"][0]["discountPercentage"]) == (100, 100)  # the net, not 125


def test_yen_have_no_decimals(case):
    case.run(stripe_invoice([line("prod_seat", 44900, "3", rate=None)], currency="jpy", country="US"))
    [booked] = case.booked()
    assert case.totals(booked) == ("44900.00", "0.00", "44900.00")
    assert booked["currency"] == "JPY"


def test_three_decimal_dinars_are_held_not_rounded(case):
    held, _ = case.run(stripe_invoice([line("prod_a", 5125, rate=None), line("prod_b", 1005, rate=None)], currency="kwd", country="US"))
    assert isinstance(held, SyncHeld)
    assert "three decimals (5.125 KWD, 1.005 KWD)" in held.reason
    assert not case.economic.store["customers"] and not case.booked()


def test_fractional_quantities(case):
    case.run(stripe_invoice([line("prod_hours", 73333, "7.3333")]))
    [booked] = case.booked()
    assert case.totals(booked) == ("733.33", "183.33", "916.66")
    assert booked["lines"][0]["quantity"] == 1 and booked["lines"][0]["description"] == "7.3333 × prod_hours (7.3333 × 100.00)"


def test_thirty_lines_book_exactly(case):
    case.run(stripe_invoice([line(f"prod_item{n:02d}", 1000 + n * 100) for n in range(30)]))
    [booked] = case.booked()
    assert len(booked["lines"]) == 30
    assert case.totals(booked) == ("735.00", "183.75", "918.75")


def test_a_vat_rounding_difference_goes_on_a_rounding_line(case):
    # Stripe rounds each line's tax: 0.10 × 25 % = 0.025 → 0.03, twice: 0.06. e-conomic: 0.20 × 25 % = 0.05.
    invoice = stripe_invoice([line("prod_a", 10), line("prod_b", 10)])
    assert (invoice["total_excluding_tax"], invoice["total"]) == (20, 26)
    outcome, recorder = case.run(invoice)
    [booked] = case.booked()
    assert case.totals(booked) == ("0.21", "0.05", "0.26")  # gross exact; the 0.01 on its own VAT-free line
    assert booked["lines"][-1]["product"]["productNumber"] == "ROUND" and booked["lines"][-1]["unitNetPrice"] == 0.01
    assert ("rounding", "created") in recorder.outcomes()
    assert outcome.reconciled and "a rounding line of 0.01 DKK" in outcome.reconciliation


def test_without_a_rounding_product_a_rounding_difference_is_held(case):
    held, _ = case.run(stripe_invoice([line("prod_a", 10), line("prod_b", 10)]), rounding_product_number=None)
    assert isinstance(held, SyncHeld) and held.setting == "rounding-product" and not case.booked()


def test_a_larger_difference_is_never_called_rounding(case):
    # 40 lines of 0.10: Stripe 40 × 0.03 = 1.20 VAT; e-conomic 1.00. That is not rounding.
    held, _ = case.run(stripe_invoice([line(f"prod_x{n}", 10) for n in range(40)]))
    assert isinstance(held, SyncHeld) and not case.booked()
    assert "VAT: Stripe 1.20 DKK, e-conomic 1.00 DKK" in held.reason


def test_long_product_ids_never_collide(case):
    a, b = "seat-license-annual-plan-standard", "seat-license-annual-plan-enterprise"
    case.run(stripe_invoice([line(a, 10000), line(b, 20000)]))
    numbers = {product_number_for(a), product_number_for(b)}
    assert len(numbers) == 2 and all(len(n) <= 25 for n in numbers)
    assert numbers <= set(case.economic.store["products"])
    keys = [r["headers"].get("Idempotency-Key") for r in case.economic.posts("/products")]
    assert len(set(keys)) == 2
    [booked] = case.booked()
    assert case.totals(booked) == ("300.00", "75.00", "375.00")


def test_a_fixed_currency_applies_to_new_customers_only_never_to_amounts(case):
    invoice = stripe_invoice([line("prod_cloud", 19521, rate=DE19)], currency="eur", country="DE")
    case.run(invoice, currency_mode="fixed", fixed_currency="DKK", vat_mapping={"rate:DE:19": VatChoice(2, 4)})
    [customer] = case.economic.store["customers"].values()
    [booked] = case.booked()
    assert customer["currency"] == "DKK"
    assert booked["currency"] == "EUR" and case.totals(booked) == ("195.21", "37.09", "232.30")  # not DKK 195.21


def test_a_currency_the_agreement_refuses_is_held_with_economics_words(case):
    held, _ = case.run(stripe_invoice([line("prod_cloud", 10000, rate=None)], currency="mxn", country="US"))
    assert isinstance(held, SyncHeld) and held.setting == "currency"
    assert held.reason.startswith("e-conomic refused a customer in MXN: e-conomic answered 400:")
    assert "Currency 'MXN' not found." in held.reason
    assert not case.booked()


def test_a_draft_rule_is_reconciled_too_and_flagged(case):
    invoice = stripe_invoice([line("prod_hours", 100000, rate=None)], exempt="exempt")
    held, _ = case.run(invoice, document_type="draft_invoice", vat_mapping={"exempt": VatChoice(1)})
    assert isinstance(held, SyncHeld) and "The draft invoice 1 is in e-conomic, flagged for review." in held.reason
    assert len(case.economic.documents("invoices/drafts")) == 1


def test_book_anyway_books_the_reviewed_draft(case):
    invoice = stripe_invoice([line("prod_hours", 100000, rate=None)], exempt="exempt")
    mapping = {"exempt": VatChoice(1)}
    held, recorder = case.run(invoice, vat_mapping=mapping)
    assert isinstance(held, SyncHeld)
    state = RunState(run_id=999, stripe_invoice_id=invoice["id"], attempt=2, economic_draft_number=1,
                     economic_customer_number=recorder.fields["economic_customer_number"], document_create_started=True,
                     override_reconciliation=True)
    outcome, _ = case.run(invoice, state=state, vat_mapping=mapping)
    [booked] = case.booked()
    assert outcome.document_number == booked["bookedInvoiceNumber"] and not outcome.reconciled
    assert "Book anyway" in outcome.notes[-1]


def test_sync_again_after_fixing_the_mapping_replaces_the_held_draft(case):
    invoice = stripe_invoice([line("prod_hours", 100000, rate=None)], exempt="exempt")
    held, recorder = case.run(invoice, vat_mapping={"exempt": VatChoice(1)})
    assert isinstance(held, SyncHeld)
    state = RunState(run_id=1000, stripe_invoice_id=invoice["id"], attempt=2, generation=2, discard_draft_number=1,
                     replaced_numbers=frozenset({1}), economic_customer_number=recorder.fields["economic_customer_number"])
    outcome, recorder = case.run(invoice, state=state, vat_mapping={"exempt": VatChoice(4)})
    assert ("discard", "done") in recorder.outcomes()
    [booked] = case.booked()
    assert case.totals(booked) == ("1000.00", "0.00", "1000.00")
    assert not case.economic.documents("invoices/drafts")  # the held draft is gone, the new one booked


def test_several_matching_customers_hold_the_run_naming_them(case):
    case.economic.add_customer(501, name="Kystlys Studio ApS", email="bogholderi@kystlys.dk")
    case.economic.add_customer(502, name="Kystlys Studio (old)", email="info@kystlys.dk bogholderi@kystlys.dk")
    held, _ = case.run(stripe_invoice([line("prod_hours", 10000)]))
    assert isinstance(held, SyncHeld)
    assert "2 e-conomic customers match email “bogholderi@kystlys.dk” (501 Kystlys Studio ApS, 502 Kystlys Studio (old))" in held.reason
    assert not case.booked()


def test_a_customer_listing_several_addresses_is_found(case):
    case.economic.add_customer(502, name="Kystlys Studio", email="info@kystlys.dk bogholderi@kystlys.dk")
    case.run(stripe_invoice([line("prod_hours", 10000)]))
    [booked] = case.booked()
    assert booked["customer"]["customerNumber"] == 502 and not [p for p in case.economic.posts("/customers")]


def test_a_tax_id_too_long_for_economic_is_held_not_cut(case):
    invoice = stripe_invoice([line("prod_hours", 10000)], tax_ids=(("eu_vat", "DK" + "1" * 45),))
    held, _ = case.run(invoice)
    assert isinstance(held, SyncHeld) and "has 47 characters; e-conomic's corporateIdentificationNumber takes at most 40" in held.reason


def test_a_swedish_agreement_takes_the_vat_number(case):
    case.economic.agreement_country = "SE"
    case.run(stripe_invoice([line("prod_hours", 10000)], tax_ids=(("eu_vat", "SE556677889901"),)))
    [customer] = case.economic.store["customers"].values()
    assert customer["vatNumber"] == "SE556677889901"


def test_an_invoice_voided_before_the_run_is_not_synced(case):
    invoice = stripe_invoice([line("prod_hours", 10000)], status="void")
    products = [{**example("product"), "id": "prod_hours", "name": "Hours", "metadata": {}}]
    case.stripe.add_invoice(invoice, products=products)
    engine = SyncEngine(stripe_client("sk_test_fake", case.stripe.url, max_network_retries=0),
                        EconomicClient("app", "grant", case.economic.url), case.settings(), MemoryRecorder(), case.links)
    with pytest.raises(SyncSkipped, match="voided before it was synced: nothing was made"):
        engine.run(RunState(run_id=1, stripe_invoice_id=invoice["id"], attempt=1))
    assert not case.economic.requests


@pytest.mark.parametrize("due_date, expected", [(1795434300, "2026-11-23"), (None, "2026-11-16")])
def test_stripes_due_date_under_due_date_terms_and_automatic_invoices_valid_too(case, due_date, expected):
    invoice = stripe_invoice([line("prod_hours", 10000)], due_date=due_date)
    case.run(invoice, payment_terms_number=2)
    [booked] = case.booked()
    assert booked["dueDate"] == expected


# --- Past e-conomic's idempotency window: a retry a day later still makes one of everything ---------------


def test_a_customer_matched_on_a_custom_field_is_found_by_a_retry_after_the_key_window(case):
    case.stripe.customers["cus_zWcPDxNG0RaLgg"]["metadata"] = {"cvr": "12345678"}
    custom = dict(match_customers_on="custom", custom_match_stripe_key="cvr", custom_match_economic_field="corporateIdentificationNumber")
    invoice = stripe_invoice([line("prod_hours", 10000)])
    case.economic.drop_after_creating.add("customers")  # the customer is made, its answer lost
    first, _ = case.run(invoice, **custom)
    assert isinstance(first, Exception) and first.transient
    case.economic.expire_idempotency_keys()
    retry = RunState(run_id=77, stripe_invoice_id=invoice["id"], attempt=2)
    case.run(invoice, state=retry, **custom)
    [customer] = case.economic.store["customers"].values()
    assert customer["corporateIdentificationNumber"] == "12345678"
    [booked] = case.booked()
    assert booked["customer"]["customerNumber"] == customer["customerNumber"]


def test_a_product_made_by_an_attempt_whose_answer_was_lost_is_used_by_a_retry_after_the_key_window(case):
    invoice = stripe_invoice([line("prod_hours", 10000)])
    case.economic.add_customer(501, name="Kystlys Studio ApS", email="bogholderi@kystlys.dk")
    case.economic.drop_after_creating.add("products")  # the product is made, its answer lost
    first, _ = case.run(invoice, product_matching="direct")
    assert isinstance(first, Exception) and first.transient
    case.economic.expire_idempotency_keys()
    case.run(invoice, state=RunState(run_id=78, stripe_invoice_id=invoice["id"], attempt=2), product_matching="direct")
    assert list(case.economic.store["products"]).count("prod_hours") == 1
    assert len(case.economic.posts("/products")) == 1  # the retry looked first, and found it
    [booked] = case.booked()
    assert booked["lines"][0]["product"]["productNumber"] == "prod_hours"


def test_a_customer_number_from_an_earlier_attempt_is_checked_before_it_is_trusted(case):
    invoice = stripe_invoice([line("prod_hours", 10000)])
    retry = RunState(run_id=79, stripe_invoice_id=invoice["id"], attempt=2, economic_customer_number=4242)  # deleted since
    case.run(invoice, state=retry)
    [customer] = case.economic.store["customers"].values()
    [booked] = case.booked()
    assert booked["customer"]["customerNumber"] == customer["customerNumber"] != 4242
