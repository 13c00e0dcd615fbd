#!/bin/sh
# PostgreSQL init script: the postgres image runs it once, on an empty data
# directory, from /docker-entrypoint-initdb.d (see docker-compose.yml).
#
# Database per service: users, products and orders each get a database owned by a
# login role of the same name. PUBLIC loses CONNECT on them, so a service's role
# can't even open another service's database; only the owner (and the superuser)
# can. Since PostgreSQL 15 the public schema belongs to the database owner, so each
# role can run its own migrations and nothing else.
#
# Passwords come from POSTGRES_USERS_PASSWORD, POSTGRES_PRODUCTS_PASSWORD and
# POSTGRES_ORDERS_PASSWORD; the defaults are for local development only.
#
# Only `set -e`, not `-u`: should the file lose its executable bit, the image
# sources it into its own entrypoint, which must not inherit nounset.
set -e

create_service_database() {
    # psql's :"name" and :'password' quote the values as identifier and literal.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        --set=name="$1" --set=password="$2" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
}

create_service_database users "${POSTGRES_USERS_PASSWORD:-users-dev}"
create_service_database products "${POSTGRES_PRODUCTS_PASSWORD:-products-dev}"
create_service_database orders "${POSTGRES_ORDERS_PASSWORD:-orders-dev}"
