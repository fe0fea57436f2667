"""VAT as Stripe charged it, the e-conomic VAT zone it maps to, and the check that e-conomic agrees.

e-conomic does not take VAT per line: it computes it from each line's product group (the group's sales
account for the document's VAT zone, and that account's VAT code). So the sync (1) reads the *treatment*
Stripe applied to every line (the tax rate's country and percentage, reverse charge, an exempt customer,
no tax at all), (2) maps each treatment to a VAT zone (and, where the rate lives on a product group, the
group for new products) through the merchant's VAT mapping, and (3) after e-conomic has computed the
draft, compares its net, VAT and gross with Stripe's before anything is booked (`reconcile`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

EU_COUNTRIES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
)
# Each home country's standard VAT rate, for the default mapping ("DK 25 %" → the domestic zone).
STANDARD_RATES = {"DK": Decimal(25)}

REVERSE_CHARGE = "reverse_charge"
EXEMPT = "exempt"
NO_TAX_DOMESTIC = "none:domestic"
NO_TAX_EU = "none:eu"
NO_TAX_OUTSIDE_EU = "none:outside_eu"
NO_TAX_UNKNOWN = "none:unknown"

# Stripe's taxability reasons for a zero tax that still names a rate (a product or a sale not taxed).
_ZERO_REASONS = {
    "product_exempt": "product exempt from VAT",
    "product_exempt_holiday": "product exempt from VAT",
    "zero_rated": "zero-rated",
}
_NOT_TAXED_REASONS = {"not_collecting", "not_subject_to_tax", "not_supported", "not_available"}

# The largest VAT rounding difference, in minor units, that a rounding line may carry. Fixed: it does
# not grow with the number of lines.
ROUNDING_MAX_MINOR_UNITS = 5


@dataclass(frozen=True)
class Treatment:
    """One way Stripe treated VAT on a line. `key` is stored in the merchant's VAT mapping."""

    key: str
    label: str
    rate: Decimal  # the percentage Stripe charged under it (0 for reverse charge, exempt, no tax)

    @property
    def description(self) -> str:
        return self.label


@dataclass(frozen=True)
class VatChoice:
    """Where a treatment goes in e-conomic: the document's VAT zone, and the product group for new products."""

    vat_zone_number: int | None
    product_group_number: int | None = None


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def rate_treatment(country: str, percentage: Decimal, home_country: str) -> Treatment:
    country = (country or "").upper() or "??"
    label = f"{country} {_plain(percentage)} %"
    if country != home_country.upper() and country in EU_COUNTRIES:
        label += " (OSS)"
    return Treatment(f"rate:{country}:{_plain(percentage)}", label, percentage)


def zero_treatment(country: str, reason: str) -> Treatment:
    country = (country or "").upper() or "??"
    return Treatment(f"{reason}:{country}", f"{country}, {_ZERO_REASONS[reason]}", Decimal(0))


def no_tax_treatment(customer_country: str | None, home_country: str) -> Treatment:
    if not customer_country:
        return Treatment(NO_TAX_UNKNOWN, "No VAT charged, customer's country unknown", Decimal(0))
    country = customer_country.upper()
    if country == home_country.upper():
        return Treatment(NO_TAX_DOMESTIC, f"No VAT charged, customer in {home_country.upper()}", Decimal(0))
    if country in EU_COUNTRIES:
        return Treatment(NO_TAX_EU, "No VAT charged, customer elsewhere in the EU", Decimal(0))
    return Treatment(NO_TAX_OUTSIDE_EU, "No VAT charged, customer outside the EU", Decimal(0))


REVERSE_CHARGE_TREATMENT = Treatment(REVERSE_CHARGE, "Reverse charge (the customer accounts for VAT)", Decimal(0))
EXEMPT_TREATMENT = Treatment(EXEMPT, "Customer exempt from VAT", Decimal(0))


