"""What the settings screens write: field mappings, customer & product settings, the VAT mapping, and
the e-conomic lists they choose from. Reads go through `portal.merchant_config`, as the worker's do.
All reads and writes are scoped by merchant id.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Iterable
from urllib.parse import quote

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Connection, FieldMapping, SyncSettings, VatMapping
from ..queue import redis_connection
from ..sync.economic import EconomicError
from ..sync.economic_journals import Account, Journal, accounts_list, journals_list
from ..sync.mapping import Mapping, MappingError, mapping_errors
from ..sync.vat import VatChoice
from .services import economic_client_for

log = logging.getLogger(__name__)

VAT_TREATMENT_KEY_LENGTH = VatMapping.__table__.c.treatment.type.length


def mappings_save(merchant_id: int, changes: dict[str, Mapping]) -> None:
    """Store the given rows, all or none: MappingError (listing every refused row) changes nothing."""
    errors = mapping_errors(changes)
    if errors:
        raise MappingError("; ".join(errors.values()))
    stored = {
        row.target: row
        for row in db.session.scalars(select(FieldMapping).where(FieldMapping.merchant_id == merchant_id))
    }
    for key, mapping in changes.items():
        row = stored.get(key) or FieldMapping(merchant_id=merchant_id, target=key)
        row.source = mapping.source.spec
        row.fallback = mapping.fallback.spec
        db.session.add(row)


# --- Choices loaded from the merchant's e-conomic ----------------------------------------------------

CHOICE_RESOURCES = {
    "customer_groups": ("/customer-groups", "customerGroupNumber"),
    "payment_terms": ("/payment-terms", "paymentTermsNumber"),
    "vat_zones": ("/vat-zones", "vatZoneNumber"),
    "layouts": ("/layouts", "layoutNumber"),
    "currencies": ("/currencies", "code"),
    "product_groups": ("/product-groups", "productGroupNumber"),
}


class ChoicesUnavailable(Exception):
    """Why the lists could not be loaded, in words for the merchant."""


def _cache_key(merchant_id: int) -> str:
    return f"{current_app.config['REDIS_KEY_PREFIX']}:economic-choices:{merchant_id}"


def economic_choices_forget(merchant_id: int) -> None:
    try:
        redis_connection().delete(_cache_key(merchant_id), _journal_lists_key(merchant_id))
    except Exception as error:  # a stale list for a few minutes is harmless
        log.warning("could not clear the e-conomic choices cache: %s", error)


def economic_choices(merchant_id: int, refresh: bool = False) -> dict[str, list[tuple[str, str]]]:
    """{"vat_zones": [("1", "Domestic (1)"), …], …} from e-conomic, cached briefly in Redis."""
    config = current_app.config
    redis = None
    try:
        redis = redis_connection()
        cached = None if refresh else redis.get(_cache_key(merchant_id))
        if cached:
            return {name: [tuple(choice) for choice in choices] for name, choices in json.loads(cached).items()}
    except Exception as error:  # no cache today: ask e-conomic every time
        log.warning("e-conomic choices cache unavailable: %s", error)
        redis = None
    connection = db.session.scalar(select(Connection).where(Connection.merchant_id == merchant_id))
    client = economic_client_for(connection, config["ECONOMIC_API_URL"], config["HTTP_TIMEOUT_SECONDS"]) if connection else None
    if client is None:
        raise ChoicesUnavailable("Connect e-conomic on the Connections page to choose from your e-conomic's lists.")
    choices: dict[str, list[tuple[str, str]]] = {}
    try:
        for name, (path, number_field) in CHOICE_RESOURCES.items():
            items = client.list_all(path)
            choices[name] = [
                (str(item[number_field]), f"{item.get('name') or item[number_field]} ({item[number_field]})")
                for item in items
                if item.get(number_field) is not None
            ]
    except EconomicError as error:
        raise ChoicesUnavailable(f"Could not load your e-conomic lists: {error}") from error
    if redis is not None:
        try:
            redis.set(_cache_key(merchant_id), json.dumps(choices), ex=config["ECONOMIC_CHOICES_CACHE_SECONDS"])
        except Exception as error:
            log.warning("could not cache e-conomic choices: %s", error)
    return choices


@dataclass(frozen=True)
class JournalLists:
    """The merchant's journals and chart of accounts (every account; `accepts_entries` says which take entries)."""

    journals: list[Journal]
    accounts: list[Account]


def _journal_lists_key(merchant_id: int) -> str:
    return f"{_cache_key(merchant_id)}:journals"


