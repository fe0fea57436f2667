"""Stripe invoice lines → e-conomic document lines, with totals that reconcile.

Every line is booked from Stripe's `amount` (not quantity × unit price), net of inclusive tax,
because e-conomic adds VAT itself (from the product's group and the document's VAT zone). A line's own
discounts become its discount percentage when that is exact at 2 decimals, else they are folded into the
unit price; invoice-level discounts become one negative line on the discount product, or are folded into
the lines when the merchant turned that off. Billing credits become negative lines on the credited
line's product (so they carry its VAT), shipping a line on the shipping product. Quantities and prices
that 2 decimals cannot carry exactly become quantity 1 at the line's total, with the original quantity
kept in the description. A customer balance applied to the invoice is a payment, not a discount: it is
not on the document.

A Stripe credit note arrives here in the invoice's shape with every amount negated (portal.sync.credit_notes,
marked by its `credit_note` key); its lines are planned as an invoice's and then booked as e-conomic books a
credit note: each line with a negative quantity at the original line's price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from .money import CENT, exponent, from_minor, has_at_most_2_decimals, to_cents
from .vat import rate_of, rate_percentage, tax_rates_of

HUNDRED = Decimal(100)


@dataclass
class PlannedLine:
    description: str
    quantity: Decimal
    unit_net_price: Decimal
    discount_percentage: Decimal = Decimal(0)
    product_number: str | None = None
    stripe_product_id: str | None = None
    stripe_line_id: str | None = None

    @property
    def net_total(self) -> Decimal:
        gross = self.quantity * self.unit_net_price
        return to_cents(gross - gross * self.discount_percentage / HUNDRED)

    def as_economic(self, line_number: int) -> dict:
        line: dict = {
            "lineNumber": line_number,
            "sortKey": line_number,
            "description": self.description[:2500] or "Line",
            "quantity": self.quantity,
            "unitNetPrice": self.unit_net_price,
        }
        if self.discount_percentage:
            line["discountPercentage"] = self.discount_percentage
        if self.product_number:
            line["product"] = {"productNumber": self.product_number}
        return line


@dataclass
class LinePlan:
    lines: list[PlannedLine] = field(default_factory=list)
    expected_net: Decimal = Decimal(0)  # Stripe's net total (total_excluding_tax)
    expected_vat: Decimal = Decimal(0)
    expected_gross: Decimal = Decimal(0)
    notes: list[str] = field(default_factory=list)

    @property
    def net_total(self) -> Decimal:
        return sum((line.net_total for line in self.lines), Decimal(0))


def product_id_of(line: dict) -> str | None:
    pricing = line.get("pricing") or {}
    product = (pricing.get("price_details") or {}).get("product")
    if isinstance(product, dict):
        return product.get("id")
    return product


def line_quantity(line: dict) -> Decimal:
    """The exact quantity: `quantity` is truncated to an integer, `quantity_decimal` is not."""
    if line.get("quantity_decimal") not in (None, ""):
        return Decimal(str(line["quantity_decimal"]))
    return Decimal(line.get("quantity") or 1)


def _sum(amounts) -> int:
    return sum(int(item.get("amount") or 0) for item in amounts or [])


def billing_credit_minor(line: dict) -> int:
    """Stripe billing credits applied to a line before tax (`pretax_credit_amounts` of type
    `credit_balance_transaction`); discounts are listed there too and are left to `discount_amounts`."""
    return sum(int(item.get("amount") or 0) for item in line.get("pretax_credit_amounts") or []
               if item.get("type") == "credit_balance_transaction")


@dataclass
class LineAmounts:
    """One Stripe line's amounts net of inclusive tax, in minor units (fractions allowed)."""

    net_before: Decimal  # before any discount or credit
    own: Decimal  # the line's own discounts
    shared: Decimal  # its share of invoice-level discounts
    credit: Decimal  # billing credits applied to it


def _inclusive_rate(line: dict, rates: dict[str, dict]) -> Decimal:
    """The sum of the line's inclusive tax rates in percent, read from its TaxRates."""
    total = Decimal(0)
    for tax in line.get("taxes") or []:
        if tax.get("tax_behavior") != "inclusive":
            continue
        total += rate_percentage(rate_of(tax, rates), tax)
    return total


