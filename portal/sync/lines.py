"""Stripe invoice lines → e-conomic document lines, with totals that reconcile.

Every line is booked from Stripe's `amount` (not quantity × unit price), net of inclusive tax,
because e-conomic adds VAT itself by the customer's VAT zone. A line's own discounts become its
discount percentage when that is exact at 2 decimals, else they are folded into the unit price;
invoice-level discounts become one negative line on the discount product, or are folded into the
lines when the merchant turned that off. Quantities and prices that 2 decimals cannot carry exactly
become quantity 1 at the line's total, with the original quantity kept in the description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .money import CENT, from_minor, has_at_most_2_decimals, to_cents

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

    @property
    def rounding_allowance(self) -> Decimal:
        """The most that 2-decimal line prices can move the net total: half a cent per line."""
        return CENT / 2 * max(len(self.lines), 1)


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


def _line_minor_amounts(line: dict, invoice_discount_ids: set[str]) -> tuple[Decimal, Decimal, Decimal]:
    """(net before discounts, own discounts net, invoice-level share net), in minor units."""
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
    inclusive_tax = Decimal(
        sum(int(t.get("amount") or 0) for t in line.get("taxes") or [] if t.get("tax_behavior") == "inclusive")
    )
    if inclusive_tax:
        discounted = amount - own - shared
        if discounted:
            factor = (discounted - inclusive_tax) / discounted
        else:  # fully discounted: use the rate implied by the taxable amount, else nothing to net
            taxable = Decimal(sum(int(t.get("taxable_amount") or 0) for t in line.get("taxes") or []))
            factor = taxable / (taxable + inclusive_tax) if taxable + inclusive_tax else Decimal(1)
        return amount * factor, own * factor, shared * factor
    return amount, own, shared


def _describe(line: dict) -> str:
    return " ".join(str(line.get("description") or "").split()) or "Stripe invoice line"


def plan_lines(
    invoice: dict,
    product_numbers: dict[str, str],
    default_product_number: str | None,
    apply_invoice_discounts: bool,
    discount_product_number: str | None,
) -> LinePlan:
    currency = invoice["currency"]
    invoice_discount_ids = {d.get("id") if isinstance(d, dict) else d for d in invoice.get("discounts") or []}
    plan = LinePlan(
        expected_net=from_minor(invoice.get("total_excluding_tax") or 0, currency),
        expected_vat=from_minor(_sum(invoice.get("total_taxes")), currency),
        expected_gross=from_minor(invoice.get("total") or 0, currency),
    )
    shared_total = Decimal(0)
    for line in (invoice.get("lines") or {}).get("data") or []:
        net_before, own, shared = _line_minor_amounts(line, invoice_discount_ids)
        if apply_invoice_discounts:
            shared_total += shared
        else:
            own += shared
        product_id = product_id_of(line)
        number = product_numbers.get(product_id) if product_id else default_product_number
        quantity = line_quantity(line)
        net_before_major = from_minor(net_before, currency)
        own_major = from_minor(own, currency)
        description = _describe(line)
        planned = _exact_line(description, quantity, net_before_major, own_major)
        if planned is None:
            total = to_cents(net_before_major - own_major)
            planned = PlannedLine(f"{description} ({_plain(quantity)} × {_plain(net_before_major / quantity if quantity else net_before_major)})"[:2500], Decimal(1), total)
            plan.notes.append(f"{description}: booked as 1 × {total} (Stripe's quantity {_plain(quantity)} does not fit 2 decimals exactly)")
        planned.product_number = number
        planned.stripe_product_id = product_id
        planned.stripe_line_id = line.get("id")
        plan.lines.append(planned)
    if shared_total:
        amount = to_cents(from_minor(shared_total, currency))
        plan.lines.append(PlannedLine("Invoice discount", Decimal(1), -amount, product_number=discount_product_number))
    return plan


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
