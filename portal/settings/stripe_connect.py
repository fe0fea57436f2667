"""Connecting a merchant's Stripe accounts: add one, save its key (checked with Stripe at once, stored only
when it can do what the sync needs), paste a signing secret, set its own currency or layout, test it,
disconnect it. Plain functions; the Connections views call them and commit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import stripe
from sqlalchemy import func, select

from ..extensions import db
from ..models import StripeAccount, utcnow
from ..stripe_accounts import last_event_of
from ..sync.journal_choices import JournalChoices
from ..sync.stripe_access import KeyAccess, key_access
from ..sync.stripe_source import key_mode, stripe_client, stripe_error_words
from .stripe_endpoint import WebhookEndpointError, webhook_endpoint_delete

KEY_PATTERN = re.compile(r"^(sk|rk)_(test|live)_\S+$")
SIGNING_SECRET_PATTERN = re.compile(r"^whsec_\S+$")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
MAX_ACCOUNTS = 20
TIMEOUT = (5.0, 30.0)  # a person waits


class StripeConnectError(ValueError):
    """A change refused, with the reason in the merchant's words; nothing was stored."""


def _journal_kinds_on(choices: JournalChoices) -> set[str]:
    return {name for name in ("payments_enabled", "refunds_enabled", "credit_notes_enabled", "payouts_enabled")
            if getattr(choices, name)}


def stripe_account_add(merchant_id: int, label: str) -> StripeAccount:
    """A new Stripe account for the merchant (its webhook URL ready), to be given its key next."""
    label = _label(label)
    count = db.session.scalar(select(func.count()).select_from(StripeAccount).where(StripeAccount.merchant_id == merchant_id))
    if count >= MAX_ACCOUNTS:
        raise StripeConnectError(f"A merchant can connect at most {MAX_ACCOUNTS} Stripe accounts.")
    account = StripeAccount(merchant_id=merchant_id, label=label)
    db.session.add(account)
    db.session.flush()
    return account


def _label(label: str) -> str:
    label = " ".join((label or "").split())
    if not label:
        raise StripeConnectError("Give the Stripe account a name you will recognise, such as “Denmark”.")
    if len(label) > 100:
        raise StripeConnectError("Keep the name under 100 characters.")
    return label


def _access_words(access: KeyAccess) -> str:
    if access.refused:
        return f"Stripe refused the key: {access.refused}"
    if access.missing:
        return ("The key works, but it lacks permissions the sync needs: " + "; ".join(access.missing)
                + ". In Stripe's dashboard (Developers › API keys), edit the restricted key to allow these, or use the "
                "secret key.")
    name = f" ({access.account_name})" if access.account_name else ""
    ref = access.account_ref or "the account"
    return f"Connected to Stripe account {ref}{name} in {'live' if access.livemode else 'test'} mode; the key can read what the sync needs."


def stripe_key_save(account: StripeAccount, secret_key: str, api_base: str, journals: JournalChoices) -> KeyAccess:
    """Check the key with Stripe, and store it only when Stripe accepts it and it can read what the sync needs
    (else `StripeConnectError` saying which). Records the account Stripe names and the check, as live state."""
    secret_key = (secret_key or "").strip()
    if not KEY_PATTERN.match(secret_key):
        raise StripeConnectError("Stripe keys start with sk_test_, sk_live_, rk_test_ or rk_live_ (a publishable key, pk_…, "
                                 "cannot read invoices).")
    access = _check(secret_key, api_base, journals)
    if not access.ok:
        raise StripeConnectError(_access_words(access))
    if access.account_ref:
        twin = db.session.scalar(select(StripeAccount).where(
            StripeAccount.merchant_id == account.merchant_id, StripeAccount.stripe_account_ref == access.account_ref,
            StripeAccount.id != account.id))
        if twin is not None:
            raise StripeConnectError(f"This key belongs to Stripe account {access.account_ref}, which is connected already "
                                     f"as “{twin.label}”: its invoices would be synced twice.")
    if account.stripe_account_ref and access.account_ref and access.account_ref != account.stripe_account_ref:
        # Another Stripe account's key: the endpoint and signing secret were the old account's.
        account.webhook_endpoint_id = None
        account.webhook_secret = None
    account.secret_key = secret_key
    _record(account, access)
    return access


