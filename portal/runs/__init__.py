"""Sync runs: from a Stripe event to one e-conomic document per invoice.

    rules.py      which event, under the merchant's Invoice Sync Rules, makes which run
    services.py   create a run; how an attempt ended (succeeded, held, failed, skipped, retry); the manual
                  actions (Sync again, Book anyway, Sync this invoice now)
    dispatch.py   the workers' dispatch pass: events the webhook stored, claimed and queued as jobs
    queueing.py   RQ: job ids and enqueueing; Redis is only the messenger
    jobs.py       the functions RQ runs: claim a run, drive the sync engine, record the outcome
    recording.py  the engine's reports as the run's columns, audit rows and remembered links
    recovery.py   the requeue pass: runs whose job was lost, or whose worker died, are queued again
    backfill.py   past invoices over a date range, listed through Stripe, each made a run

Imports point one way: jobs → services → queueing → models; nothing here imports a screen.
"""

from .jobs import sync_run_job  # noqa: E402,F401  (jobs queued before this package existed name portal.runs.sync_run_job)
