"""The dispatch pass: events the webhook stored are handed to RQ, one job each.

The webhook intake only verifies and stores (one INSERT; it never talks to Redis). Every worker runs this
pass a few times a second (worker.py, DISPATCH_EVERY_SECONDS): it claims the waiting events in the
database — atomically, so two workers never queue one event twice — and queues their jobs, a batch per
Redis round trip. The database is the outbox: an event stored while Redis or every worker is away simply
waits, and is queued by the first pass that can.
"""

from __future__ import annotations

from redis.exceptions import RedisError

from .queueing import events_queue
from .services import events_dispatch_claim, events_dispatch_unclaim, events_waiting

DISPATCH_BATCH = 500


def events_dispatch() -> int:
    """Queue a job for every stored event still waiting for one, oldest first. Returns how many were queued.

    When Redis is away the events just claimed are given back, for the next pass, and Redis's error is raised:
    the worker's loop reports it once for the whole outage rather than five times a second.
    """
    if not events_waiting():
        return 0
    queued = 0
    while True:
        event_ids = events_dispatch_claim(DISPATCH_BATCH)
        if not event_ids:
            return queued
        try:
            events_queue(event_ids)
        except (RedisError, OSError):
            events_dispatch_unclaim(event_ids)
            raise
        queued += len(event_ids)
        if len(event_ids) < DISPATCH_BATCH:
            return queued
