"""What a stored error means to a merchant: one sentence in their words, what to do about it (with the page
to do it on), and the exact text as e-conomic or Stripe said it, for "technical details".

Plain functions of the text a run keeps (`SyncRun.last_error`) or a step kept (`AuditRow.error`): no queries,
no Flask. The template turns `endpoint` and `anchor` into a link with `url_for`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

SETTING_SUFFIX = re.compile(r"\s*\[setting:([\w-]+)\]\s*$")  # added by sync_run_failed for SettingMissing
LOG_ID = re.compile(r"\s*\[logId ([^\]]+)\]")
STATUS = re.compile(r"e-conomic answered (\d{3})")
STATUS_PREFIX = re.compile(r"^\s*e-conomic answered \d{3}:\s*")
SETTING_NOT_SET = re.compile(r"^(?P<setting>.+?) is not set \(Customer & product settings\)\.?$")
TRANSIENT_ECONOMIC = ("did not answer in time", "Could not reach e-conomic", "answered with something that is not JSON")
STRIPE_KEY_REFUSED = ("Invalid API Key", "Expired API Key", "API key provided", "No secret key is saved for the Stripe account")
STRIPE_PERMISSION = ("does not have the required permissions", "restricted key", "permission")
# e-conomic refusing a document's customer number: "Customer 1001 does not exist", "Customer '1001' not found."
CUSTOMER_MISSING = re.compile(r"\bCustomer '?(?P<number>\d+)'? (?:does not exist|not found)", re.IGNORECASE)


@dataclass(frozen=True)
class Advice:
    """An error for the invoice page: `sentence` (no full stop; the action follows a dash), `action` the link's
    words, `endpoint`/`anchor` where it goes, `technical` the exact stored text (None when the sentence is it)."""

    sentence: str
    action: str | None = None
    endpoint: str | None = None
    anchor: str | None = None
    technical: str | None = None
    log_id: str | None = None
    retry_at: datetime | None = None  # "… is retried automatically" at this moment (the template writes it)

    @property
    def has_link(self) -> bool:
        return bool(self.action and self.endpoint)


def say_once(text: str) -> str:
    """A sentence said twice in a row said once ("X. X. [logId 1]" → "X. [logId 1]"), for errors stored before
    the e-conomic client stopped repeating its developer hint."""
    return re.sub(r"(?P<s>[^.]{12,}\.)(\s+(?P=s))+", r"\g<s>", text)


def error_advice(text: str | None, *, stripe_account_id: int | None = None, retry_at: datetime | None = None,
                 will_retry: bool = False) -> Advice | None:
    """The advice for a stored error text; None for no text. `stripe_account_id`: the run's Stripe account
    (its card on Connections); `retry_at`/`will_retry`: when a retrying run is tried next."""
    if not text or not text.strip():
        return None
    exact = say_once(" ".join(text.split()))
    setting = SETTING_SUFFIX.search(exact)
    if setting:
        exact = exact[:setting.start()]
    log = LOG_ID.search(exact)
    log_id = log.group(1) if log else None
    status = int(STATUS.search(exact).group(1)) if STATUS.search(exact) else None

    def advice(sentence: str, action: str | None = None, endpoint: str | None = None, anchor: str | None = None) -> Advice:
        return Advice(sentence, action, endpoint, anchor, technical=exact, log_id=log_id)

    if setting:
        found = SETTING_NOT_SET.match(exact)
        what = found.group("setting") if found else None
        sentence = f"{what} is not set yet" if what else _plain(exact)
        return advice(sentence, "choose it in Customer & product settings", "settings.customer_product", setting.group(1))

    # e-conomic: tokens refused, or not connected at all.
    if status == 401 or "token is not valid" in exact or ("grant token" in exact and "not valid" in exact):
        return advice("Your e-conomic tokens were refused", "reconnect on Connections", "settings.connections", "economic")
    if status == 403:
        return advice("e-conomic did not allow this with the access your connection has",
                      "reconnect e-conomic on Connections", "settings.connections", "economic")
    if exact.startswith("e-conomic is not connected"):
        return advice("e-conomic is not connected", "connect it on Connections", "settings.connections", "economic")

    # Stripe: the account's key refused or missing, or short of a permission.
    stripe_card = f"stripe-account-{stripe_account_id}" if stripe_account_id else "stripe"
    if exact.startswith("Stripe:") or "Stripe account" in exact:
        if any(words in exact for words in STRIPE_KEY_REFUSED):
            sentence = ("No Stripe key is saved for this invoice's Stripe account" if "No secret key" in exact
                        else "Stripe refused the account's key")
            return advice(sentence, "enter a new key on Connections", "settings.connections", stripe_card)
        if any(words in exact for words in STRIPE_PERMISSION):
            return advice("The Stripe key may not read something the sync needs",
                          "give the key the permission on Connections", "settings.connections", stripe_card)

    # Slow, down or busy: retried by itself.
    transient = (status is not None and (status >= 500 or status in (408, 429))) or any(
        words in exact for words in TRANSIENT_ECONOMIC)
    if transient:
        who = "Stripe" if exact.startswith("Stripe:") else "e-conomic"
        busy = "was busy" if status == 429 else "did not answer"
        if will_retry and retry_at is not None:
            return Advice(f"{who} {busy}; it is retried automatically", technical=exact, log_id=log_id, retry_at=retry_at)
        return advice(f"{who} {busy}, and every automatic retry has been used: press Sync again to try now")

    # A customer or product e-conomic does not have.
    if "e-conomic has no customer" in exact:
        return advice("The customer number in the Stripe customer's metadata is not a customer in e-conomic",
                      "check Customer sync", "settings.customer_product", "customer-sync")
    if "was not found in e-conomic" in exact and "Product Sync" in exact:
        return advice(_plain(exact.split(", and Product Sync")[0]) + ", and Product Sync skips such invoices",
                      "change Product sync", "settings.customer_product", "product-sync")
    missing = CUSTOMER_MISSING.search(exact)
    if missing and "voucher" not in exact:
        return advice(_customer_missing(missing.group("number")), "see how customers are found under Customer sync",
                      "settings.customer_product", "customer-sync")
    if status == 404 and ("refused customer" in exact or "/customers" in exact):
        return advice("e-conomic could not find the customer", "check Customer sync", "settings.customer_product",
                      "customer-sync")
    if status == 404 and "refused products" in exact:
        return advice("e-conomic could not find a product", "check Product sync", "settings.customer_product",
                      "product-sync")

    # A document (customer, product) e-conomic refused field by field: its words, and where the engine said to look.
    if exact.startswith("e-conomic refused"):
        head, _, rest = exact.partition(":")
        what = head.replace("e-conomic refused", "").strip()
        noun = {"document": "the document", "customer": "the customer", "products": "a product",
                "book": "the booking"}.get(what, what or "it")
        words, _, check = STATUS_PREFIX.sub("", rest).partition(". Check ")
        sentence = f"e-conomic refused {noun}: {_plain(words)}"
        if "field mappings" in check:
            return advice(sentence, "check the Invoice/Order field mappings", "settings.mappings")
        if check:
            return advice(sentence, "check Customer & product settings", "settings.customer_product")
        return advice(sentence)

    # Anything else is already said in words: show it as it is.
    return Advice(_plain(exact), technical=exact if log_id else None, log_id=log_id)


def _customer_missing(number: str) -> str:
    """e-conomic lacks the customer number the portal remembered for the Stripe customer (found or made by an
    earlier sync, deleted in e-conomic since). A new attempt checks a remembered number before it uses it."""
    return (f"e-conomic no longer has customer {number}, which the portal remembered for this Stripe customer: "
            "press Sync again, and the next attempt finds the customer again, or creates it")


def _plain(text: str) -> str:
    """The text without e-conomic's log id and its closing full stop (the template ends the sentence)."""
    return LOG_ID.sub("", text).strip().rstrip(".")
