"""Alembic environment for this service: the one all services share."""

from common import migration_env

migration_env.run()
