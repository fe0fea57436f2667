"""held runs, VAT mappings, shipping and rounding products

Revision ID: 0008_held_runs_vat_mappings
Revises: 0007_event_payload_lz4
Create Date: 2026-11-30 09:00:00

Links that only recorded "used the default product" are forgotten, so those products are looked up again.
A run whose document differs from Stripe is now *held* with the reason and both sides' figures;
"Create a new document" starts a new generation of a run; each VAT treatment found on Stripe
invoices maps to an e-conomic VAT zone (and optionally a product group).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008_held_runs_vat_mappings'
down_revision = '0007_event_payload_lz4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totals', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('held_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('held_setting', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('generation', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('replaced_documents', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('needs_credit_note', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('discard_draft_number', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('override_reconciliation', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('sync_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shipping_product_number', sa.String(length=25), nullable=True))
        batch_op.add_column(sa.Column('rounding_product_number', sa.String(length=25), nullable=True))

    op.create_table('vat_mappings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('treatment', sa.String(length=80), nullable=False),
    sa.Column('vat_zone_number', sa.Integer(), nullable=True),
    sa.Column('product_group_number', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_vat_mappings_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vat_mappings')),
    sa.UniqueConstraint('merchant_id', 'treatment', name='uq_vat_mappings_merchant_treatment')
    )
    with op.batch_alter_table('vat_mappings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vat_mappings_merchant_id'), ['merchant_id'], unique=False)

    # Earlier versions remembered "this Stripe product used the default product" as a link, so the real
    # product was never looked for again. Forget those links; the next sync looks the product up.
    op.execute(
        "DELETE FROM product_links WHERE EXISTS (SELECT 1 FROM sync_settings AS s "
        "WHERE s.merchant_id = product_links.merchant_id AND s.default_product_number = product_links.economic_product_number)"
    )


def downgrade():
    with op.batch_alter_table('vat_mappings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vat_mappings_merchant_id'))
    op.drop_table('vat_mappings')
    with op.batch_alter_table('sync_settings', schema=None) as batch_op:
        batch_op.drop_column('rounding_product_number')
        batch_op.drop_column('shipping_product_number')
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_column('override_reconciliation')
        batch_op.drop_column('discard_draft_number')
        batch_op.drop_column('needs_credit_note')
        batch_op.drop_column('replaced_documents')
        batch_op.drop_column('generation')
        batch_op.drop_column('held_setting')
        batch_op.drop_column('held_reason')
        batch_op.drop_column('totals')
