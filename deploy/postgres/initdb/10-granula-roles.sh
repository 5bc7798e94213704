#!/bin/sh
# Run once by the postgres image, as its superuser, on an empty data volume: the roles Granula and
# Dagster connect as, neither a superuser, each owning its own database, and granula_reader for BI.
# PUBLIC loses CONNECT and TEMPORARY on every database: a role connects where it is granted to.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v granula_password="$GRANULA_DB_PASSWORD" -v dagster_password="$DAGSTER_DB_PASSWORD" <<'SQL'
CREATE ROLE granula LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'granula_password';
CREATE ROLE dagster LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'dagster_password';
CREATE ROLE granula_reader NOLOGIN;
CREATE DATABASE granula OWNER granula;
CREATE DATABASE dagster OWNER dagster;
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE granula FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE dagster FROM PUBLIC;
GRANT CONNECT ON DATABASE granula TO granula_reader;
SQL
