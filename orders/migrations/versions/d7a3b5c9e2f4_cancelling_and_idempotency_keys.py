"""cancelled orders; idempotency keys

Revision ID: d7a3b5c9e2f4
Revises: ec1fcb4faab6
Create Date: 2026-12-02 00:00:00

Orders that exist already are marked not cancellable: products began recording
what it takes per order (its reservations table) in the same release, so it
could not give back what it took for them.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'd7a3b5c9e2f4'
down_revision = 'ec1fcb4faab6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True))
        # false for the rows there now, true for every new one.
        batch_op.add_column(sa.Column('cancellable', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.alter_column('cancellable', server_default=sa.true())
        batch_op.drop_constraint(op.f('ck_orders_status_known'), type_='check')
        batch_op.create_check_constraint('status_known', "status IN ('PENDING', 'CONFIRMED', 'REJECTED', 'CANCELLED')")
    op.create_table('idempotency_keys',
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('headers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'key', name=op.f('pk_idempotency_keys'))
    )


def downgrade():
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_orders_status_known'), type_='check')
        batch_op.create_check_constraint('status_known', "status IN ('PENDING', 'CONFIRMED', 'REJECTED')")
        batch_op.drop_column('cancellable')
        batch_op.drop_column('cancelled_at')
