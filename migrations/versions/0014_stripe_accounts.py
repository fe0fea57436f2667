"""several Stripe accounts per merchant

Revision ID: 0014_stripe_accounts
Revises: 0013_webhook_endpoint
Create Date: 2026-11-30 14:00:00

A merchant's Stripe key, signing secret, webhook endpoint and webhook URL move from `connections` and
`merchants` to `stripe_accounts`, one row per Stripe account. Every merchant gets one account holding
what it had (its webhook URL keeps working: the key moves with it; the encrypted secrets are copied as
they are). Events, runs and backfills name their account; a run is unique per (merchant, account, kind,
object).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014_stripe_accounts'
down_revision = '0013_webhook_endpoint'
branch_labels = None
depends_on = None

CURRENT = "superseded_by IS NULL"
NAMED = "stripe_account_ref IS NOT NULL"
TABLES = ('webhook_events', 'sync_runs', 'backfills')


def upgrade():
    op.create_table(
        'stripe_accounts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('merchant_id', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=100), nullable=False),
        sa.Column('webhook_key', sa.String(length=64), nullable=False),
        sa.Column('secret_key', sa.String(length=1024), nullable=True),
        sa.Column('webhook_secret', sa.String(length=1024), nullable=True),
        sa.Column('webhook_endpoint_id', sa.String(length=255), nullable=True),
        sa.Column('stripe_account_ref', sa.String(length=255), nullable=True),
        sa.Column('stripe_account_name', sa.String(length=255), nullable=True),
        sa.Column('livemode', sa.Boolean(), nullable=True),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('check_ok', sa.Boolean(), nullable=True),
        sa.Column('check_message', sa.String(length=1000), nullable=True),
        sa.Column('fixed_currency', sa.String(length=3), nullable=True),
        sa.Column('layout_number', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_stripe_accounts_merchant_id_merchants'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_accounts')),
        sa.UniqueConstraint('webhook_key', name=op.f('uq_stripe_accounts_webhook_key')),
    )
    with op.batch_alter_table('stripe_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stripe_accounts_merchant_id'), ['merchant_id'], unique=False)
        batch_op.create_index('uq_stripe_accounts_merchant_account', ['merchant_id', 'stripe_account_ref'], unique=True,
                              sqlite_where=sa.text(NAMED), postgresql_where=sa.text(NAMED))

    bind = op.get_bind()
    bind.execute(sa.text(
        "INSERT INTO stripe_accounts (merchant_id, label, webhook_key, secret_key, webhook_secret, webhook_endpoint_id, "
        "created_at, updated_at) "
        "SELECT m.id, 'Stripe', m.webhook_key, c.stripe_secret_key, c.stripe_webhook_secret, c.stripe_webhook_endpoint_id, "
        "m.created_at, m.created_at FROM merchants m LEFT JOIN connections c ON c.merchant_id = m.id"))

    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('stripe_account_id', sa.Integer(), nullable=True))
        bind.execute(sa.text(
            f"UPDATE {table} SET stripe_account_id = (SELECT a.id FROM stripe_accounts a WHERE a.merchant_id = {table}.merchant_id)"))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('stripe_account_id', existing_type=sa.Integer(), nullable=False)
            batch_op.create_foreign_key(batch_op.f(f'fk_{table}_stripe_account_id_stripe_accounts'), 'stripe_accounts',
                                        ['stripe_account_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_events_account', ['stripe_account_id', 'id'])
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('uq_sync_runs_object')
        batch_op.create_index('uq_sync_runs_object', ['merchant_id', 'stripe_account_id', 'kind', 'stripe_object_id'],
                              unique=True, sqlite_where=sa.text(CURRENT), postgresql_where=sa.text(CURRENT))
        batch_op.create_index('ix_sync_runs_account_updated', ['stripe_account_id', 'updated_at', 'id'])

    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_column('stripe_webhook_endpoint_id')
        batch_op.drop_column('stripe_webhook_secret')
        batch_op.drop_column('stripe_secret_key')
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.drop_constraint('uq_merchants_webhook_key', type_='unique')
        batch_op.drop_column('webhook_key')


def downgrade():
    """Back to one Stripe account per merchant: the first account's secrets and URL are kept; the runs and
    events of the others are deleted (they cannot be told apart without their account)."""
    bind = op.get_bind()
    first = "(SELECT MIN(a.id) FROM stripe_accounts a WHERE a.merchant_id = {0}.merchant_id)"
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_key', sa.String(length=64), nullable=True))
    bind.execute(sa.text(
        "UPDATE merchants SET webhook_key = COALESCE((SELECT a.webhook_key FROM stripe_accounts a WHERE a.id = "
        "(SELECT MIN(b.id) FROM stripe_accounts b WHERE b.merchant_id = merchants.id)), 'whk_m' || id)"))
    with op.batch_alter_table('merchants', schema=None) as batch_op:
        batch_op.alter_column('webhook_key', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint('uq_merchants_webhook_key', ['webhook_key'])
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_secret_key', sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column('stripe_webhook_secret', sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column('stripe_webhook_endpoint_id', sa.String(length=255), nullable=True))
    for column, source in (('stripe_secret_key', 'secret_key'), ('stripe_webhook_secret', 'webhook_secret'),
                           ('stripe_webhook_endpoint_id', 'webhook_endpoint_id')):
        bind.execute(sa.text(f"UPDATE connections SET {column} = (SELECT a.{source} FROM stripe_accounts a "
                             f"WHERE a.id = {first.format('connections')})"))
    for table in TABLES:
        bind.execute(sa.text(f"DELETE FROM {table} WHERE stripe_account_id <> {first.format(table)}"))
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_runs_account_updated')
        batch_op.drop_index('uq_sync_runs_object')
        batch_op.create_index('uq_sync_runs_object', ['merchant_id', 'kind', 'stripe_object_id'], unique=True,
                              sqlite_where=sa.text(CURRENT), postgresql_where=sa.text(CURRENT))
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_events_account')
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'fk_{table}_stripe_account_id_stripe_accounts', type_='foreignkey')
            batch_op.drop_column('stripe_account_id')
    with op.batch_alter_table('stripe_accounts', schema=None) as batch_op:
        batch_op.drop_index('uq_stripe_accounts_merchant_account')
        batch_op.drop_index(batch_op.f('ix_stripe_accounts_merchant_id'))
    op.drop_table('stripe_accounts')
