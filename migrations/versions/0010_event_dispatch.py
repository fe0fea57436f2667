"""events queued in batches by a dispatcher

Revision ID: 0010_event_dispatch
Revises: 0009_one_run_per_invoice
Create Date: 2026-11-30 11:30:00

The webhook intake no longer builds an RQ job per delivery: it stores the event and wakes the merchant's
dispatcher, which claims the waiting events (`dispatched_at`) and queues their jobs in one round trip.
Events stored before this revision were queued one by one, so they count as dispatched.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_event_dispatch'
down_revision = '0009_one_run_per_invoice'
branch_labels = None
depends_on = None

UNDISPATCHED = "outcome = 'received' AND dispatched_at IS NULL"


def upgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True))
    events = sa.table('webhook_events', sa.column('dispatched_at'), sa.column('received_at'))
    op.get_bind().execute(events.update().values(dispatched_at=events.c.received_at))
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_events_undispatched', ['merchant_id', 'id'],
                              sqlite_where=sa.text(UNDISPATCHED), postgresql_where=sa.text(UNDISPATCHED))


def downgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_events_undispatched')
        batch_op.drop_column('dispatched_at')