def standard_treatments(home_country: str) -> list[Treatment]:
    """The treatments every merchant may meet, listed on the VAT mapping before any invoice shows them."""
    home = home_country.upper()
    found = []
    if home in STANDARD_RATES:
        found.append(rate_treatment(home, STANDARD_RATES[home], home))
    found += [
        REVERSE_CHARGE_TREATMENT,
        EXEMPT_TREATMENT,
        no_tax_treatment(home, home),
        no_tax_treatment("DE" if home != "DE" else "FR", home),
        no_tax_treatment("US", home),
        no_tax_treatment(None, home),
    ]
    return found


def treatment_from_key(key: str, home_country: str) -> Treatment:
    """The treatment a stored key stands for, with its label ("rate:DE:19" → "DE 19 % (OSS)")."""
    known = {t.key: t for t in (*standard_treatments(home_country), no_tax_treatment(None, home_country))}
    if key in known:
        return known[key]
    if "+" in key:
        parts = [treatment_from_key(part, home_country) for part in key.split("+")]
        return Treatment(key, " + ".join(p.label for p in parts), sum((p.rate for p in parts), Decimal(0)))
    kind, _, rest = key.partition(":")
    if kind == "rate" and rest.count(":") == 1:
        country, percentage = rest.split(":")
        try:
            return rate_treatment(country, Decimal(percentage), home_country)
        except InvalidOperation:
            pass
    try:
        return zero_treatment(rest, kind)
    except KeyError:
        pass
    return Treatment(key, key, Decimal(0))


def default_vat_mapping(home_country: str, domestic: int | None, eu_with_vat_id: int | None,
                        outside_eu: int | None, eu_without_vat_id: int | None = None) -> dict[str, VatChoice]:
    """The common Danish cases out of the box: the home standard rate → domestic, reverse charge → EU,
    no tax outside the EU → abroad, and no tax to a customer elsewhere in the EU → the zone chosen for EU
    customers without a VAT id. Zone numbers come from the merchant's VAT zone settings."""
    mapping: dict[str, VatChoice] = {}
    home = home_country.upper()
    if home in STANDARD_RATES and domestic:
        mapping[rate_treatment(home, STANDARD_RATES[home], home).key] = VatChoice(domestic)
    if eu_with_vat_id:
        mapping[REVERSE_CHARGE] = VatChoice(eu_with_vat_id)
    if outside_eu:
        mapping[NO_TAX_OUTSIDE_EU] = VatChoice(outside_eu)
    if eu_without_vat_id:
        mapping[NO_TAX_EU] = VatChoice(eu_without_vat_id)
    return mapping


# --- Reading a Stripe invoice ----------------------------------------------------------------------


def tax_rate_id(tax: dict) -> str | None:
    rate = (tax.get("tax_rate_details") or {}).get("tax_rate")
    return rate.get("id") if isinstance(rate, dict) else rate


def rate_of(tax: dict, rates: dict[str, dict]) -> dict | None:
    """A tax entry's TaxRate: inline (`shipping_cost.taxes[].rate`, an expanded `tax_rate_details.tax_rate`)
    or looked up by id."""
    inline = tax.get("rate")
    if isinstance(inline, dict):
        return inline
    expanded = (tax.get("tax_rate_details") or {}).get("tax_rate")
    if isinstance(expanded, dict):
        return expanded
    return rates.get(tax_rate_id(tax) or "")


def tax_rates_of(invoice: dict) -> dict[str, dict]:
    """Every TaxRate object the invoice carries in full (expanded `total_taxes`, `default_tax_rates`)."""
    rates: dict[str, dict] = {}
    for rate in invoice.get("default_tax_rates") or []:
        if isinstance(rate, dict) and rate.get("id"):
            rates[rate["id"]] = rate
    for tax in invoice.get("total_taxes") or []:
        rate = (tax.get("tax_rate_details") or {}).get("tax_rate")
        if isinstance(rate, dict) and rate.get("id"):
            rates[rate["id"]] = rate
    return rates


