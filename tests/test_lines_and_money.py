"""Money and VAT: Stripe's minor units and line shapes → e-conomic lines whose totals reconcile."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from portal.sync.lines import amounts_e_conomic_cannot_carry, plan_lines
from portal.sync.vat import Figures, VatChoice, default_vat_mapping, reconcile, rounding_needed, treatment_of_taxes
from portal.sync.money import exponent, from_minor

DATA = Path(__file__).parent / "data"


def load(name):
    return json.loads((DATA / name).read_text())


def line(amount, quantity="1", unit=None, product="prod_A", discounts=(), own=(), taxes=(), line_id="il_1"):
    return {
        "id": line_id,
        "object": "line_item",
        "amount": amount,
        "quantity": int(Decimal(quantity)),
        "quantity_decimal": quantity,
        "description": "Thing",
        "discount_amounts": [{"amount": a, "discount": d} for d, a in discounts],
        "discounts": list(own),
        "pricing": {"type": "price_details", "price_details": {"price": "price_1", "product": product}, "unit_amount_decimal": unit or str(amount)},
        "taxes": [{"amount": a, "tax_behavior": b, "taxable_amount": t, "type": "tax_rate_details"} for a, b, t in taxes],
    }


def invoice(lines, currency="dkk", total_excluding_tax=None, total_taxes=(), total=None, discounts=()):
    net = total_excluding_tax if total_excluding_tax is not None else sum(line["amount"] for line in lines)
    return {
        "id": "in_test",
        "currency": currency,
        "discounts": list(discounts),
        "lines": {"object": "list", "data": lines, "has_more": False},
        "total_excluding_tax": net,
        "total_taxes": [{"amount": a, "tax_behavior": b} for a, b in total_taxes],
        "total": total if total is not None else net + sum(a for a, b in total_taxes if b == "exclusive"),
    }


def plan(inv, apply_invoice_discounts=True):
    return plan_lines(inv, {"prod_A": "A", "prod_B": "B"}, "MISC", apply_invoice_discounts, "DISCOUNT")


def test_exponents_are_real():
    assert (exponent("jpy"), exponent("DKK"), exponent("kwd")) == (0, 2, 3)
    assert from_minor(44900, "jpy") == Decimal("44900")
    assert from_minor(1077500, "dkk") == Decimal("10775.00")
    assert from_minor("0.125", "dkk") == Decimal("0.00125")
    assert isinstance(from_minor(1, "eur"), Decimal)


def test_the_dkk_example_reconciles_with_a_fractional_quantity():
    result = plan(load("invoice_send_invoice_open.json"))
    first, second = result.lines
    assert (first.quantity, first.unit_net_price, first.net_total) == (Decimal("7.5"), Decimal("950"), Decimal("7125.00"))
    assert second.net_total == Decimal("1495.00")
    assert result.net_total == result.expected_net == Decimal("8620.00")
    assert result.expected_vat == Decimal("2155.00") and result.expected_gross == Decimal("10775.00")


def test_a_zero_decimal_currency():
    result = plan(invoice([line(44900, "3", "14966.6667")], currency="jpy"))
    [only] = result.lines
    assert only.net_total == Decimal("44900")
    assert result.expected_net == Decimal("44900")
    assert only.quantity == 1  # 44900 / 3 has no exact 2-decimal unit price


def test_an_invoice_level_discount_becomes_its_own_negative_line():
    result = plan(load("invoice_paid_automatic.json"))
    *items, discount = result.lines
    assert [i.net_total for i in items] == [Decimal("207.00"), Decimal("9.90")]
    assert (discount.description, discount.unit_net_price, discount.product_number) == ("Invoice discount", Decimal("-21.69"), "DISCOUNT")
    assert result.net_total == result.expected_net == Decimal("195.21")


def test_without_the_discount_line_the_discount_is_folded_into_the_lines():
    result = plan(load("invoice_paid_automatic.json"), apply_invoice_discounts=False)
    assert len(result.lines) == 2
    assert result.net_total == Decimal("195.21")


def test_a_line_level_discount_becomes_the_discount_percentage():
    inv = invoice([line(10000, "2", "5000", discounts=[("di_line", 1500)], own=["di_line"])], total_excluding_tax=8500)
    [only] = plan(inv).lines
    assert (only.quantity, only.unit_net_price, only.discount_percentage) == (Decimal("2"), Decimal("50"), Decimal("15"))
    assert only.net_total == Decimal("85.00")


def test_an_odd_line_discount_is_folded_into_the_unit_price():
    inv = invoice([line(10000, "1", discounts=[("di_line", 333)], own=["di_line"])], total_excluding_tax=9667)
    [only] = plan(inv).lines
    assert only.net_total == Decimal("96.67")


def test_a_100_percent_discounted_line():
    inv = invoice([line(5000, "1", discounts=[("di_free", 5000)], own=["di_free"]), line(2000, product="prod_B", line_id="il_2")], total_excluding_tax=2000)
    free, paid = plan(inv).lines
    assert (free.discount_percentage, free.net_total) == (Decimal("100"), Decimal("0.00"))
    assert paid.net_total == Decimal("20.00")


def test_a_tax_inclusive_price_becomes_a_net_price():
    # 125.00 DKK including 25 % VAT: 100.00 net + 25.00 VAT.
    inv = invoice([line(12500, "1", taxes=[(2500, "inclusive", 10000)])], total_excluding_tax=10000, total_taxes=[(2500, "inclusive")], total=12500)
    [only] = plan(inv).lines
    assert only.unit_net_price == Decimal("100")
    result = plan(inv)
    assert (result.expected_net, result.expected_vat, result.expected_gross) == (Decimal("100.00"), Decimal("25.00"), Decimal("125.00"))


def test_a_fractional_unit_amount():
    # 1000 API calls at 0.125 øre each = 125 øre.
    inv = invoice([line(125, "1000", "0.125")])
    [only] = plan(inv).lines
    assert only.net_total == Decimal("1.25")
    assert only.quantity * only.unit_net_price == Decimal("1.25")


def test_an_inexact_quantity_is_booked_as_one_at_the_line_total_and_says_so():
    inv = invoice([line(73333, "7.3333", "10000")])
    result = plan(inv)
    [only] = result.lines
    assert (only.quantity, only.unit_net_price) == (Decimal(1), Decimal("733.33"))
    assert "7.3333 ×" in only.description
    assert result.notes


def test_lines_without_a_product_use_the_default_product():
    inv = invoice([{**line(1000), "pricing": None}])
    assert plan(inv).lines[0].product_number == "MISC"


def tax(amount, behavior, taxable, rate_id="txr_dk25", reason="standard_rated"):
    return {"amount": amount, "tax_behavior": behavior, "taxable_amount": taxable, "taxability_reason": reason,
            "tax_rate_details": {"tax_rate": rate_id}, "type": "tax_rate_details"}


RATES = {
    "txr_dk25": {"id": "txr_dk25", "object": "tax_rate", "country": "DK", "percentage": 25, "inclusive": False},
    "txr_de19": {"id": "txr_de19", "object": "tax_rate", "country": "DE", "percentage": 19, "inclusive": False},
    "txr_se25": {"id": "txr_se25", "object": "tax_rate", "country": "SE", "percentage": 25, "inclusive": False},
    "txr_dk0": {"id": "txr_dk0", "object": "tax_rate", "country": "DK", "percentage": 0, "inclusive": False},
}


@pytest.mark.parametrize(
    "country, taxes, exempt, key, label",
    [
        ("DK", [tax(2500, "exclusive", 10000)], "none", "rate:DK:25", "DK 25 %"),
        ("DE", [tax(1900, "exclusive", 10000, "txr_de19")], "none", "rate:DE:19", "DE 19 % (OSS)"),
        (None, [tax(1900, "exclusive", 10000, "txr_de19")], "none", "rate:DE:19", "DE 19 % (OSS)"),  # no address: Stripe's rate decides
        ("DE", [tax(0, "exclusive", 10000, "txr_de19", "reverse_charge")], "reverse", "reverse_charge", "Reverse charge (the customer accounts for VAT)"),
        ("DK", [], "exempt", "exempt", "Customer exempt from VAT"),
        ("DK", [], "none", "none:domestic", "No VAT charged, customer in DK"),
        ("US", [], "none", "none:outside_eu", "No VAT charged, customer outside the EU"),
        ("FR", [], "none", "none:eu", "No VAT charged, customer elsewhere in the EU"),
        (None, [], "none", "none:unknown", "No VAT charged, customer's country unknown"),
        ("DK", [tax(0, "exclusive", 10000, "txr_dk0", "product_exempt")], "none", "product_exempt:DK", "DK, product exempt from VAT"),
    ],
)
def test_the_vat_treatment_is_what_stripe_charged(country, taxes, exempt, key, label):
    inv = {"customer_address": {"country": country} if country else None, "customer_tax_exempt": exempt}
    treatment = treatment_of_taxes(taxes, inv, RATES, "DK")
    assert (treatment.key, treatment.label) == (key, label)


def test_the_default_mapping_covers_the_common_danish_cases_only():
    mapping = default_vat_mapping("DK", domestic=1, eu_with_vat_id=2, outside_eu=3)
    assert mapping == {"rate:DK:25": VatChoice(1), "reverse_charge": VatChoice(2), "none:outside_eu": VatChoice(3)}


def test_reconciliation_wants_the_net_exact_and_the_gross_to_the_minor_unit():
    stripe_side = Figures(Decimal("100.00"), Decimal("25.00"), Decimal("125.00"))
    assert reconcile("DKK", stripe_side, Figures(Decimal("100.00"), Decimal("25.00"), Decimal("125.00"))).agrees
    off_by_one = reconcile("DKK", stripe_side, Figures(Decimal("100.00"), Decimal("24.99"), Decimal("124.99")))
    assert off_by_one.differences == ["VAT: Stripe 25.00 DKK, e-conomic 24.99 DKK", "gross: Stripe 125.00 DKK, e-conomic 124.99 DKK"]
    assert rounding_needed(off_by_one, Decimal("0.01")) == Decimal("0.01")
    # A rounding line of 0.01 on the draft: net less the rounding line exact, gross exact.
    assert reconcile("DKK", stripe_side, Figures(Decimal("100.01"), Decimal("24.99"), Decimal("125.00")), Decimal("0.01")).agrees
    # The allowance does not grow with the number of lines: 0.10 is not rounding.
    forty_lines = reconcile("DKK", stripe_side, Figures(Decimal("100.00"), Decimal("24.90"), Decimal("124.90")))
    assert rounding_needed(forty_lines, Decimal("0.01")) is None
    # A different net is never rounding.
    assert rounding_needed(reconcile("DKK", stripe_side, Figures(Decimal("99.99"), Decimal("25.00"), Decimal("124.99"))), Decimal("0.01")) is None


def test_a_billing_credit_is_a_negative_line_on_the_credited_product():
    credited = {**line(10000), "pretax_credit_amounts": [{"amount": 3000, "credit_balance_transaction": "cbtxn_1", "discount": None,
                                                           "type": "credit_balance_transaction"}]}
    result = plan(invoice([credited], total_excluding_tax=7000))
    item, credit = result.lines
    assert (item.net_total, credit.net_total, credit.product_number) == (Decimal("100.00"), Decimal("-30.00"), "A")
    assert credit.description == "Billing credit applied: Thing"
    assert result.net_total == result.expected_net == Decimal("70.00")


def test_shipping_is_a_line_on_the_shipping_product_at_its_net():
    inv = invoice([line(10000)], total_excluding_tax=14900)
    inv["shipping_cost"] = {"amount_subtotal": 4900, "amount_tax": 1225, "amount_total": 6125, "shipping_rate": "shr_1",
                            "taxes": [{"amount": 1225, "rate": RATES["txr_dk25"]}]}
    result = plan_lines(inv, {"prod_A": "A"}, "MISC", True, "DISCOUNT", shipping_product_number="SHIP")
    shipping = result.lines[-1]
    assert (shipping.description, shipping.net_total, shipping.product_number) == ("Shipping", Decimal("49.00"), "SHIP")
    assert result.net_total == Decimal("149.00")


def test_a_100_percent_coupon_on_a_tax_inclusive_price_books_the_net_not_the_gross():
    # 125.00 DKK including 25 % VAT, 100 % off: the line shows 100.00 net at 100 % discount, not 125.00.
    free = line(12500, discounts=[("di_free", 12500)], own=["di_free"], taxes=[(0, "inclusive", 0)])
    free["taxes"][0]["tax_rate_details"] = {"tax_rate": "txr_dk25"}
    result = plan_lines(invoice([free], total_excluding_tax=0), {"prod_A": "A"}, "MISC", True, "DISCOUNT", rates=RATES)
    [only] = result.lines
    assert (only.unit_net_price, only.discount_percentage, only.net_total) == (Decimal("100"), Decimal("100"), Decimal("0.00"))


def test_three_decimal_amounts_are_named_not_rounded():
    inv = invoice([line(5125), line(1005, line_id="il_2")], currency="kwd")
    assert amounts_e_conomic_cannot_carry(inv) == [Decimal("5.125"), Decimal("1.005")]
    assert amounts_e_conomic_cannot_carry(invoice([line(5120), line(1000, line_id="il_2")], currency="kwd")) == []


def test_a_fallback_line_text_shows_the_unit_price_in_the_currency():
    result = plan(invoice([line(10000, "3", "3333.3333")]))
    assert result.lines[0].description == "Thing (3 × 33.33)"
