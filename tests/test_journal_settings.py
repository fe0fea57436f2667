"""Journal entries settings: e-conomic's journals and accounts to choose from, clear refusals that save
nothing, a page that still works when e-conomic cannot be reached, and one merchant's settings only."""

import html

import pytest

from doubles.economic import FakeEconomic
from portal.extensions import db
from portal.merchant_config import journal_settings_for
from portal.models import Connection, JournalSettings
from portal.webhooks import JOURNAL_WEBHOOK_EVENTS
from portal.settings.sync_config import economic_choices_forget
from portal.sync.journal_choices import DEFAULT_TEXTS, TEXT_PLACEHOLDERS, JournalChoices, text_problem

from . import helpers
from .helpers import csrf_token, login
from .live import free_port

PAGE = "/settings/journals"
# The fake e-conomic's seeded chart (doubles/economic.py, `_seed`).
KASSEKLADDE, INDBETALINGER = 1, 2  # journal 2 takes only customer payments
BANK, STRIPE_BALANCE, FEES = 5820, 5830, 7220
HEADING, TOTAL = 5800, 5899  # take no entries
SAVED = "Journal entries saved."


@pytest.fixture
def fake():
    with FakeEconomic() as fake:
        yield fake


def connect(app, merchant_id):
    with app.app_context():
        db.session.add(Connection(merchant_id=merchant_id, economic_app_secret_token="app", economic_agreement_grant_token="grant"))
        db.session.commit()


@pytest.fixture
def signed_in(app, client, account, fake):
    app.config["ECONOMIC_API_URL"] = fake.url
    connect(app, account.merchant_id)
    login(client, account.email)
    return client


@pytest.fixture
def unreachable(app, client, account):
    """e-conomic connected, but nothing answers where it should be."""
    app.config["ECONOMIC_API_URL"] = f"http://127.0.0.1:{free_port()}"
    connect(app, account.merchant_id)
    login(client, account.email)
    return client


def page_text(client, path=PAGE):
    return helpers.page_text(client, path)


