"""Invoice/Order field mappings: which Stripe invoice field fills which e-conomic document field.

The catalogue of e-conomic targets and Stripe sources, the type rules between them ("map similar
field types"), the merchant's starting defaults, and `resolve`, which reads the values from a Stripe
invoice (a plain dict in the shape of the pinned API version) and fits them to e-conomic's limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

import pycountry


class Kind(str, Enum):
    TEXT = "text"
    DATE = "date"
    COUNTRY = "country"


@dataclass(frozen=True)
class Target:
    """A field on e-conomic's draft invoice / draft order (`POST /invoices/drafts`, `/orders/drafts`)."""

    key: str  # the JSON path in e-conomic's body (shown to people only as a tooltip)
    label: str  # in words, sentence case
    kind: Kind
    max_length: int | None = None
    fallback_allowed: bool = False
    locked: str | None = None  # why the merchant cannot change it

    @property
    def hint(self) -> str:
        """What the field takes, in words ("Text, up to 50 characters")."""
        kind = {Kind.TEXT: "Text", Kind.DATE: "A date", Kind.COUNTRY: "A country name"}[self.kind]
        return kind + (f", up to {self.max_length} characters" if self.max_length and self.kind is Kind.TEXT else "")


TARGETS: tuple[Target, ...] = (
    Target("delivery.address", "Delivery address", Kind.TEXT, 255, fallback_allowed=True),
    Target("delivery.city", "Delivery city", Kind.TEXT, 50, fallback_allowed=True),
    Target("delivery.country", "Delivery country", Kind.COUNTRY, 50, fallback_allowed=True),
    Target("delivery.zip", "Delivery postal code", Kind.TEXT, 30, fallback_allowed=True),
    Target("delivery.deliveryDate", "Delivery date", Kind.DATE, fallback_allowed=True),
    Target("delivery.deliveryTerms", "Delivery terms", Kind.TEXT, 100),
    Target("notes.heading", "Heading", Kind.TEXT, 250),
    Target("notes.textLine1", "Text line 1", Kind.TEXT, 1000),
    Target("notes.textLine2", "Text line 2", Kind.TEXT, 1000),
    Target(
        "references.other",
        "Other reference",
        Kind.TEXT,
        250,
        locked="Always the Stripe invoice number, so an accountant can trace every document back to Stripe.",
    ),
)
TARGETS_BY_KEY = {target.key: target for target in TARGETS}


@dataclass(frozen=True)
class StripeField:
    path: str
    label: str
    group: str
    kind: Kind = Kind.TEXT

    @property
    def title(self) -> str:
        """In words, with its group: "Shipping address › City" (the path is for tooltips)."""
        return f"{self.group} › {self.label}"


def _address_fields(prefix: str, group: str, with_name: bool = True) -> list[StripeField]:
    fields = [StripeField(f"{prefix}.name", "Name", group)] if with_name else []
    address = f"{prefix}.address" if with_name else prefix
    fields += [
        StripeField(f"{address}.street", "Street: line 1 and line 2", group),
        StripeField(f"{address}.line1", "Line 1", group),
        StripeField(f"{address}.line2", "Line 2", group),
        StripeField(f"{address}.postal_code", "Postal code", group),
        StripeField(f"{address}.city", "City", group),
        StripeField(f"{address}.state", "State / region", group),
        StripeField(f"{address}.country", "Country", group, Kind.COUNTRY),
    ]
    if with_name:
        fields.append(StripeField(f"{prefix}.phone", "Phone", group))
    return fields


# Where Stripe's own invoice PDF ships to: the invoice's `shipping_details`, else the customer's shipping
# address. A whole address is taken from one of them, never parts of each.
SHIP_TO = "ship_to"

