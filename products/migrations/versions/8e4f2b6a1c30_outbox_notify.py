"""the outbox NOTIFYs its relay when a transaction that added to it commits

Revision ID: 8e4f2b6a1c30
Revises: b9aed5c00482
Create Date: 2026-12-01 23:00:00

The relay LISTENs on channel "outbox" (common/messaging/outbox.py: CHANNEL):
it publishes within milliseconds of a commit and costs nothing while idle. A
statement-level trigger fires once per INSERT however many rows it adds, and
PostgreSQL folds identical notifications of one transaction into one, delivered
at commit (and not at all on rollback).
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '8e4f2b6a1c30'
down_revision = 'b9aed5c00482'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        """
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('outbox', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute("CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()")


def downgrade():
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION outbox_notify()")
