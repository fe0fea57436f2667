"""Invoice Sync Rules and Invoice/Order field mappings, as a merchant uses them."""

import json
from pathlib import Path

import pytest
import responses

from portal.extensions import db
from portal.models import FieldMapping, SyncRule, WebhookEvent

from .helpers import csrf_token, login, stripe_connect, first_stripe_account

DATA = Path(__file__).parent / "data"


@pytest.fixture
def signed_in(client, account):
    assert login(client, account.email).status_code == 302
    return client


def rule_of(app, merchant_id):
    with app.app_context():
        return db.session.scalar(db.select(SyncRule).where(SyncRule.merchant_id == merchant_id))


# --- Invoice Sync Rules ------------------------------------------------------------------------------


def test_rules_page_uses_the_documented_words(signed_in):
    page = signed_in.get("/rules").get_data(as_text=True)
    for words in ("Invoice Sync Rules", "Sent", "Paid", "Draft invoice", "Booked invoice", "Draft order", 'value="Save"', "invoice.finalized"):
        assert words in page, words


def test_saving_a_rule_shows_on_reload_with_a_confirmation(app, signed_in, account):
    token = csrf_token(signed_in, "/rules")
    response = signed_in.post(
        "/rules",
        data={"csrf_token": token, "trigger": "sent", "document_type": "booked_invoice", "write_back_to_stripe": "y"},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "Invoice Sync Rules saved." in page
    assert '<input checked id="trigger-0" name="trigger" required type="radio" value="sent">' in page
    assert '<input checked id="document_type-1" name="document_type" required type="radio" value="booked_invoice">' in page
    rule = rule_of(app, account.merchant_id)
    assert (rule.trigger, rule.document_type) == ("sent", "booked_invoice")
    assert rule.sent_on_finalized_for_automatic is False  # unticked in this post
    assert rule.write_back_to_stripe is True


def test_new_merchants_start_with_paid_to_draft_invoice(app, signed_in, account):
    page = signed_in.get("/rules").get_data(as_text=True)
    rule = rule_of(app, account.merchant_id)
    assert (rule.trigger, rule.document_type, rule.sent_on_finalized_for_automatic) == ("paid", "draft_invoice", True)
    assert '<input checked id="trigger-1" name="trigger" required type="radio" value="paid">' in page


@pytest.mark.parametrize(
    "data, error",
    [
        ({"trigger": "whenever", "document_type": "draft_invoice"}, "Not a valid choice"),
        ({"trigger": "paid", "document_type": "credit_note"}, "Not a valid choice"),
        ({"document_type": "draft_invoice"}, "Choose when to sync."),
    ],
)
def test_invalid_rule_posts_get_a_form_error_and_change_nothing(app, signed_in, account, data, error):
    signed_in.get("/rules")
    token = csrf_token(signed_in, "/rules")
    response = signed_in.post("/rules", data={"csrf_token": token, **data})
    assert response.status_code == 200
    assert error in response.get_data(as_text=True)
    rule = rule_of(app, account.merchant_id)
    assert (rule.trigger, rule.document_type) == ("paid", "draft_invoice")


def test_a_rule_post_without_csrf_changes_nothing(app, signed_in, account):
    signed_in.get("/rules")
    response = signed_in.post("/rules", data={"trigger": "sent", "document_type": "draft_order"})
    assert response.status_code == 400
    assert rule_of(app, account.merchant_id).trigger == "paid"


def test_rules_never_leak_between_merchants(app, client, account, other_account):
    login(client, account.email)
    token = csrf_token(client, "/rules")
    client.post("/rules", data={"csrf_token": token, "trigger": "sent", "document_type": "draft_order"})
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, other_account.email)
    client.get("/rules")
    assert rule_of(app, other_account.merchant_id).trigger == "paid"
    assert rule_of(app, account.merchant_id).trigger == "sent"


# --- Invoice/Order field mappings ---------------------------------------------------------------------


def mapping_form(page_html: str, **changes) -> dict:
    """The fields the mappings page would post, read from its hidden inputs, with `changes` applied."""
    import re

    data = dict(re.findall(r'<input type="hidden" name="((?:source|source_text|fallback|fallback_text)-[^"]+)" value="([^"]*)"', page_html))
    data.update(changes)
    return data


def stored_mappings(app, merchant_id):
    with app.app_context():
        return {
            row.target: (row.source, row.fallback)
            for row in db.session.scalars(db.select(FieldMapping).where(FieldMapping.merchant_id == merchant_id))
        }


