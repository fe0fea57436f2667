"""What a merchant configured — Invoice Sync Rules, field mappings, customer & product settings and the
VAT mapping — read once, for the worker and the screens alike.

A merchant's rule and settings rows are created with their defaults on first read, so every merchant
starts with a working configuration. Everything is scoped by merchant id.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import FieldMapping, SyncRule, SyncSettings, VatMapping
from .models import JournalSettings, StripeAccount
from .sync.engine import EngineSettings
from .sync.journal_choices import JournalChoices
from .sync.mapping import DEFAULT_MAPPINGS, Mapping, Source
from .sync.vat import VatChoice, default_vat_mapping

DEFAULT_HOME_COUNTRY = "DK"  # SyncSettings.home_country's default, for a merchant with no settings row yet


@cache
def _rows_of_merchant(model) -> Select:
    """`SELECT` of a merchant's rows of `model`, built once (the worker reads them for every invoice, and a
    statement built anew costs SQLAlchemy its cache key again)."""
    return select(model).where(model.merchant_id == bindparam("merchant_id"))


def merchant_row(model, merchant_id: int):
    """The merchant's one row of a per-merchant settings table, made (with its defaults) when it has none."""
    row = db.session.scalar(_rows_of_merchant(model), {"merchant_id": merchant_id})
    if row is None:
        row = model(merchant_id=merchant_id)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:  # another request created it first
            row = db.session.scalar(_rows_of_merchant(model), {"merchant_id": merchant_id})
    return row


def rule_for(merchant_id: int) -> SyncRule:
    return merchant_row(SyncRule, merchant_id)


def sync_settings_for(merchant_id: int) -> SyncSettings:
    return merchant_row(SyncSettings, merchant_id)


def mappings_for(merchant_id: int) -> dict[str, Mapping]:
    """The merchant's mapping of every target: stored rows over the defaults."""
    mappings = dict(DEFAULT_MAPPINGS)
    for row in db.session.scalars(_rows_of_merchant(FieldMapping), {"merchant_id": merchant_id}):
        if row.target in mappings:
            mappings[row.target] = Mapping(Source.parse(row.source), Source.parse(row.fallback))
    return mappings


def _vat_mapping_rows(merchant_id: int) -> list[VatMapping]:
    return list(db.session.scalars(_rows_of_merchant(VatMapping), {"merchant_id": merchant_id}))


def vat_mappings_stored(merchant_id: int) -> dict[str, VatChoice]:
    """Only what the merchant chose, including choices of "not mapped" (a zone of None)."""
    return {row.treatment: VatChoice(row.vat_zone_number, row.product_group_number) for row in _vat_mapping_rows(merchant_id)}


def vat_mappings_for(merchant_id: int, settings: SyncSettings | None = None) -> dict[str, VatChoice]:
    """The merchant's VAT mapping, treatment key → VatChoice: stored rows over the defaults made from the
    VAT zone settings (`settings`, when the caller has read them already). Only mapped treatments are in it;
    a treatment missing from it holds its invoice. A read: nothing is created or written (the worker calls
    it inside an app context)."""
    if settings is None:
        settings = db.session.scalar(select(SyncSettings).where(SyncSettings.merchant_id == merchant_id))
    if settings is None:
        mapping = default_vat_mapping(DEFAULT_HOME_COUNTRY, None, None, None)
    else:
        mapping = default_vat_mapping(settings.home_country or DEFAULT_HOME_COUNTRY, settings.vat_zone_domestic,
                                      settings.vat_zone_eu_with_vat_id, settings.vat_zone_outside_eu,
                                      settings.vat_zone_eu_without_vat_id)
    for key, choice in vat_mappings_stored(merchant_id).items():
        if choice.vat_zone_number is None:
            mapping.pop(key, None)  # "not mapped" overrides a default
        else:
            mapping[key] = choice
    return mapping


def engine_settings_for(merchant_id: int, document_type: str, write_back_to_stripe: bool,
                        account: StripeAccount | None = None) -> EngineSettings:
    """Everything the sync engine needs of the merchant's configuration, copied out of the database, with the
    Stripe account's own currency and layout where it has them."""
    stored = sync_settings_for(merchant_id)
    values = {name: getattr(stored, name) for name in EngineSettings.__dataclass_fields__ if hasattr(stored, name)}
    if account is not None and account.fixed_currency:
        values.update(currency_mode="fixed", fixed_currency=account.fixed_currency)
    if account is not None and account.layout_number:
        values["layout_number"] = account.layout_number
    return EngineSettings(
        **values,
        document_type=document_type,
        write_back_to_stripe=write_back_to_stripe,
        mappings=mappings_for(merchant_id),
        vat_mapping=vat_mappings_for(merchant_id, stored),
    )


def time_zone_of(merchant_id: int) -> str | None:
    """The time zone named in the merchant's Customer & product settings; None before they are saved. A read."""
    return db.session.scalar(select(SyncSettings.time_zone).where(SyncSettings.merchant_id == merchant_id))


def journal_settings_for(merchant_id: int) -> JournalChoices:
    """The merchant's journal entry settings; a merchant who saved none has everything off and the default
    texts. A read: nothing is created or written."""
    row = db.session.scalar(select(JournalSettings).where(JournalSettings.merchant_id == merchant_id))
    if row is None:
        return JournalChoices()
    return JournalChoices(**{name: getattr(row, name) for name in JournalChoices.__dataclass_fields__})