def customer_country(invoice: dict) -> str | None:
    """The customer's country as Stripe knows it: billing address, then the shipping addresses."""
    for address in (
        invoice.get("customer_address"),
        (invoice.get("customer_shipping") or {}).get("address"),
        (invoice.get("shipping_details") or {}).get("address"),
    ):
        if address and address.get("country"):
            return str(address["country"]).upper()
    return None


def rate_percentage(rate: dict | None, tax: dict) -> Decimal:
    """The tax's percentage: from its TaxRate, else implied by Stripe's amounts."""
    if rate:
        value = rate.get("effective_percentage")
        if value is None:
            value = rate.get("percentage")
        if value is not None:
            return Decimal(str(value))
    taxable = int(tax.get("taxable_amount") or 0)
    if taxable:
        return (Decimal(int(tax.get("amount") or 0)) * 100 / taxable).quantize(Decimal("0.01")).normalize()
    return Decimal(0)


def treatment_of_taxes(taxes: list[dict] | None, invoice: dict, rates: dict[str, dict], home_country: str) -> Treatment:
    """The treatment of one line (or of shipping) from its `taxes`, the customer's tax status and country."""
    country = customer_country(invoice)
    exempt = invoice.get("customer_tax_exempt")
    charged = [t for t in taxes or [] if int(t.get("amount") or 0) != 0]
    if charged:
        parts = []
        for tax in charged:
            rate = rate_of(tax, rates)
            parts.append(rate_treatment((rate or {}).get("country") or country or "", rate_percentage(rate, tax), home_country))
        if len(parts) == 1:
            return parts[0]
        return Treatment("+".join(p.key for p in parts), " + ".join(p.label for p in parts), sum((p.rate for p in parts), Decimal(0)))
    reasons = {t.get("taxability_reason") for t in taxes or []}
    if "reverse_charge" in reasons or exempt == "reverse":
        return REVERSE_CHARGE_TREATMENT
    if "customer_exempt" in reasons or exempt == "exempt":
        return EXEMPT_TREATMENT
    for reason in _ZERO_REASONS:
        if reason in reasons:
            tax = next(t for t in taxes or [] if t.get("taxability_reason") == reason)
            rate = rate_of(tax, rates)
            return zero_treatment((rate or {}).get("country") or country or "", reason)
    free = [t for t in taxes or [] if not int(t.get("taxable_amount") or 0) and (rate_of(t, rates) or {}).get("percentage")]
    if free:  # discounted to nothing: no tax to charge, but the rate is the line's treatment
        rate = rate_of(free[0], rates) or {}
        return rate_treatment(rate.get("country") or country or "", rate_percentage(rate, free[0]), home_country)
    zero_rates = [rate_of(t, rates) for t in taxes or []]
    if zero_rates and all(r and r.get("percentage") is not None and Decimal(str(r["percentage"])) == 0 for r in zero_rates):
        return rate_treatment(zero_rates[0].get("country") or country or "", Decimal(0), home_country)
    return no_tax_treatment(country, home_country)


def treatment_of_tax_rate(rate: dict, home_country: str) -> Treatment:
    """The treatment a Stripe TaxRate stands for, for listing the merchant's tax rates on the VAT mapping."""
    return rate_treatment(rate.get("country") or rate.get("jurisdiction") or "", Decimal(str(rate.get("percentage") or 0)), home_country)


def invoice_treatments(invoice: dict, home_country: str, rates: dict[str, dict] | None = None) -> list[Treatment]:
    """Every distinct treatment on an invoice (lines and shipping), in the order they first appear."""
    rates = {**tax_rates_of(invoice), **(rates or {})}
    found: dict[str, Treatment] = {}
    for line in (invoice.get("lines") or {}).get("data") or []:
        treatment = treatment_of_taxes(line.get("taxes"), invoice, rates, home_country)
        found.setdefault(treatment.key, treatment)
    shipping = invoice.get("shipping_cost")
    if shipping and int(shipping.get("amount_total") or 0):
        treatment = treatment_of_taxes(shipping.get("taxes"), invoice, rates, home_country)
        found.setdefault(treatment.key, treatment)
    return list(found.values())


