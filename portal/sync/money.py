"""Money: Stripe's integer minor units to `Decimal` with each currency's real exponent. Never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# Stripe's zero-decimal currencies (an amount of 500 JPY is 500 yen).
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
# Stripe's three-decimal currencies (5.124 KWD is 5124).
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())

CENT = Decimal("0.01")


def exponent(currency: str) -> int:
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def from_minor(amount: int | str | Decimal, currency: str) -> Decimal:
    """Minor units (an int, or Stripe's decimal string such as unit_amount_decimal "0.125") to major units."""
    return Decimal(str(amount)).scaleb(-exponent(currency))


def to_cents(value: Decimal) -> Decimal:
    """Rounded half-up to 2 decimals, the precision e-conomic takes for prices and amounts."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def has_at_most_2_decimals(value: Decimal) -> bool:
    return value == value.quantize(CENT)