def valid_post(token, **changes):
    data = {
        "csrf_token": token,
        "payments_enabled": "y",
        "refunds_enabled": "y",
        "credit_notes_enabled": "y",
        "payouts_enabled": "y",
        "journal_number": str(KASSEKLADDE),
        "stripe_balance_account": str(STRIPE_BALANCE),
        "bank_account": str(BANK),
        "fees_account": str(FEES),
        "payment_text": "Stripe betaling {invoice_number} {customer_name}",
        "refund_text": "Stripe refusion {refund_id} {invoice_number}",
        "fee_text": "Stripe gebyrer {payout_id}",
        "payout_text": "Stripe udbetaling {payout_id}",
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def stored(app, merchant_id) -> JournalChoices:
    with app.app_context():
        return journal_settings_for(merchant_id)


def rows(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(JournalSettings))


# --- The page --------------------------------------------------------------------------------------


def test_the_page_offers_economics_journals_and_accounts_by_number_and_name(signed_in):
    page = page_text(signed_in)
    assert '<a href="/settings/journals" aria-current="page">Journal entries</a>' in page
    for words in ("Enter customer payments", "Enter refunds", "Make credit notes from Stripe credit notes",
                  "Enter payouts and Stripe's fees", "Stripe balance account", "Bank account payouts arrive in",
                  "Fees account", "a clearing account for the money Stripe holds for you", "5830 Stripe",
                  "Payment text", "Refund text", "Fee text", "Payout text"):
        assert words.lower() in page.lower(), words
    assert '<option value="1">1 – Kassekladde</option>' in page
    assert '<option value="2">2 – Indbetalinger</option>' in page
    for number, name in ((BANK, "Bank"), (STRIPE_BALANCE, "Stripe balance"), (FEES, "Gebyrer"), (5600, "Debitorer")):
        assert f'<option value="{number}">{number} – {name}</option>' in page
    assert f"{HEADING} – " not in page and f"{TOTAL} – " not in page  # a heading and a total take no entries
    assert 'type="number"' not in page
    for name in TEXT_PLACEHOLDERS:
        assert f"<code>{{{name}}}</code>" in page
    assert f'value="{DEFAULT_TEXTS["payment_text"]}"' in page  # a merchant who saved nothing sees the default texts


def test_the_tab_sits_beside_the_other_settings_tabs(signed_in):
    page = page_text(signed_in, "/rules")
    assert '<a href="/settings/journals" >Journal entries</a>' in page


def test_the_page_needs_a_login(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_lists_are_cached_briefly_and_forgotten_with_the_connection(app, signed_in, account, fake):
    def asked():
        return len([r for r in fake.requests if r["path"] in ("/journals", "/accounts")])

    signed_in.get(PAGE)
    first = asked()
    assert first == 2
    signed_in.get(PAGE)
    assert asked() == first  # from the cache
    signed_in.get(PAGE + "?refresh=1")
    assert asked() == 2 * first
    with app.app_context():
        economic_choices_forget(account.merchant_id)  # as saving new e-conomic tokens does
    signed_in.get(PAGE)
    assert asked() == 3 * first


# --- Saving ----------------------------------------------------------------------------------------


def test_saving_stores_exactly_the_chosen_values_and_shows_them_again(app, signed_in, account):
    token = csrf_token(signed_in, PAGE)
    response = signed_in.post(PAGE, data=valid_post(token))
    assert response.status_code == 302 and response.headers["Location"] == PAGE
    page = page_text(signed_in)
    assert SAVED in page
    assert stored(app, account.merchant_id) == JournalChoices(
        payments_enabled=True, refunds_enabled=True, credit_notes_enabled=True, payouts_enabled=True,
        journal_number=1, stripe_balance_account=5830, bank_account=5820, fees_account=7220,
        payment_text="Stripe betaling {invoice_number} {customer_name}", refund_text="Stripe refusion {refund_id} {invoice_number}",
        fee_text="Stripe gebyrer {payout_id}", payout_text="Stripe udbetaling {payout_id}",
    )
    assert '<option selected value="1">1 – Kassekladde</option>' in page
    assert '<option selected value="5830">5830 – Stripe balance</option>' in page
    assert 'checked id="payouts_enabled"' in page
    for event in ("invoice_payment.paid", "charge.refunded", "refund.created", "credit_note.created", "payout.paid"):
        assert f"<code>{event}</code>" in page


def test_turning_a_kind_off_keeps_the_others_and_lists_only_their_events(app, signed_in, account):
    token = csrf_token(signed_in, PAGE)
    signed_in.post(PAGE, data=valid_post(token, refunds_enabled=None, credit_notes_enabled=None, payouts_enabled=None,
                                         bank_account="", fees_account=""))
    choices = stored(app, account.merchant_id)
    assert (choices.payments_enabled, choices.refunds_enabled, choices.credit_notes_enabled, choices.payouts_enabled) == (True, False, False, False)
    assert (choices.bank_account, choices.fees_account) == (None, None)
    page = page_text(signed_in)
    assert "<code>invoice_payment.paid</code>" in page
    assert "payout.paid" not in page and "charge.refunded" not in page


def test_credit_notes_alone_need_no_journal_or_accounts(app, signed_in, account):
    token = csrf_token(signed_in, PAGE)
    response = signed_in.post(PAGE, data=valid_post(token, payments_enabled=None, refunds_enabled=None, payouts_enabled=None,
                                                    journal_number="", stripe_balance_account="", bank_account="", fees_account=""))
    assert response.status_code == 302
    assert stored(app, account.merchant_id) == JournalChoices(
        credit_notes_enabled=True, payment_text="Stripe betaling {invoice_number} {customer_name}",
        refund_text="Stripe refusion {refund_id} {invoice_number}", fee_text="Stripe gebyrer {payout_id}",
        payout_text="Stripe udbetaling {payout_id}",
    )


def test_a_post_without_the_csrf_token_is_refused(app, signed_in):
    response = signed_in.post(PAGE, data={name: value for name, value in valid_post("x").items() if name != "csrf_token"})
    assert response.status_code == 400
    assert rows(app) == 0


# --- Refusals: each says what to do, and nothing is saved --------------------------------------------


NOTHING_ON = {"payments_enabled": None, "refunds_enabled": None, "credit_notes_enabled": None, "payouts_enabled": None}


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"journal_number": ""}, "journal_number", "Choose the journal to enter customer payments, refunds and payouts in."),
        ({**NOTHING_ON, "refunds_enabled": "y", "journal_number": ""}, "journal_number", "Choose the journal to enter refunds in."),
        ({"stripe_balance_account": ""}, "stripe_balance_account",
         "Choose the Stripe balance account: customer payments, refunds and payouts are entered on it."),
        ({**NOTHING_ON, "payments_enabled": "y", "stripe_balance_account": ""}, "stripe_balance_account",
         "Choose the Stripe balance account: customer payments are entered on it."),
        ({"bank_account": ""}, "bank_account", "Choose the bank account payouts arrive in."),
        ({"fees_account": ""}, "fees_account", "Choose the account for Stripe's fees."),
        ({"journal_number": "9"}, "journal_number", "Your e-conomic has no journal 9: choose one from the list."),
        ({"bank_account": "9999"}, "bank_account", "Your e-conomic has no account 9999: choose one from the list."),
        ({"stripe_balance_account": str(HEADING)}, "stripe_balance_account",
         "Account 5800 – Likvide beholdninger takes no entries (it is a heading or a total): choose one that does."),
        ({"fees_account": str(TOTAL)}, "fees_account", "Account 5899 – Likvide beholdninger i alt takes no entries"),
        ({"fees_account": "5840"}, "fees_account",
         "Account 5840 – Spærret konto takes no entries (it is barred or blocked for direct entries): choose one that does."),
        ({"bank_account": str(STRIPE_BALANCE)}, "bank_account",
         "Account 5830 is already the Stripe balance account: the Stripe balance, bank and fees accounts must be three different accounts."),
        ({"fees_account": str(BANK)}, "fees_account", "Account 5820 is already the bank account"),
        ({"fees_account": str(STRIPE_BALANCE)}, "fees_account", "Account 5830 is already the Stripe balance account"),
        ({"journal_number": str(INDBETALINGER)}, "journal_number",
         "Journal 2 – Indbetalinger takes only customer payment entries, so payouts and Stripe's fees cannot be entered in it"),
        ({"journal_number": "one"}, "journal_number", "Enter the number only, in digits."),
        ({"bank_account": "-5820"}, "bank_account", "Enter the number only, in digits."),
        ({"payment_text": "Stripe {typo} {invoice_number}"}, "payment_text",
         "“{typo}” is not a placeholder. The placeholders are {invoice_number}, {customer_name}, {payout_id}, {refund_id} or {credit_note_number}."),
        ({"fee_text": "Fees {payout} {customer}"}, "fee_text", "“{payout}” and “{customer}” are not placeholders."),
        ({"payout_text": "Payout {payout_id"}, "payout_text", "Use { and } only around a placeholder"),
        ({"refund_text": "   "}, "refund_text", "Enter a text for the entry (at most 200 characters)."),
        ({"payment_text": "x" * 201}, "payment_text", "Keep the text to 200 characters; this one has 201."),
    ],
)
def test_each_refusal_names_its_field_and_saves_nothing(app, signed_in, account, fake, changes, field, message):
    fake.add_account(5840, "Spærret konto", account_type="status", barred=True)
    token = csrf_token(signed_in, PAGE)
    first = valid_post(token, payments_enabled=None, payment_text="Before {invoice_number}", bank_account="", fees_account="",
                       payouts_enabled=None, refunds_enabled=None)
    assert signed_in.post(PAGE, data=first).status_code == 302
    assert SAVED in page_text(signed_in)
    before = stored(app, account.merchant_id)

    response = signed_in.post(PAGE, data=valid_post(token, **changes))
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert "Nothing was saved" in page
    assert message in page
    assert f'id="{field}"' in page.split(message)[0].rsplit("<label", 1)[1]  # shown under its own field
    assert SAVED not in page
    assert stored(app, account.merchant_id) == before
    assert rows(app) == 1


