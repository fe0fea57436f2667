"""team roles, invitations and the audit log

Revision ID: 0016_team_roles_audit
Revises: 0015_economic_install
Create Date: 2026-11-30 14:00:00

`users.is_admin` becomes `users.role` (owner, admin, member): admins stay admins, and each merchant's
earliest admin (or, without admins, its earliest user) becomes its owner. Invitations keep only a hash of
their link's token. The audit log records who changed which setting, connection or user.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016_team_roles_audit'
down_revision = '0015_economic_install'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=20), server_default='member', nullable=False))

    users = sa.table('users', sa.column('id', sa.Integer), sa.column('merchant_id', sa.Integer),
                     sa.column('is_admin', sa.Boolean), sa.column('role', sa.String))
    connection = op.get_bind()
    connection.execute(users.update().where(users.c.is_admin == sa.true()).values(role='admin'))
    rows = connection.execute(sa.select(users.c.id, users.c.merchant_id, users.c.is_admin).order_by(users.c.id)).all()
    owners: dict[int, tuple[int, bool]] = {}  # merchant id: (user id, was an admin)
    for user_id, merchant_id, is_admin in rows:  # the earliest admin, else the earliest user
        chosen = owners.get(merchant_id)
        if chosen is None or (is_admin and not chosen[1]):
            owners[merchant_id] = (user_id, bool(is_admin))
    for user_id, _was_admin in owners.values():
        connection.execute(users.update().where(users.c.id == user_id).values(role='owner'))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('is_admin')

    op.create_table(
        'invitations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('merchant_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('invited_by_id', sa.Integer(), nullable=True),
        sa.Column('invited_by_email', sa.String(length=254), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_invitations_merchant_id_merchants'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['invited_by_id'], ['users.id'], name=op.f('fk_invitations_invited_by_id_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_invitations')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_invitations_token_hash')),
    )
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitations_merchant_id'), ['merchant_id'], unique=False)

    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('merchant_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('actor_email', sa.String(length=254), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('area', sa.String(length=20), nullable=False),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('changes', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_audit_events_merchant_id_merchants'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_audit_events_user_id_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_merchant_id_id', ['merchant_id', 'id'], unique=False)


def downgrade():
    op.drop_table('audit_events')
    op.drop_table('invitations')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_admin', sa.Boolean(), server_default=sa.false(), nullable=False))
    users = sa.table('users', sa.column('role', sa.String), sa.column('is_admin', sa.Boolean))
    op.get_bind().execute(users.update().where(users.c.role.in_(('owner', 'admin'))).values(is_admin=True))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('role')