# --- Reconciliation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """A document's totals in major units of its currency."""

    net: Decimal
    vat: Decimal
    gross: Decimal

    def as_strings(self) -> dict[str, str]:
        return {"net": str(self.net), "vat": str(self.vat), "gross": str(self.gross)}

    @classmethod
    def from_economic(cls, document: dict) -> Figures:
        def amount(name: str) -> Decimal:
            value = document.get(name)
            return Decimal(str(value)) if value is not None else Decimal(0)

        return cls(amount("netAmount"), amount("vatAmount"), amount("grossAmount"))


@dataclass
class Reconciliation:
    """Stripe's figures beside e-conomic's for one document, and what (if anything) differs."""

    currency: str
    stripe: Figures
    economic: Figures
    rounding: Decimal = Decimal(0)  # the rounding line already on the document
    differences: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        def row(name: str, ours: Decimal, theirs: Decimal) -> str:
            return f"{name} Stripe {money(ours, self.currency)}, e-conomic {money(theirs, self.currency)}"

        text = "; ".join((
            row("net", self.stripe.net, self.economic.net - self.rounding),
            row("VAT", self.stripe.vat, self.economic.vat),
            row("gross", self.stripe.gross, self.economic.gross),
        ))
        if self.rounding:
            text += f"; a rounding line of {money(self.rounding, self.currency)}"
        return ("Totals agree: " if self.agrees else "Totals differ: ") + text

    def as_json(self) -> dict[str, Any]:
        return {"currency": self.currency, "stripe": self.stripe.as_strings(), "economic": self.economic.as_strings(),
                "rounding": str(self.rounding), "agrees": self.agrees, "differences": self.differences}


def money(value: Decimal, currency: str) -> str:
    """1234.5 DKK → "1,234.50 DKK": how the history shows an amount."""
    places = max(-value.as_tuple().exponent, 2) if isinstance(value.as_tuple().exponent, int) else 2
    return f"{value:,.{places}f} {currency.upper()}"


def reconcile(currency: str, stripe: Figures, economic: Figures, rounding: Decimal = Decimal(0)) -> Reconciliation:
    """Agreement: net exact (less the rounding line), gross exact to the minor unit."""
    result = Reconciliation(currency, stripe, economic, rounding)
    if economic.net - rounding != stripe.net:
        result.differences.append(f"net: Stripe {money(stripe.net, currency)}, e-conomic {money(economic.net - rounding, currency)}")
    if economic.vat != stripe.vat and economic.gross != stripe.gross:
        result.differences.append(f"VAT: Stripe {money(stripe.vat, currency)}, e-conomic {money(economic.vat, currency)}")
    if economic.gross != stripe.gross:
        result.differences.append(f"gross: Stripe {money(stripe.gross, currency)}, e-conomic {money(economic.gross, currency)}")
    return result


def rounding_needed(result: Reconciliation, minor_unit: Decimal) -> Decimal | None:
    """The rounding line that would make the gross agree, when the net agrees and only VAT rounding
    differs by a few minor units; None when a rounding line cannot (or need not) fix it."""
    if result.economic.net - result.rounding != result.stripe.net:
        return None
    difference = result.stripe.gross - result.economic.gross
    if difference == 0 or abs(difference) > minor_unit * ROUNDING_MAX_MINOR_UNITS:
        return None
    return difference


def distinct(items: Iterable[Treatment]) -> list[Treatment]:
    seen: dict[str, Treatment] = {}
    for item in items:
        seen.setdefault(item.key, item)
    return list(seen.values())