def test_a_text_of_exactly_200_characters_with_every_placeholder_is_accepted(app, signed_in, account):
    text = " ".join(f"{{{name}}}" for name in TEXT_PLACEHOLDERS)
    text += "x" * (200 - len(text))
    token = csrf_token(signed_in, PAGE)
    assert signed_in.post(PAGE, data=valid_post(token, refund_text=text)).status_code == 302
    assert stored(app, account.merchant_id).refund_text == text


# --- Without e-conomic ------------------------------------------------------------------------------


def test_unreachable_economic_shows_a_notice_and_number_inputs(unreachable):
    page = page_text(unreachable)
    assert "Could not load your e-conomic lists: Could not reach e-conomic" in page
    assert "enter the journal and account numbers yourself" in page
    for name in ("journal_number", "stripe_balance_account", "bank_account", "fees_account"):
        assert f'id="{name}" inputmode="numeric" min="1" name="{name}" step="1" type="number" value=""' in page
    assert "<select" not in page


def test_economic_refusing_to_list_shows_the_notice(app, signed_in, fake):
    fake.fail_next(status=503)
    page = page_text(signed_in)
    assert "Could not load your e-conomic lists: e-conomic answered 503" in page
    assert 'type="number"' in page


def test_without_a_connection_the_page_says_where_to_connect(app, client, account):
    login(client, account.email)
    page = page_text(client)
    assert "Connect e-conomic on the Connections page" in page
    assert 'type="number"' in page


