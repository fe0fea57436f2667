"""e-conomic app-install flow

Revision ID: 0015_economic_install
Revises: 0014_stripe_accounts
Create Date: 2026-11-30 14:00:00

"Connect e-conomic" sends the merchant to e-conomic's grant page with a single-use state, kept here as its
hash (`economic_install_states`). A connection remembers the agreement its tokens open (company name and
agreement number, from `/self`), when it was connected, and the last check's outcome. Existing connections
have none of these until their next Test connection.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015_economic_install'
down_revision = '0014_stripe_accounts'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('economic_company_name', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('economic_agreement_number', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('economic_connected_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('economic_checked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('economic_check_ok', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('economic_check_message', sa.String(length=1000), nullable=True))

    op.create_table(
        'economic_install_states',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('merchant_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('state_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_economic_install_states_merchant_id_merchants'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_economic_install_states_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_economic_install_states')),
        sa.UniqueConstraint('state_hash', name=op.f('uq_economic_install_states_state_hash')),
    )
    with op.batch_alter_table('economic_install_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_economic_install_states_merchant_id'), ['merchant_id'], unique=False)


def downgrade():
    with op.batch_alter_table('economic_install_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_economic_install_states_merchant_id'))
    op.drop_table('economic_install_states')

    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_column('economic_check_message')
        batch_op.drop_column('economic_check_ok')
        batch_op.drop_column('economic_checked_at')
        batch_op.drop_column('economic_connected_at')
        batch_op.drop_column('economic_agreement_number')
        batch_op.drop_column('economic_company_name')
