"""webhook endpoint: the Stripe webhook endpoint the portal created for a merchant

Revision ID: 0013_webhook_endpoint
Revises: 0012_session_version
Create Date: 2026-12-02 10:00:00

The Connections page can create the merchant's webhook endpoint through Stripe's API; its id (`we_…`) is
kept to update its events and delete it. Existing connections have none (their endpoints were added by hand).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_webhook_endpoint'
down_revision = '0012_session_version'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_webhook_endpoint_id', sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_column('stripe_webhook_endpoint_id')
