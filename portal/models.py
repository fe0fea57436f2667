"""Database models. Every row that belongs to a merchant carries `merchant_id`; queries scope by it."""

from __future__ import annotations

import enum
import functools
import secrets
from datetime import date, datetime, timezone

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .crypto import EncryptedString
from .extensions import db
from .sync.journal_choices import DEFAULT_TEXTS, TEXT_PLACEHOLDERS


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """A stored timestamp with its zone: SQLite hands them back without one, and they were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def new_webhook_key() -> str:
    return "whk_" + secrets.token_urlsafe(24)


class RunStatus(str, enum.Enum):
    """Where a sync run stands. A str enum: stored and compared as its plain value ("held")."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    HELD = "held"  # a document was made but differs from Stripe (or cannot be made as Stripe charged): review
    FAILED = "failed"
    SKIPPED = "skipped"  # nothing to make: the invoice was voided (or is a draft) when the run fetched it
    WAITING = "waiting"  # a journal entry waiting for another run (a payment for its invoice to be booked)

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return {"held": "held for review", "waiting": "waiting"}.get(self.value, self.value)


class RunKind(str, enum.Enum):
    """What a run enters in e-conomic: the invoice's document, or a journal entry for the money after it."""

    INVOICE = "invoice"  # a draft or booked invoice, or a draft order
    PAYMENT = "payment"  # a customer payment against the booked invoice (Stripe's InvoicePayment, inpay_…)
    REFUND = "refund"  # a customer payment reversed out of the Stripe balance account (re_…)
    CREDIT_NOTE = "credit_note"  # an e-conomic invoice with negative lines (cn_…)
    PAYOUT = "payout"  # Stripe's fees and the payout to the bank (po_…)

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return {"invoice": "invoice", "payment": "customer payment", "refund": "refund",
                "credit_note": "credit note", "payout": "payout"}[self.value]


class Role(str, enum.Enum):
    """What a user may do for their merchant. Members see the history and press Sync again; admins also
    change settings and connections and manage users; the owner is an admin nobody else can remove."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @property
    def rank(self) -> int:
        return {"member": 0, "admin": 1, "owner": 2}[self.value]

    def at_least(self, other: Role) -> bool:
        return self.rank >= Role(other).rank


# Runs that are finished: nothing will happen to them unless someone asks.
FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.HELD, RunStatus.FAILED, RunStatus.SKIPPED)


class Merchant(db.Model):
    """A tenant: one business whose Stripe accounts (one or several, e.g. one per country) are synced into one
    e-conomic agreement."""

    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="merchant")
    connection: Mapped[Connection | None] = relationship(back_populates="merchant", uselist=False)
    stripe_accounts: Mapped[list[StripeAccount]] = relationship(back_populates="merchant", order_by="StripeAccount.id")


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default=Role.MEMBER, server_default=Role.MEMBER.value)  # Role
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Each signed-in session holds the version it was signed in with; raising it (sign-out, "Sign out
    # everywhere", a new password) ends every session that holds an older one.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")

    merchant: Mapped[Merchant] = relationship(back_populates="users")

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    @property
    def is_admin(self) -> bool:
        """An admin or the owner: may change settings and connections and manage users."""
        return Role(self.role).at_least(Role.ADMIN)


class StripeAccount(db.Model):
    """One Stripe account feeding the merchant's e-conomic agreement: its key, its webhook URL and signing
    secret, and where a merchant needs them, its own currency and layout. Runs are kept apart per account."""

    __tablename__ = "stripe_accounts"
    __table_args__ = (
        # One Stripe account is connected once per merchant (its events would otherwise be entered twice).
        db.Index("uq_stripe_accounts_merchant_account", "merchant_id", "stripe_account_ref", unique=True,
                 sqlite_where=sa.text("stripe_account_ref IS NOT NULL"),
                 postgresql_where=sa.text("stripe_account_ref IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100), default="Stripe")  # the merchant's name for it ("Denmark")
    # The unguessable part of this account's webhook URL (ids are sequential, so never used there).
    webhook_key: Mapped[str] = mapped_column(String(64), unique=True, default=new_webhook_key)
    secret_key: Mapped[str | None] = mapped_column(EncryptedString(1024))
    webhook_secret: Mapped[str | None] = mapped_column(EncryptedString(1024))
    # The Stripe webhook endpoint (`we_…`) the portal created, whose signing secret is `webhook_secret`;
    # None when there is none, or the merchant added the endpoint by hand.
    webhook_endpoint_id: Mapped[str | None] = mapped_column(String(255))
    # What Stripe says the key belongs to (GET /v1/account), read when the key is saved or tested.
    stripe_account_ref: Mapped[str | None] = mapped_column(String(255))  # acct_…
    stripe_account_name: Mapped[str | None] = mapped_column(String(255))
    livemode: Mapped[bool | None] = mapped_column()
    # The last connection test: when, whether it passed, and what it said.
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    check_ok: Mapped[bool | None] = mapped_column()
    check_message: Mapped[str | None] = mapped_column(String(1000))
    # Overrides of the shared Customer & product settings, for this account's documents only.
    fixed_currency: Mapped[str | None] = mapped_column(String(3))
    layout_number: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    merchant: Mapped[Merchant] = relationship(back_populates="stripe_accounts")

    SECRET_FIELDS = ("secret_key", "webhook_secret")

    @property
    def name(self) -> str:
        """How the portal names the account: the merchant's label, and Stripe's id once known."""
        return f"{self.label} ({self.stripe_account_ref})" if self.stripe_account_ref else self.label


class Connection(db.Model):
    """A merchant's e-conomic credentials, encrypted at rest (Stripe's are per account: StripeAccount)."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), unique=True)
    economic_app_secret_token: Mapped[str | None] = mapped_column(EncryptedString(1024))
    economic_agreement_grant_token: Mapped[str | None] = mapped_column(EncryptedString(1024))
    # The e-conomic agreement the tokens open, as its `/self` said when connected or last checked, and the
    # last check's outcome (Test connection): what the Connections page shows as the connection's state.
    economic_company_name: Mapped[str | None] = mapped_column(String(255))
    economic_agreement_number: Mapped[int | None] = mapped_column()
    economic_connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    economic_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    economic_check_ok: Mapped[bool | None] = mapped_column()
    economic_check_message: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    merchant: Mapped[Merchant] = relationship(back_populates="connection")

    SECRET_FIELDS = ("economic_app_secret_token", "economic_agreement_grant_token")