def test_the_table_lists_every_field_with_its_source_and_an_edit_button(signed_in):
    page = signed_in.get("/mappings").get_data(as_text=True)
    for label in ("Delivery address", "Delivery city", "Delivery country", "Delivery postal code", "Delivery date", "Delivery terms", "Heading", "Other reference"):
        assert f">{label}</span>" in page
    # Words for people; the keys only in tooltips.
    assert '<span title="e-conomic field delivery.deliveryTerms">Delivery terms</span>' in page
    assert '<span class="source" title="Stripe: ship_to.address.city">Ship to (as on the invoice) › City</span>' in page
    assert 'if empty: <span title="Stripe: customer_address.city">Billing address › City</span>' in page
    assert ">delivery.deliveryTerms<" not in page and "(customer_address.city)" not in page
    assert page.count(">Edit</button>") == 9  # every row but the locked "Other reference"
    assert "Save mappings" in page


def test_edit_returns_the_row_as_a_grouped_dropdown(signed_in):
    response = signed_in.get("/mappings/delivery.city/edit", headers={"HX-Request": "true"})
    row = response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]
    assert row.lstrip().startswith('<tr id="row-delivery-city"')
    assert '<optgroup label="Shipping address">' in row and '<optgroup label="Billing address">' in row
    # The option says its group, so the closed dropdown reads "Shipping address › City".
    assert '<option value="field:customer_shipping.address.city" title="Stripe: customer_shipping.address.city">Shipping address › City</option>' in row
    assert 'value="field:ship_to.address.city" title="Stripe: ship_to.address.city" selected>Ship to (as on the invoice) › City<' in row
    assert '<option value="metadata" data-text-label="Metadata key">Invoice metadata (type the key)</option>' in row
    assert '<option value="fixed" data-text-label="Text">Fixed text (type it)</option>' in row
    assert "Not mapped" in row
    # A field is chosen, so no text box is shown (for the source, nor for the fallback).
    assert row.count('<label class="source-text" hidden>') == 2
    assert "<html" not in row  # a fragment, not a page


def test_the_date_row_offers_only_dates(signed_in):
    row = signed_in.get("/mappings/delivery.deliveryDate/edit").get_data(as_text=True)
    assert '<option value="field:status_transitions.paid_at" title="Stripe: status_transitions.paid_at">Dates › Paid at</option>' in row
    assert '<option value="field:customer_name" title="Stripe: customer_name" disabled>Customer › Name (not for a date field)</option>' in row
    assert "source-text" not in row  # a date takes no typed text: no text box at all


def test_edit_starts_from_the_pending_values_of_the_row(signed_in):
    row = signed_in.get(
        "/mappings/delivery.city/edit",
        query_string={"source-delivery.city": "metadata", "source_text-delivery.city": "town", "fallback-delivery.city": "none"},
    ).get_data(as_text=True)
    assert 'value="metadata" data-text-label="Metadata key" selected' in row
    assert '<label class="source-text">\n  <span data-text-label>Metadata key</span>' in row  # shown, named for the choice
    assert 'value="town"' in row


def test_locked_and_unknown_rows_cannot_be_edited(signed_in):
    assert signed_in.get("/mappings/references.other/edit").status_code == 404
    assert signed_in.get("/mappings/nonsense/edit").status_code == 404


def test_save_mappings_stores_every_row_and_shows_them_on_reload(app, signed_in, account):
    page = signed_in.get("/mappings").get_data(as_text=True)
    data = mapping_form(
        page,
        **{
            "source-delivery.deliveryTerms": "metadata",
            "source_text-delivery.deliveryTerms": "delivery_terms",
            "source-notes.heading": "fixed",
            "source_text-notes.heading": "Tak for handlen",
        },
    )
    response = signed_in.post("/mappings", data={"csrf_token": csrf_token_from_page(page), **data}, follow_redirects=True)
    reloaded = response.get_data(as_text=True)
    assert "Mappings saved." in reloaded
    assert '<span class="source" title="Stripe: metadata.delivery_terms">Invoice metadata › delivery_terms</span>' in reloaded
    assert "Fixed text: “Tak for handlen”" in reloaded
    stored = stored_mappings(app, account.merchant_id)
    assert stored["delivery.deliveryTerms"] == ("metadata:delivery_terms", "none")
    assert stored["delivery.city"] == ("field:ship_to.address.city", "field:customer_address.city")
    assert len(stored) == 9


def csrf_token_from_page(page):
    from .helpers import csrf_token_from

    return csrf_token_from(page)


def test_a_mismatched_pick_is_refused_and_nothing_is_saved(app, signed_in, account):
    page = signed_in.get("/mappings").get_data(as_text=True)
    data = mapping_form(
        page,
        **{
            "source-delivery.deliveryDate": "field:customer_name",  # text into a date field
            "source-delivery.deliveryTerms": "fixed",
            "source_text-delivery.deliveryTerms": "Fine",  # a good change, saved only with the others
        },
    )
    response = signed_in.post("/mappings", data={"csrf_token": csrf_token_from_page(page), **data})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Delivery date is a date field: choose one of Stripe&#39;s dates, not Customer › Name." in body
    assert "Nothing was saved" in body
    assert stored_mappings(app, account.merchant_id) == {}