# Invoice fields of Stripe API 2026-10-28.endive, grouped for people.
STRIPE_FIELDS: tuple[StripeField, ...] = tuple(
    _address_fields(SHIP_TO, "Ship to (as on the invoice)")
    + _address_fields("shipping_details", "Invoice shipping")
    + _address_fields("customer_shipping", "Shipping address")
    + _address_fields("customer_address", "Billing address", with_name=False)
    + [
        StripeField("customer_name", "Name", "Customer"),
        StripeField("customer_email", "E-mail", "Customer"),
        StripeField("customer_phone", "Phone", "Customer"),
        StripeField("customer", "Stripe customer id", "Customer"),
        StripeField("number", "Invoice number", "Invoice"),
        StripeField("id", "Stripe invoice id", "Invoice"),
        StripeField("description", "Description (memo)", "Invoice"),
        StripeField("footer", "Footer", "Invoice"),
        StripeField("account_name", "Your account name", "Invoice"),
        StripeField("effective_at", "Date of issue", "Dates", Kind.DATE),
        StripeField("due_date", "Due date", "Dates", Kind.DATE),
        StripeField("status_transitions.finalized_at", "Finalized at", "Dates", Kind.DATE),
        StripeField("status_transitions.paid_at", "Paid at", "Dates", Kind.DATE),
        StripeField("created", "Created", "Dates", Kind.DATE),
        StripeField("period_start", "Period start", "Dates", Kind.DATE),
        StripeField("period_end", "Period end", "Dates", Kind.DATE),
    ]
)
STRIPE_FIELDS_BY_PATH = {field.path: field for field in STRIPE_FIELDS}

# Source kinds beside a Stripe field.
NOT_MAPPED, FIELD, METADATA, CUSTOM_FIELD, FIXED = "none", "field", "metadata", "custom_field", "fixed"
STRIPE_METADATA_KEY_MAX = 40  # Stripe's limit for metadata keys
CUSTOM_FIELD_NAME_MAX = 40  # Stripe's limit for an invoice custom field's name


class MappingError(ValueError):
    """A source that does not fit its target, with a message for the merchant."""


@dataclass(frozen=True)
class Source:
    type: str = NOT_MAPPED
    value: str = ""  # the Stripe path, the metadata key, the custom field's name, or the fixed text

    @classmethod
    def parse(cls, spec: str | None) -> Source:
        """Read the stored form: "none", "field:<path>", "metadata:<key>", "custom_field:<name>", "fixed:<text>"."""
        if not spec or spec == NOT_MAPPED:
            return cls()
        type_, _, value = spec.partition(":")
        return cls(type_, value)

    @property
    def spec(self) -> str:
        return NOT_MAPPED if self.type == NOT_MAPPED else f"{self.type}:{self.value}"

    @property
    def is_mapped(self) -> bool:
        return self.type != NOT_MAPPED

    @property
    def kind(self) -> Kind | None:
        if self.type == FIELD:
            field = STRIPE_FIELDS_BY_PATH.get(self.value)
            return field.kind if field else None
        return None if self.type == NOT_MAPPED else Kind.TEXT

    @property
    def label(self) -> str:
        if self.type == FIELD:
            field = STRIPE_FIELDS_BY_PATH.get(self.value)
            return field.title if field else self.value
        if self.type == METADATA:
            return f"Invoice metadata › {self.value}"
        if self.type == CUSTOM_FIELD:
            return f"Invoice custom field › {self.value}"
        if self.type == FIXED:
            return f"Fixed text: “{self.value}”"
        return "Not mapped"

    @property
    def key(self) -> str:
        """Where Stripe keeps the value, for a tooltip ("customer_shipping.address.city"); blank for fixed text."""
        if self.type == FIELD:
            return self.value
        if self.type == METADATA:
            return f"metadata.{self.value}"
        if self.type == CUSTOM_FIELD:
            return f"custom_fields[name={self.value}]"
        return ""


def source_from_choice(choice: str, text: str = "") -> Source:
    """The Source for a dropdown choice ("field:<path>", "metadata", "custom_field", "fixed", "none")
    and the free text typed beside it (the metadata key, the custom field's name, the fixed text)."""
    text = (text or "").strip()
    if choice in (METADATA, CUSTOM_FIELD, FIXED):
        return Source(choice, text)
    return Source.parse(choice)


