"""Database pieces every service shares."""
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.exc import InterfaceError, OperationalError

# Stable constraint names, so Alembic migrations can find and alter them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_db(**session_options) -> SQLAlchemy:
    """Each service gets its own SQLAlchemy object, so its metadata (and so its
    migrations) holds only its own tables."""
    return SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION), session_options=session_options)


# Errors that mean "the database can't be reached right now" (down, restarting,
# connection dropped) rather than "this can never work": background loops wait
# these out instead of giving up on their work.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