class WebhookEvent(db.Model):
    """A Stripe event whose signature checked out, stored before Stripe gets its 2xx; a job decides later,
    on the invoice as it is then, what it makes."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        db.UniqueConstraint("merchant_id", "stripe_event_id", name="uq_webhook_events_merchant_event"),
        # The recovery pass finds events still waiting for their job by this index, whatever the table's size.
        db.Index("ix_webhook_events_received", "received_at", sqlite_where=sa.text("outcome = 'received'"),
                 postgresql_where=sa.text("outcome = 'received'")),
        # Events no dispatch pass has queued a job for yet, in the order they came (runs/dispatch.py).
        db.Index("ix_webhook_events_undispatched", "id",
                 sqlite_where=sa.text("outcome = 'received' AND dispatched_at IS NULL"),
                 postgresql_where=sa.text("outcome = 'received' AND dispatched_at IS NULL")),
        # Payloads still kept, oldest first: pruning costs what it prunes.
        db.Index("ix_webhook_events_payload_kept", "received_at", sqlite_where=sa.text("payload <> ''"),
                 postgresql_where=sa.text("payload <> ''")),
        # The Connections page's "last event received" per account.
        db.Index("ix_webhook_events_account", "stripe_account_id", "id"),
        # The Sync history's invoices the rules left alone, newest first, per merchant.
        db.Index("ix_webhook_events_ignored", "merchant_id", "received_at", "id", sqlite_where=sa.text("outcome = 'ignored'"),
                 postgresql_where=sa.text("outcome = 'ignored'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: the unique (merchant_id, stripe_event_id) index serves lookups by merchant.
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    # The Stripe account whose webhook URL it came to (its key reads what the event names).
    stripe_account_id: Mapped[int] = mapped_column(ForeignKey("stripe_accounts.id", ondelete="CASCADE"))
    stripe_event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    livemode: Mapped[bool] = mapped_column(default=False)
    api_version: Mapped[str | None] = mapped_column(String(40))
    stripe_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When a job to decide it was queued (by the merchant's dispatcher or the requeue pass); None: not yet.
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payload: Mapped[str] = mapped_column(db.Text)
    # What the rules made of it: "queued" (a run exists for it) or "ignored", with the reason.
    # received (stored, not decided yet), queued (made or advanced a run), duplicate, ignored
    outcome: Mapped[str] = mapped_column(String(20), default="received", server_default="received")
    ignored_reason: Mapped[str | None] = mapped_column(String(500))
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"))


class SyncRule(db.Model):
    """Invoice Sync Rules: when (the Stripe invoice is Sent or Paid) and what to create in e-conomic."""

    __tablename__ = "sync_rules"

    TRIGGERS = {"sent": "Sent", "paid": "Paid"}
    DOCUMENT_TYPES = {"draft_invoice": "Draft invoice", "booked_invoice": "Booked invoice", "draft_order": "Draft order"}

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), unique=True)
    trigger: Mapped[str] = mapped_column(String(20), default="paid")
    document_type: Mapped[str] = mapped_column(String(30), default="draft_invoice")
    # Invoices Stripe charges automatically are never "sent": let Sent fire on invoice.finalized for them.
    sent_on_finalized_for_automatic: Mapped[bool] = mapped_column(default=True)
    sync_voided_invoices: Mapped[bool] = mapped_column(default=False)
    sync_zero_amount_invoices: Mapped[bool] = mapped_column(default=False)
    write_back_to_stripe: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class FieldMapping(db.Model):
    """One row of the Invoice/Order field mappings: an e-conomic field and the Stripe source filling it."""

    __tablename__ = "field_mappings"
    __table_args__ = (db.UniqueConstraint("merchant_id", "target", name="uq_field_mappings_merchant_target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(60))
    source: Mapped[str] = mapped_column(String(1100), default="none")  # see portal.sync.mapping.Source
    fallback: Mapped[str] = mapped_column(String(1100), default="none")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class SyncSettings(db.Model):
    """Customer & product settings, used by the sync's steps 1 (customer) and 2 (products)."""

    __tablename__ = "sync_settings"

    MATCH_CUSTOMERS_ON = {"name": "Customer name", "email": "E-mail", "phone": "Phone", "custom": "Custom field"}
    CUSTOMER_NUMBER_MODES = {
        "economic": "Let e-conomic create the customer number",
        "stripe": "Use the customer number from Stripe",
    }
    PRODUCT_MATCHING = {"simple": "Simple search", "direct": "Direct link"}
    SIMPLE_SEARCH_ON = {
        "product_number": "e-conomic product number = Stripe product id",
        "name": "e-conomic product name = Stripe product name",
    }
    PRODUCT_NOT_FOUND = {
        "skip": "Skip invoice generation",
        "default": "Use a default product",
        "create": "Create a new product",
    }
    CURRENCY_MODES = {"invoice": "The invoice's currency", "fixed": "A fixed currency"}

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), unique=True)

    # Customer Sync
    match_customers_on: Mapped[str] = mapped_column(String(20), default="email")
    custom_match_stripe_key: Mapped[str | None] = mapped_column(String(40))
    custom_match_economic_field: Mapped[str | None] = mapped_column(String(40))
    customer_number_mode: Mapped[str] = mapped_column(String(20), default="economic")
    customer_number_metadata_key: Mapped[str] = mapped_column(String(40), default="economic_customer_number")
    # Customer default mappings, for customers the sync creates
    payment_terms_number: Mapped[int | None] = mapped_column()
    customer_group_number: Mapped[int | None] = mapped_column()
    vat_zone_domestic: Mapped[int | None] = mapped_column()
    vat_zone_eu_with_vat_id: Mapped[int | None] = mapped_column()
    vat_zone_eu_without_vat_id: Mapped[int | None] = mapped_column()
    vat_zone_outside_eu: Mapped[int | None] = mapped_column()
    home_country: Mapped[str] = mapped_column(String(2), default="DK")
    currency_mode: Mapped[str] = mapped_column(String(10), default="invoice")
    fixed_currency: Mapped[str | None] = mapped_column(String(3))
    layout_number: Mapped[int | None] = mapped_column()
    time_zone: Mapped[str] = mapped_column(String(60), default="Europe/Copenhagen")

    # Product Sync
    product_matching: Mapped[str] = mapped_column(String(20), default="direct")
    simple_search_on: Mapped[str] = mapped_column(String(20), default="product_number")
    product_number_metadata_key: Mapped[str] = mapped_column(String(40), default="economic_product_number")
    product_not_found: Mapped[str] = mapped_column(String(20), default="create")
    default_product_number: Mapped[str | None] = mapped_column(String(25))
    new_product_group_number: Mapped[int | None] = mapped_column()
    apply_invoice_discounts: Mapped[bool] = mapped_column(default=True)
    discount_product_number: Mapped[str | None] = mapped_column(String(25))
    # Shipping Stripe charged goes on this product; VAT rounding differences of a few minor units on this
    # one (a product in a group whose sales accounts carry no VAT).
    shipping_product_number: Mapped[str | None] = mapped_column(String(25))
    rounding_product_number: Mapped[str | None] = mapped_column(String(25))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