def check_source(target: Target, source: Source) -> None:
    """Raise MappingError unless `source` may fill `target`."""
    if target.locked and source.is_mapped:
        raise MappingError(f"{target.label} cannot be changed: {target.locked}")
    if not source.is_mapped:
        return
    if source.type == FIELD and source.value not in STRIPE_FIELDS_BY_PATH:
        raise MappingError(f"{source.value!r} is not a Stripe invoice field this mapping knows.")
    if source.type not in (FIELD, METADATA, CUSTOM_FIELD, FIXED):
        raise MappingError(f"{source.type!r} is not a kind of source.")
    if source.type in (METADATA, CUSTOM_FIELD, FIXED) and not source.value:
        what = {METADATA: "a metadata key", CUSTOM_FIELD: "the custom field's name", FIXED: "the text"}[source.type]
        raise MappingError(f"{target.label}: enter {what}.")
    if source.type == METADATA and len(source.value) > STRIPE_METADATA_KEY_MAX:
        raise MappingError(f"Stripe metadata keys have at most {STRIPE_METADATA_KEY_MAX} characters.")
    if source.type == CUSTOM_FIELD and len(source.value) > CUSTOM_FIELD_NAME_MAX:
        raise MappingError(f"Stripe custom field names have at most {CUSTOM_FIELD_NAME_MAX} characters.")
    if source.type == FIXED and target.max_length and len(source.value) > target.max_length:
        raise MappingError(f"{target.label} takes at most {target.max_length} characters in e-conomic; the text has {len(source.value)}.")
    kind = source.kind
    if target.kind is Kind.DATE and kind is not Kind.DATE:
        raise MappingError(f"{target.label} is a date field: choose one of Stripe's dates, not {source.label}.")
    if target.kind is not Kind.DATE and kind is Kind.DATE:
        raise MappingError(f"{target.label} is a text field: {source.label} is a date. Choose a text field.")
    if target.kind is Kind.COUNTRY and source.type == FIELD and kind is not Kind.COUNTRY:
        raise MappingError(f"{target.label} takes a country: choose one of the address country fields, not {source.label}.")


def source_allowed(target: Target, source: Source) -> bool:
    try:
        check_source(target, source)
    except MappingError:
        return False
    return True


@dataclass(frozen=True)
class Mapping:
    source: Source
    fallback: Source = Source()


def _field(path: str) -> Source:
    return Source(FIELD, path)


# Every merchant starts here (rows they saved are kept): the delivery goes where Stripe's invoice PDF
# says, the invoice's shipping details, else the customer's shipping address, else the billing address.
DEFAULT_MAPPINGS: dict[str, Mapping] = {
    "delivery.address": Mapping(_field("ship_to.address.street"), _field("customer_address.street")),
    "delivery.city": Mapping(_field("ship_to.address.city"), _field("customer_address.city")),
    "delivery.country": Mapping(_field("ship_to.address.country"), _field("customer_address.country")),
    "delivery.zip": Mapping(_field("ship_to.address.postal_code"), _field("customer_address.postal_code")),
    "delivery.deliveryDate": Mapping(_field("effective_at"), _field("status_transitions.finalized_at")),
    "delivery.deliveryTerms": Mapping(Source()),
    "notes.heading": Mapping(Source()),
    "notes.textLine1": Mapping(_field("description")),
    "notes.textLine2": Mapping(_field("footer")),
    "references.other": Mapping(Source()),
}


def mapping_errors(mappings: dict[str, Mapping]) -> dict[str, str]:
    """Every target whose mapping is not allowed, with the reason."""
    errors = {}
    for key, mapping in mappings.items():
        target = TARGETS_BY_KEY.get(key)
        if target is None:
            errors[key] = f"{key!r} is not an e-conomic field this mapping knows."
            continue
        try:
            check_source(target, mapping.source)
            if mapping.fallback.is_mapped:
                if not target.fallback_allowed:
                    raise MappingError(f"{target.label} has no fallback.")
                check_source(target, mapping.fallback)
        except MappingError as error:
            errors[key] = str(error)
    return errors


# --- Reading values from a Stripe invoice -----------------------------------------------------------


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def ship_to(invoice: dict) -> dict | None:
    """The invoice's own shipping details when they hold an address, else the customer's shipping."""
    for candidate in (invoice.get("shipping_details"), invoice.get("customer_shipping")):
        if isinstance(candidate, dict) and any((candidate.get("address") or {}).values()):
            return candidate
    return None


