"""The start page's setup checklist: five steps, each ticked by the merchant's own rows as they appear."""

import re
from datetime import datetime, timezone

import pytest
import responses

from portal.auth.services import user_create
from portal.extensions import db
from portal.main.checklist import setup_checklist
from portal.models import Connection, Merchant, Role, RunKind, SyncRule, SyncRun, SyncSettings, WebhookEvent

from .helpers import PASSWORD, login, stripe_connect

TITLES = ["Stripe connected", "e-conomic connected", "Invoice Sync Rules saved",
          "Customer & product settings complete", "First invoice synced"]
COMPLETE_SETTINGS = {"payment_terms_number": 1, "customer_group_number": 1, "vat_zone_domestic": 1, "layout_number": 19}


@pytest.fixture
def no_http():
    """Any request to Stripe or e-conomic (or anywhere) fails the page: no URL is registered."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def steps_of(app, merchant_id):
    with app.app_context():
        return setup_checklist(merchant_id)


def done_of(app, merchant_id):
    return [step.done for step in steps_of(app, merchant_id)]


def add(app, *rows):
    with app.app_context():
        db.session.add_all(rows)
        db.session.commit()


def page_steps(client) -> list[tuple[str, str]]:
    """(class, title) of each step as the page shows it, in order."""
    html = client.get("/").get_data(as_text=True)
    return re.findall(r'<li class="(done|todo)" id="step-\d">.*?<a href="[^"]*">([^<]*)</a>', html, re.S)


def test_a_new_merchant_sees_five_steps_none_done_connections_first(app, client, account, no_http):
    login(client, account.email)
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert page_steps(client) == [("todo", title.replace("&", "&amp;")) for title in TITLES]
    checklist = html[html.index('<ol class="checklist">'):]
    links = re.findall(r'<a href="([^"]*)">', checklist)
    assert links == ["/connections", "/connections", "/rules", "/customer-product-settings", "/history"]
    assert "No event received yet: create the webhook endpoint on the Connections page." in html
    assert "Still to choose: Payment terms, Customer group, VAT zone for domestic customers, Invoice layout." in html
    assert "No invoice synced yet" in html
    assert len(no_http.calls) == 0


def test_the_page_reads_and_never_writes(app, client, account, no_http):
    login(client, account.email)
    client.get("/")
    with app.app_context():
        for model in (Connection, SyncRule, SyncSettings):
            assert db.session.scalar(db.select(db.func.count()).select_from(model)) == 0


def test_each_step_turns_done_as_its_state_appears(app, client, account, no_http):
    merchant = account.merchant_id
    assert done_of(app, merchant) == [False] * 5

    with app.app_context():
        stripe_connect(merchant, "sk_test_123")
        db.session.commit()
    assert done_of(app, merchant) == [True, False, False, False, False]

    with app.app_context():
        db.session.add(Connection(merchant_id=merchant, economic_app_secret_token="app-secret"))
        db.session.commit()
    assert done_of(app, merchant)[1] is False  # one token is not a pair
    with app.app_context():
        connection = db.session.scalar(db.select(Connection).filter_by(merchant_id=merchant))
        connection.economic_agreement_grant_token = "grant-token"
        db.session.commit()
    economic = steps_of(app, merchant)[1]
    assert economic.done and "use Test connection on the Connections page" in economic.detail

    add(app, SyncRule(merchant_id=merchant))
    assert done_of(app, merchant) == [True, True, True, False, False]

    add(app, SyncSettings(merchant_id=merchant, payment_terms_number=1, customer_group_number=1))
    settings = steps_of(app, merchant)[3]
    assert not settings.done
    assert settings.detail == "Still to choose: VAT zone for domestic customers, Invoice layout."
    with app.app_context():
        row = db.session.scalar(db.select(SyncSettings).filter_by(merchant_id=merchant))
        row.vat_zone_domestic, row.layout_number = 1, 19
        db.session.commit()
    assert done_of(app, merchant) == [True, True, True, True, False]

    add(app, SyncRun(merchant_id=merchant, stripe_account_id=account.stripe_account_id, stripe_invoice_id="in_held", document_type="draft_invoice", trigger="paid", status="held"),
        SyncRun(merchant_id=merchant, stripe_account_id=account.stripe_account_id, stripe_invoice_id="in_failed", document_type="draft_invoice", trigger="paid", status="failed"),
        SyncRun(merchant_id=merchant, stripe_account_id=account.stripe_account_id, stripe_invoice_id="in_queued", document_type="draft_invoice", trigger="paid", status="queued"),
        SyncRun(merchant_id=merchant, stripe_account_id=account.stripe_account_id, kind=RunKind.PAYMENT, stripe_object_id="inpay_1", stripe_invoice_id="in_x",
                document_type="draft_invoice", trigger="paid", status="succeeded"))  # not an invoice
    first = steps_of(app, merchant)[4]
    assert not first.done and first.endpoint == "history.index"
    assert first.detail.startswith("No invoice synced yet: 1 waiting, 1 failed, 1 held for review")

    add(app, SyncRun(merchant_id=merchant, stripe_account_id=account.stripe_account_id, stripe_invoice_id="in_ok", stripe_invoice_number="ACME-0007",
                     document_type="draft_invoice", trigger="paid", status="succeeded"))
    assert done_of(app, merchant) == [True] * 5

    login(client, account.email)
    html = client.get("/").get_data(as_text=True)
    assert page_steps(client) == [("done", title.replace("&", "&amp;")) for title in TITLES]
    assert "Invoice ACME-0007 was synced into e-conomic." in html
    assert 'href="/history/invoices/in_ok"' in html
    assert len(no_http.calls) == 0


def test_a_fixed_currency_is_needed_only_when_chosen(app, account):
    add(app, SyncSettings(merchant_id=account.merchant_id, currency_mode="fixed", **COMPLETE_SETTINGS))
    step = steps_of(app, account.merchant_id)[3]
    assert (step.done, step.detail) == (False, "Still to choose: Fixed currency.")


def test_the_event_sub_state_shows_the_last_event_time(app, client, account, no_http):
    merchant = account.merchant_id
    add(app, *(WebhookEvent(merchant_id=merchant, stripe_account_id=account.stripe_account_id, stripe_event_id=f"evt_{n}", type="invoice.paid", payload="{}",
                            received_at=datetime(2026, 3, day, 9, 30, tzinfo=timezone.utc))
               for n, day in ((1, 2), (2, 4), (3, 5))))  # stored as they came: the newest has the highest id
    login(client, account.email)
    html = client.get("/").get_data(as_text=True)
    assert "Last event received 2026-03-05 10:30 CET." in html  # 09:30 UTC, in the merchant's Copenhagen time
    assert "No event received yet" not in html


def test_another_merchants_rows_never_tick_this_merchants_steps(app, client, account, other_account, no_http):
    theirs = other_account.merchant_id
    with app.app_context():
        stripe_connect(theirs, "sk_theirs")
        db.session.commit()
    add(app, Connection(merchant_id=theirs, economic_app_secret_token="a",
                        economic_agreement_grant_token="b"),
        SyncRule(merchant_id=theirs), SyncSettings(merchant_id=theirs, **COMPLETE_SETTINGS),
        SyncRun(merchant_id=theirs, stripe_account_id=other_account.stripe_account_id, stripe_invoice_id="in_theirs", stripe_invoice_number="THEIRS-1",
                document_type="draft_invoice", trigger="paid", status="succeeded"),
        SyncRun(merchant_id=theirs, stripe_account_id=other_account.stripe_account_id, stripe_invoice_id="in_theirs_failed", document_type="draft_invoice", trigger="paid", status="failed"),
        WebhookEvent(merchant_id=theirs, stripe_account_id=other_account.stripe_account_id, stripe_event_id="evt_theirs", type="invoice.paid", payload="{}"))
    assert done_of(app, theirs) == [True] * 5
    assert done_of(app, account.merchant_id) == [False] * 5

    login(client, account.email)
    html = client.get("/").get_data(as_text=True)
    assert "THEIRS" not in html and "in_theirs" not in html
    assert "No event received yet" in html
    assert "No invoice synced yet: one is synced" in html
    assert len(no_http.calls) == 0


def test_a_member_sees_the_steps_but_links_only_to_pages_they_may_open(app, client, account, no_http):
    with app.app_context():
        merchant = db.session.get(Merchant, account.merchant_id)
        user_create(merchant, "member@acme.test", PASSWORD, role=Role.MEMBER)
        db.session.commit()
    login(client, "member@acme.test")
    html = client.get("/").get_data(as_text=True)
    checklist = html[html.index('<ol class="checklist">'):html.index("</ol>")]
    assert re.findall(r'<a href="([^"]*)">', checklist) == ["/history"]
    assert "<strong>Stripe connected</strong>" in checklist
    assert "Your admins set up connections and settings" in html


def test_the_economic_step_names_the_agreement_and_is_undone_by_a_failed_check(app, account, no_http):
    add(app, Connection(merchant_id=account.merchant_id, economic_app_secret_token="a", economic_agreement_grant_token="b",
                        economic_company_name="Acme ApS", economic_agreement_number=123456,
                        economic_checked_at=datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc), economic_check_ok=False,
                        economic_check_message="e-conomic answered 401: the grant was revoked."))
    step = steps_of(app, account.merchant_id)[1]
    assert not step.done  # tokens e-conomic refused at the last check do not tick the step
    assert step.detail == "e-conomic refused the stored tokens at the last check: connect e-conomic again on the Connections page."
    assert step.note.startswith("The last check, ") and step.note.endswith("failed: e-conomic answered 401: the grant was revoked.")
    with app.app_context():
        connection = db.session.scalar(db.select(Connection))
        connection.economic_check_ok = True
        db.session.commit()
    step = steps_of(app, account.merchant_id)[1]
    assert step.done and step.detail == "Connected as Acme ApS (agreement 123456)." and step.note is None


def test_a_stripe_key_that_failed_its_last_check_does_not_tick_the_step(app, account, no_http):
    with app.app_context():
        stripe_connect(account.merchant_id, "sk_test_revoked").check_ok = False
        db.session.commit()
    step = steps_of(app, account.merchant_id)[0]
    assert not step.done and "Stripe refused the saved key at the last check" in step.detail
    assert step.note.startswith("The last check of “Stripe” failed: see Connections.")
