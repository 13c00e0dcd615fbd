-- The postgres image runs this once, on an empty data directory: a login role
-- and a database per service, each database owned by its role and closed to
-- PUBLIC, so a service's role can't even open another service's database.
-- Since PostgreSQL 15 the public schema belongs to the database owner, so each
-- role can run its own migrations and nothing else. The passwords come from the
-- services' Secrets, through the StatefulSet's environment.
\getenv users_password USERS_PASSWORD
\getenv products_password PRODUCTS_PASSWORD
\getenv orders_password ORDERS_PASSWORD
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', name, password),
       format('CREATE DATABASE %I OWNER %I', name, name),
       format('REVOKE ALL ON DATABASE %I FROM PUBLIC', name)
FROM (VALUES ('users', :'users_password'),
             ('products', :'products_password'),
             ('orders', :'orders_password')) AS service (name, password)
\gexec
