"""Money and VAT: Stripe's minor units and line shapes → e-conomic lines whose totals reconcile."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from portal.sync.engine import EngineSettings, SettingMissing, vat_zone_for
from portal.sync.lines import plan_lines
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


def settings(**overrides):
    values = dict(document_type="draft_invoice", write_back_to_stripe=False, mappings={}, vat_zone_domestic=1,
                  vat_zone_eu_with_vat_id=2, vat_zone_eu_without_vat_id=4, vat_zone_outside_eu=3)
    values.update(overrides)
    return EngineSettings(**values)


@pytest.mark.parametrize(
    "country, tax_ids, exempt, zone",
    [
        ("DK", [], "none", 1),
        ("DE", [{"type": "eu_vat", "value": "DE123456789"}], "reverse", 2),  # reverse-charge EU business
        ("DE", [], "none", 4),
        ("US", [], "none", 3),
        ("NO", [{"type": "no_vat", "value": "123456789MVA"}], "none", 3),
    ],
)
def test_vat_zone_by_country_and_vat_id(country, tax_ids, exempt, zone):
    inv = {"customer_address": {"country": country}, "customer_tax_ids": tax_ids, "customer_tax_exempt": exempt}
    assert vat_zone_for(inv, settings()) == zone


def test_a_missing_vat_zone_setting_says_which():
    with pytest.raises(SettingMissing, match="VAT Zone: customers outside the EU is not set"):
        vat_zone_for({"customer_address": {"country": "US"}}, settings(vat_zone_outside_eu=None))
