"""The Alembic environment every service's migrations run in.

Each `<service>/migrations/env.py` just calls run(): Flask-Migrate has already
bound the app, so the database and the metadata come from the service's own
SQLAlchemy object and no service can migrate another's tables.
"""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

log = logging.getLogger("alembic.env")


def _skip_empty_autogenerate(migration_context, revision, directives):
    # `flask db migrate` with no model changes should write no empty revision.
    if getattr(context.config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        log.info("No changes in schema detected.")


def run() -> None:
    config = context.config
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    db = current_app.extensions["migrate"].db

    if context.is_offline_mode():
        # `flask db upgrade --sql`: print the SQL instead of running it.
        context.configure(url=db.engine.url, target_metadata=db.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    configure_args = dict(current_app.extensions["migrate"].configure_args)
    configure_args.setdefault("process_revision_directives", _skip_empty_autogenerate)
    with db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=db.metadata, **configure_args)
        with context.begin_transaction():
            context.run_migrations()
