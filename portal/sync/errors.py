"""How a sync run can end other than with its document made: retried, failed, held, or skipped.

Shared by the engine and the line planner; the run service turns each into the run's status.
"""

from __future__ import annotations

from typing import Any


class SyncFailure(Exception):
    """A run that cannot finish now: `transient` ones are retried, the others end the run as failed."""

    def __init__(self, message: str, transient: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.retry_after = retry_after


class SettingMissing(SyncFailure):
    """A setting the merchant has not made; `anchor` names where it is set."""

    def __init__(self, setting: str, anchor: str) -> None:
        super().__init__(f"{setting} is not set (Customer & product settings).")
        self.setting = setting
        self.anchor = anchor


class SyncHeld(Exception):
    """The invoice cannot be booked as Stripe charged it: the run is held for a person to review.

    `reason` says in plain words what differs and what to do; `setting` is the anchor of the setting to
    look at; `totals` both sides' figures when a draft exists (see portal.sync.vat.Reconciliation).
    """

    def __init__(self, reason: str, setting: str | None = None, totals: dict[str, Any] | None = None,
                 summary: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.setting = setting
        self.totals = totals
        self.summary = summary


class SyncSkipped(Exception):
    """Nothing to make, for a reason that is not an error (e.g. the invoice was voided before the run)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SyncWaiting(Exception):
    """A journal entry that must wait for another run first (a payment for its invoice to be booked, a payout
    for its payments to be entered): nothing is made; the run is queued again when that happens. `reason`
    says in plain words what it waits for."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
