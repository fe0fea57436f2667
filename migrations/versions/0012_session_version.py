"""session version: a user's sessions can be ended server-side

Revision ID: 0012_session_version
Revises: 0011_journal_entries
Create Date: 2026-12-01 10:00:00

Every signed-in session carries the version of its user's sessions it was signed in with; signing out,
"Sign out everywhere" and a new password raise the user's version, which ends every session holding
an older one. Existing users start at 1 (sessions from before this revision carry no version, so their
holders sign in once more).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_session_version'
down_revision = '0011_journal_entries'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), nullable=False, server_default='1'))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
