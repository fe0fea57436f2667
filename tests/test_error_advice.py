"""Errors that say what to do: each kind of stored error → one sentence in the merchant's words, the action
and the page it links to, and e-conomic's exact text (with its logId) kept for "technical details"."""

from datetime import datetime, timezone

import pytest
import requests

from portal.history.error_advice import error_advice, say_once
from portal.sync.economic import error_from_response, said_once
from portal.sync.engine import economic_failure

TOKENS_REFUSED = ("e-conomic refused document: e-conomic answered 401: The app secret token or the agreement grant "
                  "token is not valid. The app secret token or the agreement grant token is not valid. [logId 0HN7A:01]")


def response(status: int, body: dict) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = __import__("json").dumps(body).encode()
    return answer


def test_refused_e_conomic_tokens_link_to_connections_and_keep_the_log_id_for_details():
    advice = error_advice(TOKENS_REFUSED)
    assert advice.sentence == "Your e-conomic tokens were refused"
    assert (advice.action, advice.endpoint, advice.anchor) == ("reconnect on Connections", "settings.connections", "economic")
    assert advice.log_id == "0HN7A:01"
    assert "0HN7A:01" not in advice.sentence
    # e-conomic's words said once in the details (rows stored before the client said them once).
    assert advice.technical.count("is not valid.") == 1
    assert advice.technical.endswith("[logId 0HN7A:01]")


def test_a_403_from_e_conomic_also_leads_to_connections():
    advice = error_advice("e-conomic refused customer: e-conomic answered 403: Access denied. [logId x1]")
    assert advice.endpoint == "settings.connections" and advice.anchor == "economic"
    assert "e-conomic did not allow this" in advice.sentence


def test_e_conomic_not_connected_says_connect():
    advice = error_advice("e-conomic is not connected (Connections), so the document cannot be made.")
    assert (advice.sentence, advice.action, advice.endpoint) == (
        "e-conomic is not connected", "connect it on Connections", "settings.connections")


@pytest.mark.parametrize("text", [
    "Stripe: Invalid API Key provided: sk_test_****1234",
    "Stripe: Expired API Key provided: rk_live_****abcd",
    "No secret key is saved for the Stripe account “Denmark” (Connections), so Stripe could not be read.",
])
def test_a_refused_or_missing_stripe_key_links_to_that_accounts_card(text):
    advice = error_advice(text, stripe_account_id=7)
    assert (advice.endpoint, advice.anchor) == ("settings.connections", "stripe-account-7")
    assert advice.action == "enter a new key on Connections"
    assert "Stripe" in advice.sentence


def test_a_stripe_key_without_a_permission_says_so():
    advice = error_advice("Stripe: The provided key 'rk_test_***' does not have the required permissions for this "
                          "endpoint on account 'acct_1'.", stripe_account_id=3)
    assert advice.anchor == "stripe-account-3" and "permission" in advice.action


def test_a_missing_setting_links_to_its_anchor():
    advice = error_advice("Payment terms is not set (Customer & product settings). [setting:payment-terms]")
    assert advice.sentence == "Payment terms is not set yet"
    assert (advice.endpoint, advice.anchor) == ("settings.customer_product", "payment-terms")
    assert "[setting:" not in (advice.technical or "")


def test_a_customer_or_product_e_conomic_does_not_have_leads_to_the_product_settings():
    customer = error_advice("e-conomic has no customer 4711, the number in the Stripe customer's metadata "
                            "(economic_customer_number).")
    assert (customer.endpoint, customer.anchor) == ("settings.customer_product", "customer-sync")
    product = error_advice("e-conomic refused products: e-conomic answered 404: Product not found. [logId p1]")
    assert (product.endpoint, product.anchor) == ("settings.customer_product", "product-sync")
    skipped = error_advice("Stripe product 'Pro plan' (prod_1) was not found in e-conomic, and Product Sync is set to "
                           "Skip Invoice Generation: nothing was created.")
    assert skipped.anchor == "product-sync" and "Pro plan" in skipped.sentence


