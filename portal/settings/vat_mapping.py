"""The VAT mapping table on the Customer & product settings page: which VAT treatments to list, and what changed.

Rows: the standard treatments, every stored mapping, the merchant's active Stripe tax rates and the treatments
on its most recent finalized Stripe invoices. What Stripe shows is cached briefly in Redis, like e-conomic's
lists; when Stripe cannot be read the table still lists the standard and stored rows, with a note saying so.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal

import stripe
from flask import current_app

from ..queue import redis_connection
from ..stripe_accounts import stripe_accounts_of
from ..sync import vat
from ..sync.stripe_source import stripe_client, stripe_error_words
from ..sync.vat import Treatment, VatChoice, treatment_from_key
from ..merchant_config import vat_mappings_for, vat_mappings_stored

log = logging.getLogger(__name__)

RECENT_INVOICES = 100
# Reading Stripe happens while the merchant waits for the page: give up sooner than the sync would.
STRIPE_TIMEOUT = (5.0, 10.0)


class TreatmentsUnavailable(Exception):
    """Why Stripe's treatments could not be read, in words for the merchant."""


# --- What Stripe shows --------------------------------------------------------------------------------


def _cache_key(merchant_id: int, home_country: str) -> str:
    return f"{current_app.config['REDIS_KEY_PREFIX']}:vat-treatments:{merchant_id}:{home_country.upper()}"


def _stripe_client(api_key: str) -> stripe.StripeClient:
    return stripe_client(api_key, current_app.config["STRIPE_API_BASE"], max_network_retries=0, timeout=STRIPE_TIMEOUT)


def _read_stripe_treatments(client: stripe.StripeClient, home_country: str) -> list[Treatment]:
    rates: dict[str, dict] = {}
    found: list[Treatment] = []
    for rate in client.v1.tax_rates.list(params={"limit": 100}).auto_paging_iter():
        rate = rate.to_dict()
        rates[rate["id"]] = rate
        if rate.get("active"):
            found.append(vat.treatment_of_tax_rate(rate, home_country))
    invoices = client.v1.invoices.list(params={"limit": RECENT_INVOICES, "expand": ["data.total_taxes.tax_rate_details.tax_rate"]})
    for invoice in invoices.data:
        invoice = invoice.to_dict()
        if invoice.get("status") == "draft":
            continue
        found += vat.invoice_treatments(invoice, home_country, rates)
        if (invoice.get("lines") or {}).get("has_more"):  # lines past the first page: their rates, one by one
            every = {**vat.tax_rates_of(invoice), **rates}
            for tax in invoice.get("total_taxes") or []:
                if int(tax.get("amount") or 0):
                    found.append(vat.treatment_of_taxes([tax], invoice, every, home_country))
    return vat.distinct(found)


def stripe_treatments(merchant_id: int, home_country: str, refresh: bool = False) -> list[Treatment]:
    """The treatments of the active tax rates and recent finalized invoices of the merchant's Stripe accounts,
    cached briefly."""
    config = current_app.config
    redis = None
    try:
        redis = redis_connection()
        cached = None if refresh else redis.get(_cache_key(merchant_id, home_country))
        if cached:
            return [Treatment(key, label, Decimal(rate)) for key, label, rate in json.loads(cached)]
    except Exception as error:  # no cache today: ask Stripe every time
        log.warning("VAT treatments cache unavailable: %s", error)
        redis = None
    keys = [account.secret_key for account in stripe_accounts_of(merchant_id) if account.secret_key]
    if not keys:
        raise TreatmentsUnavailable("Connect Stripe on the Connections page to list the VAT on your Stripe tax rates and invoices too.")
    try:  # every account's: a merchant with one account per country has each country's VAT in its own
        found = vat.distinct([treatment for key in keys for treatment in _read_stripe_treatments(_stripe_client(key), home_country)])
    except stripe.StripeError as error:
        reason = stripe_error_words(error)
        raise TreatmentsUnavailable(
            f"Could not read your Stripe tax rates and invoices ({reason}), so only the usual cases and your saved rows are listed."
        ) from error
    if redis is not None:
        try:
            # The same few minutes as e-conomic's lists; "Reload them now" refreshes both.
            redis.set(_cache_key(merchant_id, home_country), json.dumps([(t.key, t.label, str(t.rate)) for t in found]),
                      ex=config["ECONOMIC_CHOICES_CACHE_SECONDS"])
        except Exception as error:
            log.warning("could not cache VAT treatments: %s", error)
    return found


# --- The table ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VatMappingRow:
    treatment: Treatment
    choice: VatChoice  # what the sync uses now; a zone of None: not mapped, such invoices are held
    in_stripe: bool  # one of the merchant's tax rates, or on a recent invoice


@dataclass
class VatMappingTable:
    rows: list[VatMappingRow]
    current: dict[str, VatChoice]  # vat_mappings_for(): only mapped treatments
    note: str | None  # why Stripe's treatments are not listed


def vat_mapping_table(merchant_id: int, home_country: str, refresh: bool = False) -> VatMappingTable:
    """Standard treatments first, then Stripe's, then any other stored one; each with its current choice."""
    current = vat_mappings_for(merchant_id)
    try:
        from_stripe, note = stripe_treatments(merchant_id, home_country, refresh), None
    except TreatmentsUnavailable as error:
        from_stripe, note = [], str(error)
    stored = [treatment_from_key(key, home_country) for key in vat_mappings_stored(merchant_id)]
    seen = {t.key for t in from_stripe}
    treatments = vat.distinct([*vat.standard_treatments(home_country), *from_stripe, *sorted(stored, key=lambda t: t.label)])
    rows = [VatMappingRow(t, current.get(t.key, VatChoice(None)), t.key in seen) for t in treatments]
    return VatMappingTable(rows, current, note)


def vat_mapping_changes(current: dict[str, VatChoice], submitted: dict[str, VatChoice]) -> dict[str, VatChoice]:
    """The submitted rows that differ from what the sync uses now. Rows left as shown are not stored, so a
    default keeps following the VAT zone settings it comes from."""
    return {key: choice for key, choice in submitted.items() if choice != current.get(key, VatChoice(None))}