def test_save_mappings_without_csrf_is_refused(app, signed_in, account):
    page = signed_in.get("/mappings").get_data(as_text=True)
    response = signed_in.post("/mappings", data=mapping_form(page, **{"source-delivery.city": "none"}))
    assert response.status_code == 400
    assert stored_mappings(app, account.merchant_id) == {}


def test_a_locked_row_cannot_be_posted(app, signed_in, account):
    page = signed_in.get("/mappings").get_data(as_text=True)
    data = mapping_form(page, **{"source-references.other": "field:id"})
    response = signed_in.post("/mappings", data={"csrf_token": csrf_token_from_page(page), **data}, follow_redirects=True)
    assert response.status_code == 200  # ignored: the locked row is not one of the editable rows
    assert "references.other" not in stored_mappings(app, account.merchant_id)


def test_mappings_never_leak_between_merchants(app, client, account, other_account):
    login(client, account.email)
    page = client.get("/mappings").get_data(as_text=True)
    client.post("/mappings", data={"csrf_token": csrf_token_from_page(page), **mapping_form(page, **{"source-delivery.city": "none"})})
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, other_account.email)
    page = client.get("/mappings").get_data(as_text=True)
    assert 'name="source-delivery.city" value="field:ship_to.address.city"' in page
    assert stored_mappings(app, other_account.merchant_id) == {}


# --- Preview -------------------------------------------------------------------------------------------


def stripe_key(app, merchant_id):
    with app.app_context():
        stripe_connect(merchant_id, "sk_test_preview0000000000")
        db.session.commit()


@responses.activate
def test_preview_shows_each_field_with_the_value_from_the_live_invoice(app, signed_in, account):
    stripe_key(app, account.merchant_id)
    invoice = json.loads((DATA / "invoice_send_invoice_open.json").read_text())
    invoice["shipping_details"]["address"]["city"] = "K" * 60
    responses.get(f"https://api.stripe.com/v1/invoices/{invoice['id']}", json=invoice)
    response = preview(signed_in, invoice=invoice["id"])
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "KYSTLYS1-0007" in body
    assert "Refshalevej 163A" in body and "Denmark" in body and "2026-11-16" in body
    assert "cut to 50 characters from 60" in body
    assert "expand%5B0%5D=customer" in responses.calls[0].request.url


def preview(client, **data):
    token = csrf_token(client, "/mappings")
    return client.post("/mappings/preview", data=data, headers={"HX-Request": "true", "X-CSRFToken": token})


def open_invoice():
    return json.loads((DATA / "invoice_send_invoice_open.json").read_text())


def search_answer(*invoices):
    return {"object": "search_result", "data": list(invoices), "has_more": False, "next_page": None, "url": "/v1/invoices/search"}


@responses.activate
def test_preview_finds_the_invoice_by_its_number(app, signed_in, account):
    stripe_key(app, account.merchant_id)
    invoice = open_invoice()
    search = responses.get("https://api.stripe.com/v1/invoices/search", json=search_answer(invoice))
    responses.get(f"https://api.stripe.com/v1/invoices/{invoice['id']}", json=invoice)
    response = preview(signed_in, invoice=" kystlys1-0007 ")  # as a person might type it
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "KYSTLYS1-0007" in body and "Refshalevej 163A" in body
    assert search.calls[0].request.params["query"] == 'number:"KYSTLYS1-0007"'
    assert "not saved yet" not in body  # the saved mappings, unchanged


@responses.activate
def test_preview_looks_in_each_stripe_account(app, signed_in, account):
    from responses.matchers import header_matcher

    with app.app_context():
        stripe_connect(account.merchant_id, "sk_test_firstaccount000000")
        stripe_connect(account.merchant_id, "sk_test_secondaccount00000", label="Sweden", new=True)
        db.session.commit()
    invoice = open_invoice()
    for key, found in (("sk_test_firstaccount000000", ()), ("sk_test_secondaccount00000", (invoice,))):
        responses.get("https://api.stripe.com/v1/invoices/search", json=search_answer(*found),
                      match=[header_matcher({"Authorization": f"Bearer {key}"})])
    responses.get(f"https://api.stripe.com/v1/invoices/{invoice['id']}", json=invoice,
                  match=[header_matcher({"Authorization": "Bearer sk_test_secondaccount00000"})])
    body = preview(signed_in, invoice="KYSTLYS1-0007").get_data(as_text=True)
    assert "Refshalevej 163A" in body


