"""initial schema

Revision ID: 33a531739915
Revises: 
Create Date: 2026-11-24 01:42:02.539172

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '33a531739915'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('processed_events',
    sa.Column('event_id', sa.Uuid(as_uuid=False), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_processed_events'))
    )
    op.create_table('products',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('price', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('price > 0', name=op.f('ck_products_price_positive')),
    sa.CheckConstraint('quantity >= 0', name=op.f('ck_products_quantity_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products'))
    )


def downgrade():
    op.drop_table('products')
    op.drop_table('processed_events')
