"""Operator commands that belong to no single screen."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import String, literal, select, type_coerce, update

from .crypto import secret_box
from .extensions import db
from .models import Connection, StripeAccount
from .runs.recovery import event_payloads_prune, sync_run_requeue_pending

secrets_cli = AppGroup("secrets", help="Manage the encryption of stored API secrets.")


@secrets_cli.command("rotate")
def secrets_rotate_command() -> None:
    """Re-encrypt every stored secret with the first key in ENCRYPTION_KEYS.

    Put the new key first in ENCRYPTION_KEYS, keep the old ones after it, run this, then drop the old keys.
    """
    box = secret_box()
    rotated = 0
    for model in (Connection, StripeAccount):
        table = model.__table__
        # Read and write the raw tokens (typed as plain strings), so nothing is decrypted on the way.
        raw_columns = [type_coerce(table.c[name], String) for name in model.SECRET_FIELDS]
        for row in db.session.execute(select(table.c.id, *raw_columns)).all():
            values = {
                name: literal(box.rotate(token), String)
                for name, token in zip(model.SECRET_FIELDS, row[1:], strict=True)
                if token
            }
            if values:
                db.session.execute(update(table).where(table.c.id == row[0]).values(**values))
                rotated += len(values)
    db.session.commit()
    click.echo(f"Re-encrypted {rotated} secret(s) with the first key.")


runs_cli = AppGroup("runs", help="Sync runs.")


@runs_cli.command("requeue")
def runs_requeue_command() -> None:
    """Queue every run that is pending without a job (Redis was down) or whose worker died."""
    click.echo(f"Queued {sync_run_requeue_pending()} run(s).")


@runs_cli.command("prune")
def runs_prune_command() -> None:
    """Empty the bodies of Stripe events older than EVENT_PAYLOAD_RETENTION_DAYS (the requeue pass does it too)."""
    total = 0
    while pruned := event_payloads_prune():
        total += pruned
    click.echo(f"Emptied {total} event payload(s).")
