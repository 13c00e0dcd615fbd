"""products.quantity as BIGINT: a cancellation can always give its stock back

Revision ID: d7e1f3a5b2c4
Revises: c4d2e8f1a9b3
Create Date: 2026-12-07 00:00:00

The API keeps a product's stock at most 2**31 - 1 when it is created or
restocked, but units held by orders that can still be cancelled come back on
top of that: with an INTEGER column, giving them back could overflow, which
rolled the whole cancellation back, every other line's return included, until
the event was dead-lettered. BIGINT holds any sum of returns this system can
make. (PostgreSQL rewrites the table, under an exclusive lock, once.)
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'd7e1f3a5b2c4'
down_revision = 'c4d2e8f1a9b3'
branch_labels = None
depends_on = None


def upgrade():
    op.alter_column('products', 'quantity', type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)


def downgrade():
    op.alter_column('products', 'quantity', type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
