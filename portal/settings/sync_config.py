"""A merchant's sync configuration: rules, field mappings, customer & product settings.

Each merchant's rows are created with defaults on first read, so every merchant starts with a
working configuration. All reads and writes are scoped by merchant id.
"""

from __future__ import annotations

import json
import logging

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Connection, FieldMapping, SyncRule, SyncSettings
from ..queue import redis_connection
from ..sync.economic import EconomicError
from ..sync.mapping import DEFAULT_MAPPINGS, Mapping, MappingError, Source, mapping_errors
from .services import economic_client_for

log = logging.getLogger(__name__)


def _get_or_create(model, merchant_id: int):
    row = db.session.scalar(select(model).where(model.merchant_id == merchant_id))
    if row is None:
        row = model(merchant_id=merchant_id)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:  # another request created it first
            row = db.session.scalar(select(model).where(model.merchant_id == merchant_id))
    return row


def rule_for(merchant_id: int) -> SyncRule:
    return _get_or_create(SyncRule, merchant_id)


def sync_settings_for(merchant_id: int) -> SyncSettings:
    return _get_or_create(SyncSettings, merchant_id)


def mappings_for(merchant_id: int) -> dict[str, Mapping]:
    """The merchant's mapping of every target: stored rows over the defaults."""
    mappings = dict(DEFAULT_MAPPINGS)
    for row in db.session.scalars(select(FieldMapping).where(FieldMapping.merchant_id == merchant_id)):
        if row.target in mappings:
            mappings[row.target] = Mapping(Source.parse(row.source), Source.parse(row.fallback))
    return mappings


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
        redis_connection().delete(_cache_key(merchant_id))
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
            redis.setex(_cache_key(merchant_id), config["ECONOMIC_CHOICES_CACHE_SECONDS"], json.dumps(choices))
        except Exception as error:
            log.warning("could not cache e-conomic choices: %s", error)
    return choices