UNFINISHED_RUN = "status IN ('queued', 'running', 'retrying', 'waiting')"


def _the_runs_invoice(context) -> str | None:
    return context.get_current_parameters().get("stripe_invoice_id")


class SyncRun(db.Model):
    """One Stripe object entered in e-conomic once: the unit of idempotency. Its `kind` says what: an invoice
    made into one e-conomic document, or a payment, refund, credit note or payout after it.

    Unique per (merchant, Stripe account, kind, Stripe object), so duplicate or out-of-order events, or a rule changed
    between them, never make a second document: a later trigger advances the run (a draft invoice
    booked). The rule it was queued under is copied in, so saving new rules never changes runs queued.
    """

    __tablename__ = "sync_runs"
    __table_args__ = (
        # One run, so one e-conomic document or entry, per Stripe object; a later trigger advances it. Runs
        # made before this rule (a second document type for one invoice) stay, marked superseded.
        db.Index("uq_sync_runs_object", "merchant_id", "stripe_account_id", "kind", "stripe_object_id", unique=True,
                 sqlite_where=sa.text("superseded_by IS NULL"), postgresql_where=sa.text("superseded_by IS NULL")),
        db.Index("ix_sync_runs_invoice", "merchant_id", "stripe_invoice_id"),
        db.Index("ix_sync_runs_account_updated", "stripe_account_id", "updated_at", "id"),
        db.Index("ix_sync_runs_payment_ref", "merchant_id", "stripe_payment_ref"),
        db.Index("ix_sync_runs_merchant_updated", "merchant_id", "updated_at", "id"),
        # The requeue pass's runs: only those not finished, whatever the table's size.
        db.Index("ix_sync_runs_waiting", "updated_at", sqlite_where=sa.text(UNFINISHED_RUN),
                 postgresql_where=sa.text(UNFINISHED_RUN)),
        db.Index("ix_sync_runs_merchant_status_updated", "merchant_id", "status", "updated_at", "id"),
    )

    STATUSES = tuple(status.value for status in RunStatus)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    # The Stripe account the object is in: runs of two accounts never meet, whatever their ids.
    stripe_account_id: Mapped[int] = mapped_column(ForeignKey("stripe_accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20), default=RunKind.INVOICE, server_default=RunKind.INVOICE.value)
    # in_…, inpay_…, re_…, cn_…, po_…; an invoice run's is its invoice.
    stripe_object_id: Mapped[str] = mapped_column(String(255), default=_the_runs_invoice)
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255))  # the invoice it belongs to; a payout has none
    stripe_payment_ref: Mapped[str | None] = mapped_column(String(255))  # a payment run's pi_… or ch_…, for its payout
    document_type: Mapped[str] = mapped_column(String(30))
    trigger: Mapped[str] = mapped_column(String(20))
    write_back_to_stripe: Mapped[bool] = mapped_column(default=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    job_id: Mapped[str | None] = mapped_column(String(100))
    next_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(db.Text)
    will_retry: Mapped[bool] = mapped_column(default=False)
    # What the invoice looked like (for the history list), filled by the first fetch.
    stripe_invoice_number: Mapped[str | None] = mapped_column(String(100))
    customer_name: Mapped[str | None] = mapped_column(String(255))
    customer_email: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str | None] = mapped_column(String(3))
    total_minor: Mapped[int | None] = mapped_column(db.BigInteger)
    # What e-conomic holds for it, recorded as soon as it is known (the idempotency trail).
    economic_customer_number: Mapped[int | None] = mapped_column()
    economic_draft_number: Mapped[int | None] = mapped_column()
    economic_booked_number: Mapped[int | None] = mapped_column()
    economic_order_number: Mapped[int | None] = mapped_column()
    document_create_started: Mapped[bool] = mapped_column(default=False)
    # Totals: Stripe's and e-conomic's, and a note when they do not reconcile.
    reconciliation: Mapped[str | None] = mapped_column(db.Text)
    reconciled: Mapped[bool | None] = mapped_column()
    # JSON {"currency": "DKK", "stripe": {"net": "8620.00", "vat": …, "gross": …}, "economic": {…},
    # "rounding": "0.01"}: both sides' figures as decimal strings, for the history.
    totals: Mapped[str | None] = mapped_column(db.Text)
    # Why a run is held, in plain words, and the setting to look at (an anchor on the settings pages).
    held_reason: Mapped[str | None] = mapped_column(db.Text)
    held_setting: Mapped[str | None] = mapped_column(String(60))
    # "Create a new document" starts a new generation: new idempotency keys, the old document left alone.
    generation: Mapped[int] = mapped_column(default=1, server_default="1")
    replaced_documents: Mapped[str | None] = mapped_column(String(500))  # "draft invoice 12, booked invoice 20003"
    # "Sync again" on a held run: the held draft (of this run's document type) to delete before making anew.
    discard_draft_number: Mapped[int | None] = mapped_column()
    # "Book anyway" on a held run: book (or keep) the reviewed draft although its totals differ from Stripe.
    override_reconciliation: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # The Stripe invoice was voided after its document was booked: a credit note is due.
    needs_credit_note: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the running worker's lease
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    backfill_id: Mapped[int | None] = mapped_column(ForeignKey("backfills.id", ondelete="SET NULL"), index=True)
    # A run from before one-run-per-invoice that the invoice's kept run stands in for.
    superseded_by: Mapped[int | None] = mapped_column()
    # A journal entry's voucher in e-conomic (payments, refunds, payouts).
    economic_journal_number: Mapped[int | None] = mapped_column()
    economic_accounting_year: Mapped[str | None] = mapped_column(String(20))
    economic_voucher_number: Mapped[int | None] = mapped_column()
    waiting_for: Mapped[str | None] = mapped_column(String(500))  # what a waiting run waits for, in plain words

    @property
    def document_number(self) -> int | None:
        if self.document_type == "booked_invoice":
            return self.economic_booked_number
        if self.document_type == "draft_order":
            return self.economic_order_number
        return self.economic_draft_number


