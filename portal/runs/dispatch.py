"""The dispatch pass: events the webhook stored are handed to RQ, one job each.

The webhook intake only verifies and stores (one INSERT; it never talks to Redis). Every worker runs this
pass a few times a second (worker.py, DISPATCH_EVERY_SECONDS): it claims the waiting events in the
database — atomically, so two workers never queue one event twice — and queues their jobs, a batch per
Redis round trip. The database is the outbox: an event stored while Redis or every worker is away simply
waits, and is queued by the first pass that can.
"""

from __future__ import annotations

from .queueing import events_enqueue
from .services import events_dispatch_claim, events_dispatch_unclaim, events_waiting

DISPATCH_BATCH = 500


def events_dispatch() -> int:
    """Queue a job for every stored event still waiting for one, oldest first. Returns how many were queued.

    Events whose jobs Redis refused are given back, for the next pass (Redis away: `events_enqueue` logs it).
    """
    if not events_waiting():
        return 0
    queued = 0
    while True:
        event_ids = events_dispatch_claim(DISPATCH_BATCH)
        if not event_ids:
            return queued
        if not events_enqueue(event_ids):
            events_dispatch_unclaim(event_ids)
            return queued
        queued += len(event_ids)
        if len(event_ids) < DISPATCH_BATCH:
            return queued
