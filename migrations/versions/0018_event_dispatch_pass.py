"""events dispatched by the workers' pass: its index on id alone; no second index on merchant_id

Revision ID: 0018_event_dispatch_pass
Revises: 0017_history_ignored_index
Create Date: 2026-11-30 18:10:00

The webhook intake no longer wakes a dispatcher per merchant: every worker's dispatch pass claims the
waiting events of all merchants, oldest first. The partial index of waiting events is keyed by id alone,
so that claim reads the waiting events only (keyed by merchant first, SQLite scanned the whole table in
id order). The index on merchant_id alone duplicated the unique (merchant_id, stripe_event_id) index,
which serves the same lookups; each delivery's INSERT maintained both.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018_event_dispatch_pass'
down_revision = '0017_history_ignored_index'
branch_labels = None
depends_on = None

WAITING = "outcome = 'received' AND dispatched_at IS NULL"


def upgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_events_undispatched', sqlite_where=sa.text(WAITING), postgresql_where=sa.text(WAITING))
        batch_op.create_index('ix_webhook_events_undispatched', ['id'], unique=False,
                              sqlite_where=sa.text(WAITING), postgresql_where=sa.text(WAITING))
        batch_op.drop_index('ix_webhook_events_merchant_id')


def downgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_events_merchant_id', ['merchant_id'], unique=False)
        batch_op.drop_index('ix_webhook_events_undispatched', sqlite_where=sa.text(WAITING), postgresql_where=sa.text(WAITING))
        batch_op.create_index('ix_webhook_events_undispatched', ['merchant_id', 'id'], unique=False,
                              sqlite_where=sa.text(WAITING), postgresql_where=sa.text(WAITING))
