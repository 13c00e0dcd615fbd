"""reservations (what products-worker did per order), product revisions (ETags), idempotency keys

Revision ID: c4d2e8f1a9b3
Revises: b9aed5c00482
Create Date: 2026-12-02 00:00:00

Orders stocked before this have no reservations row. A cancellation of such an
order finds none and leaves a CANCELLED tombstone without giving anything back;
orders placed before this release can't be cancelled (orders refuses them:
see orders' migration of the same day), so that never happens.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'c4d2e8f1a9b3'
down_revision = 'b9aed5c00482'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('reservations',
    sa.Column('order_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('taken', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('RESERVED', 'REJECTED', 'RELEASED', 'CANCELLED')", name=op.f('ck_reservations_status_known')),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_reservations'))
    )
    op.add_column('products', sa.Column('revision', sa.Integer(), server_default=sa.text('1'), nullable=False))
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
    op.drop_column('products', 'revision')
    op.drop_table('reservations')