def test_timeouts_and_5xx_say_when_they_are_retried():
    at = datetime(2026, 11, 20, 13, 0, tzinfo=timezone.utc)
    retrying = error_advice("customer: e-conomic at https://restapi.e-conomic.com did not answer in time.",
                            retry_at=at, will_retry=True)
    assert retrying.sentence == "e-conomic did not answer; it is retried automatically"
    assert retrying.retry_at == at and retrying.endpoint is None
    down = error_advice("document: e-conomic answered 503: Service unavailable. [logId s5]")
    assert down.sentence == "e-conomic did not answer, and every automatic retry has been used: press Sync again to try now"
    busy = error_advice("document: e-conomic answered 429: Too many requests.", retry_at=at, will_retry=True)
    assert busy.sentence.startswith("e-conomic was busy")


def test_a_field_refusal_names_the_field_and_where_to_fix_it():
    advice = error_advice("e-conomic refused document: e-conomic answered 400: Validation exception. "
                          "(delivery.city: City is too long.) [logId v1]. Check the Invoice/Order field mappings "
                          "(Delivery fields), then press Sync again.")
    assert advice.sentence == "e-conomic refused the document: Validation exception. (delivery.city: City is too long.)"
    assert (advice.action, advice.endpoint) == ("check the Invoice/Order field mappings", "settings.mappings")
    assert advice.log_id == "v1"


def test_an_unknown_error_is_shown_as_it_is():
    advice = error_advice("The Stripe invoice is still a draft; only finalized invoices are synced.")
    assert advice.sentence == "The Stripe invoice is still a draft; only finalized invoices are synced"
    assert advice.action is None and advice.technical is None
    assert error_advice(None) is None and error_advice("  ") is None


def test_say_once_leaves_different_sentences_alone():
    assert say_once("Validation exception. Inspect validation errors.") == "Validation exception. Inspect validation errors."
    assert say_once("The token is not valid. The token is not valid. [logId 1]") == "The token is not valid. [logId 1]"


@pytest.mark.parametrize("message, hint, said", [
    ("The token is not valid.", "The token is not valid.", "The token is not valid."),
    ("The token is not valid", "The token is not valid.", "The token is not valid"),  # the message kept
    ("The token is not valid.", "the token is  not valid", "The token is not valid."),
    ("Validation exception.", "Inspect validation errors and correct your request.",
     "Validation exception. Inspect validation errors and correct your request."),
    ("Not found.", None, "Not found."),
])
def test_e_conomic_message_and_hint_are_said_once(message, hint, said):
    assert said_once(message, hint) == said


def test_a_401_from_e_conomic_is_stored_with_its_words_once():
    text = "The app secret token or the agreement grant token is not valid."
    error = error_from_response(response(401, {"message": text, "developerHint": text, "logId": "abc", "errorCode": "E00500"}))
    failure = economic_failure(error, "document")
    assert failure.message == f"e-conomic refused document: e-conomic answered 401: {text} [logId abc]"
    assert error_advice(failure.message).sentence == "Your e-conomic tokens were refused"


def refused_customer_number(number: int) -> str:
    """What a run keeps when e-conomic refuses a draft invoice for a customer number it does not have."""
    error = error_from_response(response(400, {
        "message": "Validation failed. 1 error found.", "developerHint": "Inspect validation errors and correct your request.",
        "errorCode": "E04300", "logId": "c1",
        "errors": {"customer": {"errors": [{"propertyName": "customer", "errorMessage": f"Customer '{number}' not found.",
                                            "errorCode": "E06000", "inputValue": number}]}}}))
    return economic_failure(error, "document").message


@pytest.mark.parametrize("text", ["Customer 1001 does not exist", refused_customer_number(1001)])
def test_a_customer_number_e_conomic_does_not_have_says_what_helps_and_links_to_customer_sync(text):
    advice = error_advice(text)
    # A retry checks a remembered customer number before it uses it (tests/test_engine.py), so Sync again helps.
    assert advice.sentence == ("e-conomic no longer has customer 1001, which the portal remembered for this Stripe "
                               "customer: press Sync again, and the next attempt finds the customer again, or creates it")
    assert (advice.action, advice.endpoint, advice.anchor) == (
        "see how customers are found under Customer sync", "settings.customer_product", "customer-sync")
    assert advice.technical and "1001" in advice.technical


def test_a_journal_entry_refused_for_its_customer_is_not_mistaken_for_the_documents_customer():
    advice = error_advice("e-conomic refused the payment's voucher: e-conomic answered 400: Validation failed. "
                          "(entries.customerPayments[0].customer: Customer '1001' not found.)")
    assert "remembered" not in advice.sentence