def line_amounts(line: dict, invoice_discount_ids: set[str], rates: dict[str, dict] | None = None) -> LineAmounts:
    """The line's amounts without the tax an inclusive price contains.

    The net of a line is what Stripe taxed: `amount` less discounts and credits, less inclusive tax. Its
    parts (price, discounts, credits) are scaled by the same factor, so they add up to exactly that net.
    A line discounted to nothing has no tax to scale by: its inclusive rate is read from the TaxRate.
    """
    amount = Decimal(int(line.get("amount") or 0))
    own = Decimal(0)
    shared = Decimal(0)
    for item in line.get("discount_amounts") or []:
        discount = item.get("discount")
        discount_id = discount.get("id") if isinstance(discount, dict) else discount
        value = Decimal(int(item.get("amount") or 0))
        if discount_id in invoice_discount_ids and discount_id not in set(line.get("discounts") or []):
            shared += value
        else:
            own += value
    credit = Decimal(billing_credit_minor(line))
    taxes = line.get("taxes") or []
    if not any(t.get("tax_behavior") == "inclusive" for t in taxes):
        return LineAmounts(amount, own, shared, credit)
    inclusive_tax = Decimal(sum(int(t.get("amount") or 0) for t in taxes if t.get("tax_behavior") == "inclusive"))
    taxed = amount - own - shared - credit
    if taxed:
        factor = (taxed - inclusive_tax) / taxed
    else:
        factor = HUNDRED / (HUNDRED + _inclusive_rate(line, rates or {}))
    return LineAmounts(amount * factor, own * factor, shared * factor, credit * factor)


def _describe(line: dict) -> str:
    return " ".join(str(line.get("description") or "").split()) or "Stripe invoice line"


def _raw_minor_amounts(invoice: dict) -> list[int]:
    """Every amount Stripe states on the invoice, for the three-decimal check."""
    amounts = [int(invoice.get(name) or 0) for name in ("total", "total_excluding_tax", "subtotal")]
    amounts += [int(t.get("amount") or 0) for t in invoice.get("total_taxes") or []]
    for line in (invoice.get("lines") or {}).get("data") or []:
        amounts.append(int(line.get("amount") or 0))
        amounts += [int(d.get("amount") or 0) for d in line.get("discount_amounts") or []]
        amounts += [int(t.get("amount") or 0) for t in line.get("taxes") or []]
        amounts.append(billing_credit_minor(line))
    shipping = invoice.get("shipping_cost") or {}
    amounts += [int(shipping.get(name) or 0) for name in ("amount_total", "amount_tax")]
    return amounts


def amounts_e_conomic_cannot_carry(invoice: dict) -> list[Decimal]:
    """Amounts with a third decimal (BHD, JOD, KWD, OMR, TND): e-conomic's lines take two."""
    currency = invoice["currency"]
    if exponent(currency) <= 2:
        return []
    return [from_minor(a, currency) for a in _raw_minor_amounts(invoice) if a % 10]