def stripe_key_try(account: StripeAccount, secret_key: str, api_base: str, journals: JournalChoices) -> tuple[bool, str]:
    """"Test this key": what Stripe says of a key typed into the form, checked as saving would check it, with
    nothing stored. (passed, the merchant's words)."""
    secret_key = (secret_key or "").strip()
    if not secret_key:
        return False, "Type the key first: this tests the key in the box, without saving it."
    if not KEY_PATTERN.match(secret_key):
        return False, ("Stripe keys start with sk_test_, sk_live_, rk_test_ or rk_live_ (a publishable key, pk_…, "
                       "cannot read invoices).")
    access = _check(secret_key, api_base, journals)
    if not access.ok:
        words = _access_words(access)
        return False, words + ("" if words.endswith((".", "!", "?")) else ".") + " Nothing was saved."
    twin = access.account_ref and db.session.scalar(select(StripeAccount).where(
        StripeAccount.merchant_id == account.merchant_id, StripeAccount.stripe_account_ref == access.account_ref,
        StripeAccount.id != account.id))
    if twin:
        return False, (f"This key belongs to Stripe account {access.account_ref}, which is connected already as "
                       f"“{twin.label}”: saving it here would sync its invoices twice.")
    return True, _access_words(access) + " Not saved yet: press Save and check the key to use it."


def _check(secret_key: str, api_base: str, journals: JournalChoices) -> KeyAccess:
    client = stripe_client(secret_key, api_base, max_network_retries=0, timeout=TIMEOUT)
    try:
        return key_access(client, secret_key, _journal_kinds_on(journals))
    except stripe.APIConnectionError:
        return KeyAccess(refused="Stripe could not be reached; nothing was changed. Try again in a moment.")
    except stripe.StripeError as error:
        return KeyAccess(refused=stripe_error_words(error))


def _record(account: StripeAccount, access: KeyAccess) -> None:
    account.checked_at = utcnow()
    account.check_ok = access.ok
    account.check_message = _access_words(access)[:1000]
    if access.account_ref:
        account.stripe_account_ref = access.account_ref
        account.stripe_account_name = access.account_name
    if access.refused is None:
        account.livemode = access.livemode


def stripe_account_test(account: StripeAccount, api_base: str, journals: JournalChoices) -> KeyAccess:
    """"Test connection": ask Stripe again what the stored key can do, and keep the answer as live state."""
    if not account.secret_key:
        access = KeyAccess(refused="no secret key is saved for this account yet")
        account.checked_at, account.check_ok = utcnow(), False
        account.check_message = f"Enter and save the secret key of “{account.label}” first."
        return access
    access = _check(account.secret_key, api_base, journals)
    _record(account, access)
    return access


def stripe_signing_secret_save(account: StripeAccount, secret: str) -> None:
    """The signing secret of an endpoint the merchant added in Stripe by hand."""
    secret = (secret or "").strip()
    if not SIGNING_SECRET_PATTERN.match(secret):
        raise StripeConnectError("Signing secrets start with whsec_ (Stripe shows it on the endpoint's page: Reveal).")
    if account.webhook_endpoint_id:
        raise StripeConnectError("The portal created this account's webhook endpoint and keeps its signing secret: delete "
                                 "that endpoint here first if you want to use one you made by hand.")
    account.webhook_secret = secret


def stripe_account_settings_save(account: StripeAccount, label: str, fixed_currency: str, layout_number: str) -> None:
    """The account's name, and its own currency and layout (blank: the shared Customer & product settings)."""
    account.label = _label(label)
    currency = (fixed_currency or "").strip().upper()
    if currency and not CURRENCY_PATTERN.match(currency):
        raise StripeConnectError("A currency is three letters, such as DKK or EUR (blank: as in Customer & product settings).")
    account.fixed_currency = currency or None
    layout = (layout_number or "").strip()
    if layout and not (layout.isdigit() and 0 < int(layout) < 1_000_000):
        raise StripeConnectError("A layout is e-conomic's layout number, such as 19 (blank: as in Customer & product settings).")
    account.layout_number = int(layout) if layout else None


def stripe_account_disconnect(account: StripeAccount, api_base: str) -> str | None:
    """Forget the account's key and signing secret, deleting the endpoint the portal made in Stripe first. Its
    runs stay in the history. Returns a warning when the endpoint could not be deleted in Stripe."""
    warning = None
    if account.webhook_endpoint_id and account.secret_key:
        try:
            webhook_endpoint_delete(account, api_base=api_base)
        except WebhookEndpointError as error:
            warning = (f"The webhook endpoint {account.webhook_endpoint_id or ''} could not be deleted in Stripe ({error.message}); "
                       "delete it in Stripe's dashboard (Developers › Webhooks).")
    account.secret_key = account.webhook_secret = account.webhook_endpoint_id = None
    account.checked_at = account.check_ok = account.check_message = None
    return warning


@dataclass(frozen=True)
class AccountState:
    """What the Connections page shows of an account: live facts, not "a secret is present"."""

    account: StripeAccount
    mode: str | None  # "test" / "live", from the key
    last_event_at: datetime | None
    last_event_type: str | None


def account_states(merchant_id: int, accounts: list[StripeAccount]) -> list[AccountState]:
    """Each account's last event received, found through the (account, id) index."""
    states = []
    for account in accounts:
        last_at, last_type = last_event_of(merchant_id, account.id) or (None, None)
        states.append(AccountState(account, key_mode(account.secret_key) if account.secret_key else None, last_at, last_type))
    return states