def economic_journal_lists(merchant_id: int, refresh: bool = False) -> JournalLists:
    """The journals (`GET /journals`) and accounts (`GET /accounts`) from e-conomic, cached briefly in Redis
    beside the other lists; ChoicesUnavailable says why they could not be read."""
    config = current_app.config
    redis = None
    try:
        redis = redis_connection()
        cached = None if refresh else redis.get(_journal_lists_key(merchant_id))
        if cached:
            lists = json.loads(cached)
            return JournalLists([Journal(**item) for item in lists["journals"]], [Account(**item) for item in lists["accounts"]])
    except Exception as error:  # no cache today (or one in an older shape): ask e-conomic
        log.warning("e-conomic journal lists cache unavailable: %s", error)
    connection = db.session.scalar(select(Connection).where(Connection.merchant_id == merchant_id))
    client = economic_client_for(connection, config["ECONOMIC_API_URL"], config["HTTP_TIMEOUT_SECONDS"]) if connection else None
    if client is None:
        raise ChoicesUnavailable("Connect e-conomic on the Connections page to choose from your e-conomic's lists.")
    try:
        lists = JournalLists(journals_list(client), accounts_list(client))
    except EconomicError as error:
        raise ChoicesUnavailable(f"Could not load your e-conomic lists: {error}") from error
    if redis is not None:
        try:
            redis.set(_journal_lists_key(merchant_id), json.dumps(asdict(lists)), ex=config["ECONOMIC_CHOICES_CACHE_SECONDS"])
        except Exception as error:
            log.warning("could not cache e-conomic journal lists: %s", error)
    return lists


def sync_settings_update(settings: SyncSettings, values: dict) -> None:
    """Copy the form's values (already cleaned: None for blank, numbers as int) onto the settings row."""
    for name, value in values.items():
        setattr(settings, name, value)


# --- VAT mapping: each VAT treatment Stripe applied → an e-conomic VAT zone (and product group) ------


class VatMappingError(ValueError):
    """A VAT mapping that cannot be stored, in words for the merchant."""


def vat_mapping_errors(choices: dict[str, VatChoice]) -> list[str]:
    errors = []
    for key, choice in choices.items():
        if not key or len(key) > VAT_TREATMENT_KEY_LENGTH:
            errors.append(f"“{key[:40]}” is not a VAT treatment.")
        elif choice.vat_zone_number is None and choice.product_group_number is not None:
            errors.append(f"{key}: choose a VAT zone as well as a product group, or neither.")
        else:
            for number in (choice.vat_zone_number, choice.product_group_number):
                if number is not None and (not isinstance(number, int) or number < 1):
                    errors.append(f"{key}: {number} is not an e-conomic number.")
    return errors


def vat_mappings_save(merchant_id: int, choices: dict[str, VatChoice]) -> None:
    """Store the given treatments' choices, all or none: VatMappingError (listing every refusal) changes
    nothing. A choice with no zone is stored too: it means "not mapped", also over a default. The caller commits."""
    errors = vat_mapping_errors(choices)
    if errors:
        raise VatMappingError(" ".join(errors))
    stored = {row.treatment: row for row in db.session.scalars(select(VatMapping).where(VatMapping.merchant_id == merchant_id))}
    for key, choice in choices.items():
        row = stored.get(key)
        if row is None:
            row = VatMapping(merchant_id=merchant_id, treatment=key)
            try:
                with db.session.begin_nested():
                    db.session.add(row)
            except IntegrityError:  # another request stored this treatment first: ours wins, as it came last
                row = db.session.scalar(
                    select(VatMapping).where(VatMapping.merchant_id == merchant_id, VatMapping.treatment == key)
                )
        row.vat_zone_number = choice.vat_zone_number
        row.product_group_number = choice.product_group_number


# --- Does a product exist in e-conomic? --------------------------------------------------------------


@dataclass
class ProductsCheck:
    missing: set[str] = field(default_factory=set)  # numbers e-conomic says it does not have
    warning: str | None = None  # why some could not be checked, in words for the merchant


def economic_products_check(merchant_id: int, numbers: Iterable[str]) -> ProductsCheck:
    """Ask e-conomic (`GET /products/{number}`) whether each product exists. A 404 is "missing"; any other
    failure, or no e-conomic connection, leaves the numbers unchecked and says so in `warning`."""
    numbers = [number for number in dict.fromkeys(numbers) if number]
    result = ProductsCheck()
    if not numbers:
        return result
    config = current_app.config
    connection = db.session.scalar(select(Connection).where(Connection.merchant_id == merchant_id))
    client = economic_client_for(connection, config["ECONOMIC_API_URL"], config["HTTP_TIMEOUT_SECONDS"]) if connection else None
    listed = ", ".join(numbers)
    if client is None:
        result.warning = f"Product {listed} was not checked in e-conomic: e-conomic is not connected."
        return result
    for number in numbers:
        try:
            client.request("GET", f"/products/{quote(number, safe='')}")
        except EconomicError as error:
            if error.status == 404:
                result.missing.add(number)
                continue
            result.warning = f"Product {listed} could not be checked in e-conomic ({error}); check that it exists there."
            return result
    return result