def plan_lines(
    invoice: dict,
    product_numbers: dict[str, str],
    default_product_number: str | None,
    apply_invoice_discounts: bool,
    discount_product_number: str | None,
    *,
    shipping_product_number: str | None = None,
    rates: dict[str, dict] | None = None,
) -> LinePlan:
    """The e-conomic lines for a Stripe invoice: its lines, billing credits, invoice discounts, shipping."""
    currency = invoice["currency"]
    # Credit notes: -1 (their amounts are negated); 1 for every invoice, whose lines are planned as before.
    sign = -1 if invoice.get("credit_note") else 1
    rates = {**tax_rates_of(invoice), **(rates or {})}
    invoice_discount_ids = {d.get("id") if isinstance(d, dict) else d for d in invoice.get("discounts") or []}
    plan = LinePlan(
        expected_net=from_minor(invoice.get("total_excluding_tax") or 0, currency),
        expected_vat=from_minor(_sum(invoice.get("total_taxes")), currency),
        expected_gross=from_minor(invoice.get("total") or 0, currency),
    )
    shared_total = Decimal(0)
    credit_lines: list[PlannedLine] = []
    for line in (invoice.get("lines") or {}).get("data") or []:
        parts = line_amounts(line, invoice_discount_ids, rates)
        own = parts.own
        if apply_invoice_discounts:
            shared_total += parts.shared
        else:
            own += parts.shared
        product_id = product_id_of(line)
        number = product_numbers.get(product_id) if product_id else default_product_number
        quantity = line_quantity(line)
        net_before_major = from_minor(parts.net_before, currency)
        own_major = from_minor(own, currency)
        description = _describe(line)
        planned = _exact_line(description, quantity, net_before_major, own_major)
        if planned is None:
            total = to_cents(net_before_major - own_major)
            unit = net_before_major / quantity if quantity else net_before_major
            shown = f"{_plain(sign * quantity)} × {in_currency(sign * unit, currency)}"
            planned = PlannedLine(f"{description} ({shown})"[:2500], Decimal(1), total)
            plan.notes.append(f"{description}: booked as {sign} × {sign * total} (Stripe's quantity {_plain(quantity)} "
                              "does not fit 2 decimals exactly)")
        planned.product_number = number
        planned.stripe_product_id = product_id
        planned.stripe_line_id = line.get("id")
        plan.lines.append(planned)
        if parts.credit:
            credit = to_cents(from_minor(parts.credit, currency))
            credit_lines.append(PlannedLine(f"Billing credit applied: {description}"[:2500], Decimal(1), -credit,
                                            product_number=number, stripe_product_id=product_id,
                                            stripe_line_id=line.get("id")))
    plan.lines.extend(credit_lines)
    if shared_total:
        amount = to_cents(from_minor(shared_total, currency))
        plan.lines.append(PlannedLine("Invoice discount", Decimal(1), -amount, product_number=discount_product_number))
    shipping = invoice.get("shipping_cost") or {}
    shipping_net = int(shipping.get("amount_total") or 0) - int(shipping.get("amount_tax") or 0)
    if shipping_net:
        plan.lines.append(PlannedLine("Shipping", Decimal(1), to_cents(from_minor(shipping_net, currency)),
                                      product_number=shipping_product_number))
    _settle_residual(plan, sign)
    if sign < 0:
        # Credit notes: e-conomic's practice is the credited line at its price with a negative quantity
        # (-7.5 × 950.00, not 7.5 × -950.00); a reversed discount or credit is -1 × its negative price.
        for planned in plan.lines:
            planned.quantity, planned.unit_net_price = -planned.quantity, -planned.unit_net_price
    return plan


def _settle_residual(plan: LinePlan, sign: int = 1) -> None:
    """Splitting an inclusive price into net parts can leave each part a fraction of a minor unit off; the
    lines then miss Stripe's net by a cent or two. That residual belongs to the split, not to any VAT, so
    it goes on the synthetic line the split made (the invoice discount, else a billing credit line), which
    is negative on an invoice and positive on a credit note (`sign` -1)."""
    residual = plan.expected_net - plan.net_total
    if not residual or abs(residual) > CENT * len(plan.lines):
        return
    for line in reversed(plan.lines):
        if line.quantity == 1 and line.unit_net_price * sign < 0 and not line.discount_percentage:
            line.unit_net_price += residual
            return


def in_currency(value: Decimal, currency: str) -> str:
    """An amount rounded to its currency's decimals, for line texts (never 26 digits)."""
    places = exponent(currency)
    return f"{value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):,.{places}f}"


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _exact_line(description: str, quantity: Decimal, net_before: Decimal, own_discount: Decimal) -> PlannedLine | None:
    """quantity × unit price (− discount %) that gives exactly the line's net total, when 2 decimals allow."""
    if quantity <= 0 or not has_at_most_2_decimals(quantity):
        return None
    target = net_before - own_discount
    if not has_at_most_2_decimals(target):
        return None
    unit = net_before / quantity
    if has_at_most_2_decimals(unit):
        if not own_discount:
            return PlannedLine(description, quantity, unit)
        if net_before and own_discount == net_before:
            return PlannedLine(description, quantity, unit, Decimal(100))
        percentage = own_discount / net_before * HUNDRED if net_before else Decimal(0)
        if has_at_most_2_decimals(percentage):
            line = PlannedLine(description, quantity, unit, percentage)
            if line.net_total == target:
                return line
    unit_after = target / quantity
    if has_at_most_2_decimals(unit_after):
        return PlannedLine(description, quantity, unit_after)
    return None
