"""journal entries: runs of other kinds (payments, refunds, credit notes, payouts) and their settings

Revision ID: 0011_journal_entries
Revises: 0010_event_dispatch
Create Date: 2026-11-30 11:40:00

A run now names the Stripe object it enters (`kind`, `stripe_object_id`) and is unique per merchant, kind
and object; existing runs are invoice runs of their invoice. A payout has no invoice, so the invoice
column may be empty. Journal entries record their voucher; a run may wait for another (a payment for
its invoice to be booked). Journal settings hold the journal, the accounts and the entry texts.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011_journal_entries'
down_revision = '0010_event_dispatch'
branch_labels = None
depends_on = None

CURRENT = "superseded_by IS NULL"
UNFINISHED_BEFORE = "status IN ('queued', 'running', 'retrying')"
UNFINISHED = "status IN ('queued', 'running', 'retrying', 'waiting')"


def upgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=20), nullable=False, server_default='invoice'))
        batch_op.add_column(sa.Column('stripe_object_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('economic_journal_number', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('economic_accounting_year', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('economic_voucher_number', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('waiting_for', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('stripe_payment_ref', sa.String(length=255), nullable=True))
    runs = sa.table('sync_runs', sa.column('stripe_object_id'), sa.column('stripe_invoice_id'))
    op.get_bind().execute(runs.update().values(stripe_object_id=runs.c.stripe_invoice_id))
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.alter_column('stripe_object_id', existing_type=sa.String(length=255), nullable=False)
        batch_op.alter_column('stripe_invoice_id', existing_type=sa.String(length=255), nullable=True)
        batch_op.drop_index('uq_sync_runs_invoice')
        batch_op.create_index('uq_sync_runs_object', ['merchant_id', 'kind', 'stripe_object_id'], unique=True,
                              sqlite_where=sa.text(CURRENT), postgresql_where=sa.text(CURRENT))
        batch_op.create_index('ix_sync_runs_invoice', ['merchant_id', 'stripe_invoice_id'])
        batch_op.create_index('ix_sync_runs_payment_ref', ['merchant_id', 'stripe_payment_ref'])
        batch_op.drop_index('ix_sync_runs_waiting')
        batch_op.create_index('ix_sync_runs_waiting', ['updated_at'], sqlite_where=sa.text(UNFINISHED),
                              postgresql_where=sa.text(UNFINISHED))

    op.create_table(
        'journal_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('merchant_id', sa.Integer(), nullable=False),
        sa.Column('payments_enabled', sa.Boolean(), nullable=False),
        sa.Column('refunds_enabled', sa.Boolean(), nullable=False),
        sa.Column('credit_notes_enabled', sa.Boolean(), nullable=False),
        sa.Column('payouts_enabled', sa.Boolean(), nullable=False),
        sa.Column('journal_number', sa.Integer(), nullable=True),
        sa.Column('stripe_balance_account', sa.Integer(), nullable=True),
        sa.Column('bank_account', sa.Integer(), nullable=True),
        sa.Column('fees_account', sa.Integer(), nullable=True),
        sa.Column('payment_text', sa.String(length=250), nullable=False),
        sa.Column('refund_text', sa.String(length=250), nullable=False),
        sa.Column('fee_text', sa.String(length=250), nullable=False),
        sa.Column('payout_text', sa.String(length=250), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('merchant_id'),
    )


def downgrade():
    op.drop_table('journal_settings')
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_runs_waiting')
        batch_op.create_index('ix_sync_runs_waiting', ['updated_at'], sqlite_where=sa.text(UNFINISHED_BEFORE),
                              postgresql_where=sa.text(UNFINISHED_BEFORE))
        batch_op.drop_index('ix_sync_runs_payment_ref')
        batch_op.drop_index('ix_sync_runs_invoice')
        batch_op.drop_index('uq_sync_runs_object')
    op.get_bind().execute(sa.text("DELETE FROM sync_runs WHERE kind <> 'invoice'"))
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index('uq_sync_runs_invoice', ['merchant_id', 'stripe_invoice_id'], unique=True,
                              sqlite_where=sa.text(CURRENT), postgresql_where=sa.text(CURRENT))
        batch_op.alter_column('stripe_invoice_id', existing_type=sa.String(length=255), nullable=False)
        batch_op.drop_column('stripe_payment_ref')
        batch_op.drop_column('waiting_for')
        batch_op.drop_column('economic_voucher_number')
        batch_op.drop_column('economic_accounting_year')
        batch_op.drop_column('economic_journal_number')
        batch_op.drop_column('stripe_object_id')
        batch_op.drop_column('kind')
