"""The mapping catalogue and `resolve`, on Stripe's own example invoices (no Flask)."""

import json
from pathlib import Path

import pytest

from portal.sync.mapping import (
    DEFAULT_MAPPINGS,
    TARGETS_BY_KEY,
    Mapping,
    MappingError,
    Source,
    check_source,
    country_name,
    document_fields,
    mapping_errors,
    resolve,
    source_from_choice,
)

DATA = Path(__file__).parent / "data"


def invoice(name="invoice_send_invoice_open.json") -> dict:
    return json.loads((DATA / name).read_text())


def by_key(resolved):
    return {field.target.key: field for field in resolved}


def test_defaults_deliver_where_stripes_invoice_ships_to_the_invoices_own_shipping_details_first():
    values = by_key(resolve(invoice(), DEFAULT_MAPPINGS))
    assert values["delivery.address"].value == "Refshalevej 163A"
    assert values["delivery.zip"].value == "1432"
    assert values["delivery.city"].value == "København K"
    assert values["delivery.country"].value == "Denmark"
    assert values["delivery.deliveryDate"].value == "2026-11-16"  # effective_at 1794824700, Copenhagen time
    assert values["notes.textLine1"].value == "Workshop og opsætning, november 2026"
    assert values["references.other"].value == "KYSTLYS1-0007"


def test_without_invoice_shipping_details_the_customers_shipping_address_is_used_whole():
    data = invoice()
    data["shipping_details"] = None
    values = by_key(resolve(data, DEFAULT_MAPPINGS))
    assert (values["delivery.address"].value, values["delivery.zip"].value) == ("Nørre Farimagsgade 37", "1364")
    assert not values["delivery.address"].used_fallback


def test_billing_address_is_the_fallback_when_there_is_no_shipping_address():
    data = invoice()
    data["shipping_details"] = None
    data["customer_shipping"] = None
    values = by_key(resolve(data, DEFAULT_MAPPINGS))
    assert values["delivery.address"].value == "Nørre Farimagsgade 37, 3. sal"
    assert values["delivery.address"].used_fallback
    assert values["delivery.address"].note == "from the fallback"


def test_no_address_at_all_leaves_delivery_out():
    data = invoice()
    data["shipping_details"] = None
    data["customer_shipping"] = None
    data["customer_address"] = None
    body = document_fields(resolve(data, DEFAULT_MAPPINGS))
    assert "address" not in body.get("delivery", {})
    assert "city" not in body.get("delivery", {})
    assert body["references"] == {"other": "KYSTLYS1-0007"}


def test_text_is_cut_to_economics_limits_and_the_cut_is_reported():
    data = invoice()
    data["shipping_details"]["address"]["city"] = "C" * 80
    data["shipping_details"]["address"]["line1"] = "Vej " * 100
    values = by_key(resolve(data, DEFAULT_MAPPINGS))
    assert len(values["delivery.city"].value) == 50
    assert values["delivery.city"].cut_from == "C" * 80
    assert values["delivery.city"].note == "cut to 50 characters from 80"
    assert len(values["delivery.address"].value) <= 255


def test_terms_are_cut_at_100():
    mappings = {**DEFAULT_MAPPINGS, "delivery.deliveryTerms": Mapping(Source("metadata", "terms"))}
    data = invoice()
    data["metadata"] = {"terms": "Net 30 " * 30}
    field = by_key(resolve(data, mappings))["delivery.deliveryTerms"]
    assert len(field.value) <= 100 and field.cut_from


@pytest.mark.parametrize("code, name", [("DK", "Denmark"), ("de", "Germany"), ("GB", "United Kingdom"), ("TW", "Taiwan"), ("Danmark", "Danmark")])
def test_country_codes_become_names(code, name):
    assert country_name(code) == name


def test_metadata_custom_fields_and_fixed_text():
    mappings = {
        **DEFAULT_MAPPINGS,
        "notes.heading": Mapping(Source("custom_field", "PO-nummer")),
        "delivery.deliveryTerms": Mapping(Source("fixed", "Levering ab lager")),
        "notes.textLine2": Mapping(Source("metadata", "project")),
    }
    data = invoice()
    data["metadata"] = {"project": "Refshaleøen"}
    values = by_key(resolve(data, mappings))
    assert values["notes.heading"].value == "KS-4471"
    assert values["delivery.deliveryTerms"].value == "Levering ab lager"
    assert values["notes.textLine2"].value == "Refshaleøen"


def test_dates_follow_the_merchants_time_zone():
    data = invoice()
    data["effective_at"] = 1794870000  # 2026-11-16 23:00 UTC
    assert by_key(resolve(data, DEFAULT_MAPPINGS, "UTC"))["delivery.deliveryDate"].value == "2026-11-16"
    assert by_key(resolve(data, DEFAULT_MAPPINGS, "Europe/Copenhagen"))["delivery.deliveryDate"].value == "2026-11-17"


def test_document_fields_nest_like_economics_json():
    body = document_fields(resolve(invoice(), DEFAULT_MAPPINGS))
    assert body["delivery"] == {
        "address": "Refshalevej 163A",
        "city": "København K",
        "country": "Denmark",
        "zip": "1432",
        "deliveryDate": "2026-11-16",
    }
    assert None not in body["delivery"].values()


@pytest.mark.parametrize(
    "target, source, message",
    [
        ("delivery.deliveryDate", Source("field", "customer_name"), "is a date field"),
        ("delivery.deliveryDate", Source("fixed", "2026-01-01"), "is a date field"),
        ("delivery.deliveryTerms", Source("field", "due_date"), "is a text field"),
        ("delivery.country", Source("field", "customer_email"), "takes a country"),
        ("delivery.city", Source("metadata", ""), "enter a metadata key"),
        ("delivery.deliveryTerms", Source("fixed", "x" * 101), "at most 100 characters"),
        ("references.other", Source("field", "id"), "cannot be changed"),
        ("delivery.city", Source("field", "no.such.field"), "not a Stripe invoice field"),
        ("delivery.city", Source("metadata", "k" * 41), "at most 40 characters"),
    ],
)
def test_mismatched_sources_are_refused_with_a_clear_message(target, source, message):
    with pytest.raises(MappingError, match=message):
        check_source(TARGETS_BY_KEY[target], source)


def test_matching_kinds_are_allowed():
    check_source(TARGETS_BY_KEY["delivery.deliveryDate"], Source("field", "status_transitions.paid_at"))
    check_source(TARGETS_BY_KEY["delivery.country"], Source("field", "customer_address.country"))
    check_source(TARGETS_BY_KEY["delivery.country"], Source("metadata", "country"))
    check_source(TARGETS_BY_KEY["delivery.city"], Source())


def test_fallback_only_where_allowed():
    errors = mapping_errors({"notes.heading": Mapping(Source("field", "number"), Source("field", "id"))})
    assert errors == {"notes.heading": "Heading has no fallback."}


def test_source_specs_round_trip():
    for spec in ("none", "field:customer_shipping.address.city", "metadata:po", "fixed:Tak: for handlen"):
        assert Source.parse(spec).spec == spec
    assert source_from_choice("metadata", " po ").spec == "metadata:po"
    assert Source.parse("fixed:Tak: for handlen").value == "Tak: for handlen"


def test_every_default_is_allowed():
    assert mapping_errors(DEFAULT_MAPPINGS) == {}
