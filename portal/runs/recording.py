"""The database side of the sync engine: its reports become the run's columns and audit rows, and the
links it remembers (Stripe customer → e-conomic customer, product → product) become rows."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..models import AuditRow, CustomerLink, ProductLink, RunKind, RunStatus, SyncRun, utcnow

# Built once: the worker runs them for every invoice, and a statement built anew costs SQLAlchemy its cache
# key again (about 0.1 ms, more than SQLite takes to run it).
_UPDATE_RUN = update(SyncRun.__table__).where(SyncRun.__table__.c.id == bindparam("run_id"))
_INSERT_AUDIT_ROW = insert(AuditRow.__table__)
_CUSTOMER_LINK = select(CustomerLink.economic_customer_number).where(
    CustomerLink.merchant_id == bindparam("merchant_id"), CustomerLink.stripe_customer_id == bindparam("key"))
_PRODUCT_LINK = select(ProductLink.economic_product_number).where(
    ProductLink.merchant_id == bindparam("merchant_id"), ProductLink.stripe_product_id == bindparam("key"))
# A step's outcomes that say something was made or changed in e-conomic or Stripe ("found" can be found again).
MADE_OUTCOMES = frozenset({"created", "done"})


class DatabaseRecorder:
    """The engine's reports (`portal.sync.engine.Recorder`) as the run's columns and audit rows.

    Reports are gathered, then written together (the run's columns in one UPDATE, the audit rows in one
    INSERT, one commit):
    - before the engine calls out again: the clients it is given call `save` before every request;
    - at a step that made or changed something in e-conomic or Stripe: its number and its audit row are
      one commit, the moment they are known;
    - when the attempt ends (`save` by the job, before the run's status).
    So a killed worker loses nothing it made, and nothing that was known before its last call out.
    """

    def __init__(self, run: SyncRun) -> None:
        self.run = run
        self.run_id, self.merchant_id, self.attempt = run.id, run.merchant_id, run.attempts
        self._columns: dict[str, Any] = {}
        self._rows: list[dict[str, Any]] = []

    def save(self, commit: bool = True) -> None:
        """Write what was reported since the last save, and commit it (without `commit`, the caller's next
        commit does)."""
        if self._columns:
            db.session.execute(_UPDATE_RUN.values(**self._columns), {"run_id": self.run_id})
        if self._rows:
            db.session.execute(_INSERT_AUDIT_ROW, self._rows)
        if commit and (self._columns or self._rows):
            db.session.commit()
        self._columns, self._rows = {}, []

    def _keep(self, **columns: Any) -> None:
        # Kept for the next save. The run's object is told the values at once (it is what the job reads),
        # without the ORM taking them for changes of its own to flush.
        self._columns.update(columns)
        for name, value in columns.items():
            set_committed_value(self.run, name, value)

    def invoice_fetched(self, number: str | None, customer_name: str | None, customer_email: str | None,
                        currency: str | None, total_minor: int | None) -> None:
        self._keep(stripe_invoice_number=number, customer_name=customer_name, customer_email=customer_email,
                   currency=currency, total_minor=total_minor)

    def customer_known(self, number: int) -> None:
        self._keep(economic_customer_number=number)

    def document_create_started(self) -> None:
        self._keep(document_create_started=True)

    def draft_known(self, document_type: str, number: int) -> None:
        if document_type == "draft_order":
            self._keep(economic_order_number=number)
        else:
            self._keep(economic_draft_number=number)

    def invoice_booked(self, number: int) -> None:
        self._keep(economic_booked_number=number)

    def held_draft_discarded(self) -> None:
        self._keep(discard_draft_number=None)

    def credit_note_due(self) -> None:
        self._keep(needs_credit_note=True)

    # -- journal entries (portal.sync.ledger.EntryRecorder) --

    def entry_described(self, invoice_number: str | None, customer_name: str | None, currency: str,
                        amount_minor: int) -> None:
        self._keep(stripe_invoice_number=invoice_number, customer_name=customer_name,
                   currency=currency.upper(), total_minor=amount_minor)

    def voucher_create_started(self) -> None:
        self._keep(document_create_started=True)

    def voucher_known(self, journal_number: int, accounting_year: str, voucher_number: int) -> None:
        self._keep(economic_journal_number=journal_number, economic_accounting_year=accounting_year,
                   economic_voucher_number=voucher_number)

    def step(self, step: str, outcome: str, *, numbers=None, summary=None, error=None, duration_ms: int = 0) -> None:
        self._rows.append({
            "run_id": self.run_id, "merchant_id": self.merchant_id, "attempt": self.attempt, "step": step,
            "outcome": outcome, "numbers": numbers, "error": error, "duration_ms": duration_ms, "created_at": utcnow(),
            "summary": json.dumps(summary, ensure_ascii=False, default=str) if summary else None,
        })
        if outcome in MADE_OUTCOMES:
            self.save()


class DatabaseBooks:
    """What the database knows of the invoices and payments of one of a merchant's Stripe accounts, for
    journal entries (portal.sync.ledger.Books)."""

    def __init__(self, merchant_id: int, stripe_account_id: int) -> None:
        self.merchant_id, self.stripe_account_id = merchant_id, stripe_account_id

    def booked_invoice(self, stripe_invoice_id: str) -> tuple[int, int] | None:
        row = db.session.execute(select(SyncRun.economic_customer_number, SyncRun.economic_booked_number).where(
            SyncRun.merchant_id == self.merchant_id, SyncRun.stripe_account_id == self.stripe_account_id,
            SyncRun.kind == RunKind.INVOICE,
            SyncRun.stripe_object_id == stripe_invoice_id, SyncRun.superseded_by.is_(None))).first()
        if row is None or row.economic_booked_number is None or row.economic_customer_number is None:
            return None
        return row.economic_customer_number, row.economic_booked_number

    def payment_entered(self, stripe_payment_ref: str) -> bool | None:
        statuses = db.session.scalars(select(SyncRun.status).where(
            SyncRun.merchant_id == self.merchant_id, SyncRun.stripe_account_id == self.stripe_account_id,
            SyncRun.kind == RunKind.PAYMENT, SyncRun.stripe_payment_ref == stripe_payment_ref, SyncRun.superseded_by.is_(None))).all()
        if not statuses:
            return None
        return all(status == RunStatus.SUCCEEDED for status in statuses)

    def invoices_of_payments(self, stripe_payment_refs: list[str]) -> dict[str, tuple[str, str | None]]:
        found: dict[str, tuple[str, str | None]] = {}
        for start in range(0, len(stripe_payment_refs), 500):
            for row in db.session.execute(select(SyncRun.stripe_payment_ref, SyncRun.stripe_invoice_id, SyncRun.stripe_invoice_number).where(
                    SyncRun.merchant_id == self.merchant_id, SyncRun.stripe_account_id == self.stripe_account_id,
                    SyncRun.kind == RunKind.PAYMENT, SyncRun.stripe_payment_ref.in_(stripe_payment_refs[start:start + 500]))):
                found[row.stripe_payment_ref] = (row.stripe_invoice_id, row.stripe_invoice_number)
        return found


class DatabaseLinks:
    """The merchant's links, Stripe customer → e-conomic customer and Stripe product → e-conomic product. A
    link read in this run and remembered unchanged is not written again."""

    def __init__(self, merchant_id: int) -> None:
        self.merchant_id = merchant_id
        self._read: dict[tuple[type, str], Any] = {}

    def customer_number(self, stripe_customer_id: str) -> int | None:
        number = db.session.scalar(_CUSTOMER_LINK, {"merchant_id": self.merchant_id, "key": stripe_customer_id})
        self._read[CustomerLink, stripe_customer_id] = number
        return number

    def remember_customer(self, stripe_customer_id: str, number: int) -> None:
        self._remember(CustomerLink, "stripe_customer_id", stripe_customer_id, "economic_customer_number", number)

    def product_number(self, stripe_product_id: str) -> str | None:
        number = db.session.scalar(_PRODUCT_LINK, {"merchant_id": self.merchant_id, "key": stripe_product_id})
        self._read[ProductLink, stripe_product_id] = number
        return number

    def remember_product(self, stripe_product_id: str, number: str) -> None:
        self._remember(ProductLink, "stripe_product_id", stripe_product_id, "economic_product_number", number)

    def _remember(self, model, key_name: str, key: str, value_name: str, value) -> None:
        if value is not None and self._read.get((model, key)) == value:
            return
        row = db.session.scalar(select(model).where(model.merchant_id == self.merchant_id, getattr(model, key_name) == key))
        if row is None:
            try:
                with db.session.begin_nested():
                    db.session.add(model(merchant_id=self.merchant_id, **{key_name: key, value_name: value}))
            except IntegrityError:
                return
        else:
            setattr(row, value_name, value)
        db.session.commit()
        self._read[model, key] = value
