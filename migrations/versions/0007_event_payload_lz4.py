"""webhook event payloads compressed with lz4 on PostgreSQL

Revision ID: 0007_event_payload_lz4
Revises: 0006_history_indexes
Create Date: 2026-11-25 11:20:00

Every delivery stores the event's JSON (typically 5-10 KB), which PostgreSQL compresses on insert.
Its default, pglz, took about a third of the database's CPU per delivery; lz4 (PostgreSQL 14+)
costs a fraction of that for a similar size. Only new rows are affected; SQLite is unchanged, and a
server built without lz4 keeps pglz.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_event_payload_lz4'
down_revision = '0006_history_indexes'
branch_labels = None
depends_on = None


def _set_payload_compression(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or bind.dialect.server_version_info < (14,):
        return
    try:
        with bind.begin_nested():
            op.execute(f"ALTER TABLE webhook_events ALTER COLUMN payload SET COMPRESSION {method}")
    except sa.exc.DBAPIError:  # a server built without lz4 support
        pass


def upgrade():
    _set_payload_compression("lz4")


def downgrade():
    _set_payload_compression("pglz")
