"""Indexes for the pruning of the bookkeeping tables (common/retention.py)

Revision ID: f2c6a9d3b8e1
Revises: d7a3b5c9e2f4
Create Date: 2026-12-07 13:00:00

The relay prunes each table by a time column once a minute; without an index
each prune would read the whole table. Built CONCURRENTLY, outside the
migration's transaction: a plain CREATE INDEX would stop the services' writes to
these tables for as long as the build takes on a large table.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'f2c6a9d3b8e1'
down_revision = 'd7a3b5c9e2f4'
branch_labels = None
depends_on = None

INDEXES = [
    ('ix_processed_events_processed_at', 'processed_events', ['processed_at'], {}),
    ('ix_idempotency_keys_created_at', 'idempotency_keys', ['created_at'], {}),
    ('ix_outbox_sent', 'outbox', ['published_at'], {'postgresql_where': sa.text('published_at IS NOT NULL')}),
]


def upgrade():
    with op.get_context().autocommit_block():
        for name, table, columns, options in INDEXES:
            op.create_index(name, table, columns, postgresql_concurrently=True, **options)


def downgrade():
    with op.get_context().autocommit_block():
        for name, table, _, _ in reversed(INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