@responses.activate
def test_preview_uses_the_changes_not_saved_yet_and_stores_nothing(app, signed_in, account):
    stripe_key(app, account.merchant_id)
    invoice = open_invoice()
    responses.get(f"https://api.stripe.com/v1/invoices/{invoice['id']}", json=invoice)
    page = signed_in.get("/mappings").get_data(as_text=True)
    data = mapping_form(page, **{"source-notes.heading": "fixed", "source_text-notes.heading": "Tak for handlen"})
    body = preview(signed_in, invoice=invoice["id"], **data).get_data(as_text=True)
    assert "Tak for handlen" in body
    assert "With your changes, which are not saved yet." in body
    assert stored_mappings(app, account.merchant_id) == {}


def test_preview_of_a_row_that_needs_another_choice_says_which(app, signed_in, account):
    stripe_key(app, account.merchant_id)
    page = signed_in.get("/mappings").get_data(as_text=True)
    data = mapping_form(page, **{"source-notes.heading": "metadata", "source_text-notes.heading": ""})
    response = preview(signed_in, invoice="KYSTLYS1-0007", **data)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and 'role="alert"' in body
    assert "No preview: fix these rows first." in body
    assert "<strong>Heading</strong>: enter a metadata key." in body


@responses.activate
def test_preview_errors_are_answered_so_that_htmx_shows_them(app, signed_in, account):
    """HTMX swaps only 2xx answers: a user's error comes back as 200 with role="alert" and the message."""
    stripe_key(app, account.merchant_id)
    responses.get("https://api.stripe.com/v1/invoices/in_missing", status=404, json={"error": {"message": "No such invoice: 'in_missing'", "type": "invalid_request_error"}})
    responses.get("https://api.stripe.com/v1/invoices/search", json=search_answer())
    cases = [
        ({"invoice": "in_missing"}, "There is no invoice in_missing in your Stripe account."),
        ({"invoice": "NB-2026-0042"}, "There is no invoice numbered NB-2026-0042 in your Stripe account."),
        ({"invoice": ""}, "Enter the Stripe invoice&#39;s number (such as NB-2026-0042) or its id (in_…)."),
        ({"invoice": 'x" OR number:"y'}, "is neither a Stripe invoice number"),
    ]
    for data, message in cases:
        response = preview(signed_in, **data)
        body = response.get_data(as_text=True)
        assert response.status_code == 200, data
        assert 'role="alert"' in body and message in body, (data, body)
    assert len(responses.calls) == 2  # the malformed ones never reach Stripe


@responses.activate
def test_preview_reports_stripes_own_refusal(app, signed_in, account):
    stripe_key(app, account.merchant_id)
    responses.get("https://api.stripe.com/v1/invoices/search", status=401,
                  json={"error": {"message": "Invalid API Key provided: sk_test_****0000", "type": "invalid_request_error"}})
    body = preview(signed_in, invoice="NB-2026-0042").get_data(as_text=True)
    assert 'role="alert"' in body and "Stripe answered: Invalid API Key provided" in body


def test_preview_without_a_stripe_key_says_where_to_save_one(app, signed_in, account):
    response = preview(signed_in, invoice="in_123")
    assert response.status_code == 200 and "Save a Stripe secret key" in response.get_data(as_text=True)


def test_preview_offers_the_merchants_recent_invoices_only(app, signed_in, account, other_account):
    with app.app_context():
        for merchant_id, invoice_id in ((account.merchant_id, "in_mine"), (other_account.merchant_id, "in_theirs")):
            db.session.add(WebhookEvent(merchant_id=merchant_id, stripe_account_id=first_stripe_account(merchant_id), stripe_event_id=f"evt_{invoice_id}", type="invoice.paid", stripe_invoice_id=invoice_id, payload="{}"))
        db.session.commit()
    page = signed_in.get("/mappings").get_data(as_text=True)
    assert '<option value="in_mine">' in page
    assert "in_theirs" not in page


def test_preview_suggests_recently_synced_invoices_by_number(app, signed_in, account, other_account):
    from portal.models import SyncRun

    with app.app_context():
        for merchant_id, number in ((account.merchant_id, "NB-2026-0042"), (other_account.merchant_id, "THEIRS-0001")):
            db.session.add(SyncRun(merchant_id=merchant_id, stripe_account_id=first_stripe_account(merchant_id),
                                   stripe_invoice_id=f"in_{number}", stripe_invoice_number=number, customer_name="Kystlys ApS",
                                   document_type="draft_invoice", trigger="paid"))
        db.session.commit()
    page = signed_in.get("/mappings").get_data(as_text=True)
    assert '<option value="NB-2026-0042">Kystlys ApS</option>' in page
    assert "THEIRS-0001" not in page
