"""A login role and a database per service, on one PostgreSQL server.

    python -m common.provision       # PG_ADMIN_URL: a superuser; <SERVICE>_DATABASE_URL: each service's

Each service's database URL names its role, password and database; this makes
them exist as named, idempotently (a new password is set, nothing is dropped).
PUBLIC loses CONNECT on each database, so a service's role can't even open
another service's database; only its owner (and the superuser) can. Since
PostgreSQL 15 the public schema belongs to the database owner, so each role can
run its own migrations and nothing else.

The native stack calls it before migrating; under docker compose a one-shot
container runs it before any service starts.
"""

import sys
from urllib.parse import unquote, urlsplit

import psycopg2
from psycopg2 import sql

from common.settings import SERVICES, admin_database_url, service_database_url


def provision(admin_url: str, database_urls: dict[str, str]) -> list[str]:
    """Create what is missing; returns the databases created."""
    created = []
    connection = psycopg2.connect(admin_url, connect_timeout=5)
    connection.autocommit = True  # CREATE DATABASE can't run in a transaction
    try:
        with connection.cursor() as cursor:
            for service, url in database_urls.items():
                parts = urlsplit(url)
                role, dbname = unquote(parts.username or service), parts.path.lstrip("/") or service
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
                if parts.password:
                    cursor.execute(
                        sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role)), (unquote(parts.password),)
                    )
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
                if cursor.fetchone() is None:
                    cursor.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(role))
                    )
                    created.append(f"{dbname} (owner {role})")
                cursor.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))
    finally:
        connection.close()
    return created


def main() -> int:
    try:
        created = provision(admin_database_url(), {service: service_database_url(service) for service in SERVICES})
    except psycopg2.Error as exc:  # unreachable, or refused: say so in one line, no trace
        print(f"provisioning the databases failed: {str(exc).strip()}", file=sys.stderr)
        return 1
    for database in created:
        print(f"created database {database}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