def test_unreachable_economic_saves_what_it_can_check_and_says_the_rest_was_not_checked(app, unreachable, account):
    token = csrf_token(unreachable, PAGE)
    response = unreachable.post(PAGE, data=valid_post(token, journal_number="77", fees_account="7777"))
    assert response.status_code == 302
    page = page_text(unreachable)
    assert SAVED in page
    assert "The journal and accounts were not checked in e-conomic" in page
    assert 'name="journal_number" step="1" type="number" value="77"' in page
    choices = stored(app, account.merchant_id)
    assert (choices.journal_number, choices.stripe_balance_account, choices.bank_account, choices.fees_account) == (77, 5830, 5820, 7777)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"bank_account": ""}, "Choose the bank account payouts arrive in."),
        ({"bank_account": str(STRIPE_BALANCE)}, "must be three different accounts"),
        ({"journal_number": "1.5"}, "Enter the number only, in digits."),
        ({"payout_text": "{payoutid}"}, "“{payoutid}” is not a placeholder"),
    ],
)
def test_unreachable_economic_still_refuses_what_it_can_check(app, unreachable, changes, message):
    token = csrf_token(unreachable, PAGE)
    response = unreachable.post(PAGE, data=valid_post(token, **changes))
    assert response.status_code == 422
    assert message in html.unescape(response.get_data(as_text=True))
    assert rows(app) == 0


def test_a_saved_number_economic_no_longer_lists_stays_on_the_page(app, signed_in, account):
    with app.app_context():
        db.session.add(JournalSettings(merchant_id=account.merchant_id, journal_number=42))
        db.session.commit()
    page = page_text(signed_in)
    assert '<option selected value="42">42 (saved)</option>' in page


# --- Tenancy ---------------------------------------------------------------------------------------


def test_another_merchants_settings_are_never_shown_or_changed(app, client, signed_in, account, other_account):
    token = csrf_token(signed_in, PAGE)
    signed_in.post(PAGE, data=valid_post(token, payment_text="Acme {invoice_number}"))
    mine = stored(app, account.merchant_id)
    signed_in.post("/logout", data={"csrf_token": csrf_token(signed_in, "/")})

    login(client, other_account.email)
    page = page_text(client)
    assert "Connect e-conomic on the Connections page" in page  # the first merchant's connection is not used
    assert "Acme {invoice_number}" not in page and 'value="5830"' not in page and "checked id=" not in page
    token = csrf_token(client, PAGE)
    response = client.post(PAGE, data=valid_post(token, payouts_enabled=None, refunds_enabled=None, journal_number="3",
                                                 stripe_balance_account="4", bank_account="", fees_account="",
                                                 payment_text="Other {invoice_number}"))
    assert response.status_code == 302
    assert stored(app, account.merchant_id) == mine
    theirs = stored(app, other_account.merchant_id)
    assert (theirs.journal_number, theirs.stripe_balance_account, theirs.payment_text) == (3, 4, "Other {invoice_number}")
    assert rows(app) == 2


# --- journal_settings_for and JournalChoices ---------------------------------------------------------


