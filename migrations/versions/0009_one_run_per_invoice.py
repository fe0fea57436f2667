"""one run per Stripe invoice; events decided by a job

Revision ID: 0009_one_run_per_invoice
Revises: 0008_held_runs_vat_mappings
Create Date: 2026-11-30 09:30:00

A run is now unique per (merchant, Stripe invoice): a later trigger advances it instead of making a
second document. Invoices that already have runs of two document types keep them all; the one that
went furthest in e-conomic (booked, then a draft invoice, then a draft order, then the newest) stays
current and the others are marked `superseded_by` it. Events are stored first and decided by a job:
partial indexes let the requeue pass find waiting events and unfinished runs at any table size. A
running run's worker renews `heartbeat_at`, so a run whose worker died is taken back within a minute.
Event payloads past their retention are emptied oldest first, found by a partial index of those kept.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_one_run_per_invoice'
down_revision = '0008_held_runs_vat_mappings'
branch_labels = None
depends_on = None

CURRENT = "superseded_by IS NULL"
UNFINISHED = "status IN ('queued', 'running', 'retrying')"
WAITING = "outcome = 'received'"
KEPT = "payload <> ''"


def _rank(row) -> tuple:
    return (row.economic_booked_number is not None, row.economic_draft_number is not None,
            row.economic_order_number is not None, row.id)


def upgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('superseded_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('backfills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))

    bind = op.get_bind()
    runs = sa.table('sync_runs', sa.column('id'), sa.column('merchant_id'), sa.column('stripe_invoice_id'),
                    sa.column('economic_booked_number'), sa.column('economic_draft_number'),
                    sa.column('economic_order_number'), sa.column('superseded_by'))
    doubled = bind.execute(sa.select(runs.c.merchant_id, runs.c.stripe_invoice_id)
                           .group_by(runs.c.merchant_id, runs.c.stripe_invoice_id).having(sa.func.count() > 1)).all()
    for merchant_id, invoice_id in doubled:
        rows = bind.execute(sa.select(runs).where(runs.c.merchant_id == merchant_id,
                                                  runs.c.stripe_invoice_id == invoice_id)).all()
        kept = max(rows, key=_rank)
        bind.execute(runs.update().where(runs.c.id.in_([r.id for r in rows if r.id != kept.id]))
                     .values(superseded_by=kept.id))

    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_constraint('uq_sync_runs_invoice_document', type_='unique')
        batch_op.create_index('uq_sync_runs_invoice', ['merchant_id', 'stripe_invoice_id'], unique=True,
                              sqlite_where=sa.text(CURRENT), postgresql_where=sa.text(CURRENT))
        batch_op.create_index('ix_sync_runs_waiting', ['updated_at'], unique=False,
                              sqlite_where=sa.text(UNFINISHED), postgresql_where=sa.text(UNFINISHED))
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_events_received', ['received_at'], unique=False,
                              sqlite_where=sa.text(WAITING), postgresql_where=sa.text(WAITING))
        batch_op.create_index('ix_webhook_events_payload_kept', ['received_at'], unique=False,
                              sqlite_where=sa.text(KEPT), postgresql_where=sa.text(KEPT))


def downgrade():
    with op.batch_alter_table('backfills', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_events_payload_kept')
        batch_op.drop_index('ix_webhook_events_received')
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_runs_waiting')
        batch_op.drop_index('uq_sync_runs_invoice')
        batch_op.create_unique_constraint('uq_sync_runs_invoice_document', ['merchant_id', 'stripe_invoice_id', 'document_type'])
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('superseded_by')