class AuditRow(db.Model):
    """One step of one attempt of a sync run: what was done, what was sent, how it ended."""

    __tablename__ = "audit_rows"
    __table_args__ = (db.Index("ix_audit_rows_run", "run_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column()
    step: Mapped[str] = mapped_column(String(30))
    outcome: Mapped[str] = mapped_column(String(20))  # found, created, skipped, failed, done
    numbers: Mapped[str | None] = mapped_column(String(500))
    summary: Mapped[str | None] = mapped_column(db.Text)  # JSON: mapped values sent, what was cut, …
    error: Mapped[str | None] = mapped_column(db.Text)
    duration_ms: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CustomerLink(db.Model):
    """A Stripe customer known to be this e-conomic customer number: repeat customers cost no lookups."""

    __tablename__ = "customer_links"
    __table_args__ = (db.UniqueConstraint("merchant_id", "stripe_customer_id", name="uq_customer_links_merchant_customer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    stripe_customer_id: Mapped[str] = mapped_column(String(255))
    economic_customer_number: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProductLink(db.Model):
    """A Stripe product known to be this e-conomic product number."""

    __tablename__ = "product_links"
    __table_args__ = (db.UniqueConstraint("merchant_id", "stripe_product_id", name="uq_product_links_merchant_product"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    stripe_product_id: Mapped[str] = mapped_column(String(255))
    economic_product_number: Mapped[str] = mapped_column(String(25))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VatMapping(db.Model):
    """A VAT treatment found on the merchant's Stripe invoices ("DK 25 %", "EU reverse charge", …) and the
    e-conomic VAT zone (and, optionally, product group) its documents use. See portal.sync.vat."""

    __tablename__ = "vat_mappings"
    __table_args__ = (db.UniqueConstraint("merchant_id", "treatment", name="uq_vat_mappings_merchant_treatment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    treatment: Mapped[str] = mapped_column(String(80))  # portal.sync.vat.Treatment.key
    vat_zone_number: Mapped[int | None] = mapped_column()
    product_group_number: Mapped[int | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class JournalSettings(db.Model):
    """Journal entries: which money movements after the invoice are entered in e-conomic, in which journal,
    on which accounts, with which texts. One row per merchant; everything off until the merchant turns
    a kind on and chooses its accounts."""

    __tablename__ = "journal_settings"

    # Placeholders the entry texts may use, filled from the Stripe object the entry is for.
    TEXT_PLACEHOLDERS = TEXT_PLACEHOLDERS
    DEFAULT_TEXTS = DEFAULT_TEXTS

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), unique=True)
    payments_enabled: Mapped[bool] = mapped_column(default=False)
    refunds_enabled: Mapped[bool] = mapped_column(default=False)
    credit_notes_enabled: Mapped[bool] = mapped_column(default=False)
    payouts_enabled: Mapped[bool] = mapped_column(default=False)  # the payout and Stripe's fees in it
    journal_number: Mapped[int | None] = mapped_column()
    stripe_balance_account: Mapped[int | None] = mapped_column()  # a clearing account for money held by Stripe
    bank_account: Mapped[int | None] = mapped_column()  # where payouts arrive
    fees_account: Mapped[int | None] = mapped_column()  # Stripe's fees (an expense account)
    payment_text: Mapped[str] = mapped_column(String(250), default=DEFAULT_TEXTS["payment_text"])
    refund_text: Mapped[str] = mapped_column(String(250), default=DEFAULT_TEXTS["refund_text"])
    fee_text: Mapped[str] = mapped_column(String(250), default=DEFAULT_TEXTS["fee_text"])
    payout_text: Mapped[str] = mapped_column(String(250), default=DEFAULT_TEXTS["payout_text"])
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Backfill(db.Model):
    """A merchant's request to sync past Stripe invoices created in a date range."""

    __tablename__ = "backfills"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    stripe_account_id: Mapped[int] = mapped_column(ForeignKey("stripe_accounts.id", ondelete="CASCADE"))
    date_from: Mapped[date] = mapped_column(db.Date)
    date_to: Mapped[date] = mapped_column(db.Date)
    status: Mapped[str] = mapped_column(String(20), default="listing")  # listing, syncing, done, failed
    invoices_listed: Mapped[int] = mapped_column(default=0)
    runs_created: Mapped[int] = mapped_column(default=0)
    already_synced: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(db.Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the listing job's lease
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@functools.cache
def _insert_if_absent_statement(dialect: str, table: sa.Table, unique: tuple[str, ...], where: str | None) -> sa.Insert:
    """Built once per table: the webhook path runs it on every delivery, and building costs more than running."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(
        index_elements=list(unique), index_where=sa.text(where) if where else None).returning(table.c.id)


def insert_if_absent(model, values: dict, unique: list[str], on: Session | sa.Connection | None = None,
                     where: str | None = None) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the new row's id, or None when the unique key exists.

    One statement, no savepoint: the database's unique constraint decides between concurrent requests.
    `on` is the session (the default) or a Core connection to run it on; `where` the predicate of a
    partial unique index.
    """
    executor = db.session if on is None else on
    table = model.__table__
    dialect = (on if isinstance(on, sa.Connection) else db.engine).dialect.name
    if dialect in ("postgresql", "sqlite"):
        return executor.execute(_insert_if_absent_statement(dialect, table, tuple(unique), where), values).scalar()
    try:  # pragma: no cover - other databases: the portable (slower) savepoint
        with executor.begin_nested():
            result = executor.execute(sa.insert(table), values)
    except IntegrityError:
        return None
    return result.inserted_primary_key[0]


class Invitation(db.Model):
    """A one-time link for someone to join the merchant's team with a role; only the token's hash is kept."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(20), default=Role.MEMBER)  # Role
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the link's token, hex
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    invited_by_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    merchant: Mapped[Merchant] = relationship()


class AuditArea(str, enum.Enum):
    """What an audit event is about."""

    SETTINGS = "settings"
    CONNECTION = "connection"
    USER = "user"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return {"settings": "Settings", "connection": "Connections", "user": "Users"}[self.value]


class AuditEvent(db.Model):
    """Who changed which setting, connection or user, and when: old and new values, never a secret."""

    __tablename__ = "audit_events"
    __table_args__ = (db.Index("ix_audit_events_merchant_id_id", "merchant_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_email: Mapped[str] = mapped_column(String(254))  # kept when the user is removed; "command line", …
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    area: Mapped[str] = mapped_column(String(20))  # AuditArea
    action: Mapped[str] = mapped_column(String(40))  # created, changed, removed, …
    subject: Mapped[str] = mapped_column(String(300))  # "Invoice Sync Rules", "anna@bikes.dk", …
    changes: Mapped[str] = mapped_column(db.Text, default="[]")  # JSON: [{"field", "old", "new"} | {"field", "secret": true}]


class EconomicInstallState(db.Model):
    """One "Connect e-conomic" round trip: the state sent to e-conomic inside the redirect URL, kept only as
    its SHA-256. It comes back once, to the user who started it, within its lifetime; `used_at` is set by
    a conditional UPDATE, so a replay finds it used even when two returns race."""

    __tablename__ = "economic_install_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
