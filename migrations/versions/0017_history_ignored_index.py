"""history: an index on each merchant's ignored events, newest first

Revision ID: 0017_history_ignored_index
Revises: 0016_team_roles_audit
Create Date: 2026-11-30 14:45:00

The Sync history lists the invoices the rules left alone (their ignored events) beside the runs, newest
first; this partial index lets that read seek the page's time range instead of reading every event.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017_history_ignored_index'
down_revision = '0016_team_roles_audit'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_events_ignored', ['merchant_id', 'received_at', 'id'], unique=False,
                              sqlite_where=sa.text("outcome = 'ignored'"), postgresql_where=sa.text("outcome = 'ignored'"))


def downgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_events_ignored', sqlite_where=sa.text("outcome = 'ignored'"),
                            postgresql_where=sa.text("outcome = 'ignored'"))