def read_field(invoice: dict, path: str) -> Any:
    """The raw value at `path`; `….street` joins line 1 and line 2; `ship_to.…` reads `ship_to()`."""
    if path.startswith(SHIP_TO + "."):
        invoice = {SHIP_TO: ship_to(invoice)}
    if path.endswith(".street"):
        address = _lookup(invoice, path.rsplit(".", 1)[0]) or {}
        lines = [str(address.get(part)).strip() for part in ("line1", "line2") if address.get(part)]
        return ", ".join(line for line in lines if line) or None
    return _lookup(invoice, path)


def country_name(value: str) -> str:
    """The country name e-conomic expects for an ISO 3166-1 code ("DK" → "Denmark"); other text as given."""
    text = value.strip()
    if len(text) == 2 and text.isalpha():
        country = pycountry.countries.get(alpha_2=text.upper())
        if country is not None:
            return getattr(country, "common_name", None) or country.name
    return text


def _raw_value(invoice: dict, source: Source) -> Any:
    if source.type == FIELD:
        return read_field(invoice, source.value)
    if source.type == METADATA:
        return (invoice.get("metadata") or {}).get(source.value)
    if source.type == CUSTOM_FIELD:
        for custom in invoice.get("custom_fields") or []:
            if custom.get("name") == source.value:
                return custom.get("value")
        return None
    if source.type == FIXED:
        return source.value
    return None


@dataclass(frozen=True)
class ResolvedField:
    target: Target
    value: str | None  # as e-conomic gets it; None when nothing is sent
    source: Source | None  # the source the value came from
    used_fallback: bool = False
    cut_from: str | None = None  # the full text, when it was cut to e-conomic's limit

    @property
    def note(self) -> str:
        notes = []
        if self.used_fallback:
            notes.append("from the fallback")
        if self.cut_from is not None:
            notes.append(f"cut to {self.target.max_length} characters from {len(self.cut_from)}")
        return "; ".join(notes)


def _fit(target: Target, raw: Any, zone: ZoneInfo) -> str | None:
    if raw is None or raw == "":
        return None
    if target.kind is Kind.DATE:
        if not isinstance(raw, int):
            return None
        return datetime.fromtimestamp(raw, timezone.utc).astimezone(zone).date().isoformat()
    text = " ".join(str(raw).split())  # e-conomic's single-line fields: no line breaks or runs of spaces
    if target.key.startswith("notes.text"):
        text = str(raw).strip()  # text lines keep their line breaks
    if target.kind is Kind.COUNTRY:
        text = country_name(text)
    return text or None


def resolve(invoice: dict, mappings: dict[str, Mapping], time_zone: str = "Europe/Copenhagen") -> list[ResolvedField]:
    """Each target's value for this invoice, in catalogue order, cut to e-conomic's lengths."""
    zone = ZoneInfo(time_zone)
    resolved = []
    for target in TARGETS:
        if target.locked:
            number = invoice.get("number") or invoice.get("id")
            resolved.append(ResolvedField(target, number, _field("number")))
            continue
        mapping = mappings.get(target.key) or Mapping(Source())
        value, used, fallback = None, None, False
        for candidate, is_fallback in ((mapping.source, False), (mapping.fallback, True)):
            if candidate.is_mapped:
                value = _fit(target, _raw_value(invoice, candidate), zone)
                if value is not None:
                    used, fallback = candidate, is_fallback
                    break
        cut_from = None
        if value is not None and target.max_length and len(value) > target.max_length:
            cut_from, value = value, value[: target.max_length].rstrip()
        resolved.append(ResolvedField(target, value, used, fallback, cut_from))
    return resolved


def document_fields(resolved: list[ResolvedField]) -> dict[str, dict[str, str]]:
    """The resolved values as e-conomic's nested JSON ({"delivery": {"city": …}}), leaving out empty ones."""
    body: dict[str, dict[str, str]] = {}
    for field in resolved:
        if field.value is None:
            continue
        group, name = field.target.key.split(".", 1)
        body.setdefault(group, {})[name] = field.value
    return body