def test_a_merchant_without_settings_has_everything_off_and_reading_writes_nothing(app, account):
    choices = stored(app, account.merchant_id)
    assert choices == JournalChoices()
    assert not (choices.payments_enabled or choices.refunds_enabled or choices.credit_notes_enabled or choices.payouts_enabled)
    assert (choices.journal_number, choices.stripe_balance_account, choices.bank_account, choices.fees_account) == (None,) * 4
    assert {name: getattr(choices, name) for name in DEFAULT_TEXTS} == DEFAULT_TEXTS
    assert rows(app) == 0


def test_journal_settings_for_reads_the_merchants_row(app, account, other_account):
    with app.app_context():
        db.session.add(JournalSettings(merchant_id=account.merchant_id, payouts_enabled=True, journal_number=1,
                                       stripe_balance_account=5830, bank_account=5820, fees_account=7220, fee_text="Gebyr {payout_id}"))
        db.session.commit()
    assert stored(app, account.merchant_id) == JournalChoices(payouts_enabled=True, journal_number=1, stripe_balance_account=5830,
                                                              bank_account=5820, fees_account=7220, fee_text="Gebyr {payout_id}")
    assert stored(app, other_account.merchant_id) == JournalChoices()
    with pytest.raises(AttributeError):
        stored(app, account.merchant_id).journal_number = 2  # frozen: a read, not a handle on the row


def test_the_placeholders_and_default_texts_are_the_models():
    assert TEXT_PLACEHOLDERS == JournalSettings.TEXT_PLACEHOLDERS
    assert DEFAULT_TEXTS == JournalSettings.DEFAULT_TEXTS


def test_text_fills_the_placeholders():
    choices = JournalChoices(refund_text="Refund {refund_id} of {invoice_number} ({customer_name}) {credit_note_number}",
                             payout_text="Stripe payout {payout_id}", fee_text="Stripe fees {payout_id}")
    assert choices.text("payment", invoice_number="INV-7", customer_name="Kystlys ApS") == "Stripe payment INV-7 Kystlys ApS"
    assert choices.text("refund", refund_id="re_1", invoice_number="INV-7", customer_name="Kystlys", credit_note_number="CN-2") == \
        "Refund re_1 of INV-7 (Kystlys) CN-2"
    assert choices.text("payout", payout_id="po_9") == "Stripe payout po_9"
    assert choices.text("fee", payout_id=1234) == "Stripe fees 1234"


def test_text_leaves_out_missing_values_and_collapses_the_spaces():
    choices = JournalChoices()
    assert choices.text("payment", customer_name="Kystlys ApS") == "Stripe payment Kystlys ApS"
    assert choices.text("payment", invoice_number=None, customer_name="") == "Stripe payment"
    assert choices.text("payment", invoice_number="INV-7", customer_name="  Kystlys   ApS ") == "Stripe payment INV-7 Kystlys ApS"
    assert choices.text("payout", payout_id="po_1", surplus="ignored") == "Stripe payout"


def test_text_never_raises_over_a_malformed_template():
    assert JournalChoices(payment_text="Paid {invoice_number").text("payment", invoice_number="INV-7") == "Paid {invoice_number"
    assert JournalChoices(payment_text="Paid {typo} {} {0} {invoice_number}}").text("payment", invoice_number="7") == "Paid 7}"
    assert JournalChoices(payout_text="{payout_id.attr} {payout_id[0]}").text("payout", payout_id="po_1") == ""
    # a value is put in as it is, never read as a template itself
    assert JournalChoices().text("payment", invoice_number="{customer_name}", customer_name="X") == "Stripe payment {customer_name} X"
    with pytest.raises(ValueError):
        JournalChoices().text("dividend")


@pytest.mark.parametrize("template", [*DEFAULT_TEXTS.values(), "Plain text", "{credit_note_number}"])
def test_the_default_texts_and_plain_texts_are_valid(template):
    assert text_problem(template) is None


def test_the_webhook_events_cover_every_kind():
    assert set(JOURNAL_WEBHOOK_EVENTS) == {"payments_enabled", "refunds_enabled", "credit_notes_enabled", "payouts_enabled"}
    assert sorted(event for events in JOURNAL_WEBHOOK_EVENTS.values() for event in events) == sorted(
        ["credit_note.created", "charge.refunded", "refund.created", "payout.paid", "invoice_payment.paid"])
