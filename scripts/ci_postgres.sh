#!/usr/bin/env bash
# Start a local PostgreSQL server for the store tests and print its URL on stdout (last line).
#
# Idempotent; meant for a fresh Debian 12 machine, run as root (CI). Installs Debian's
# `postgresql` package if missing, creates and starts the cluster, then creates the role
# `nnscale` (password `nnscale`) and the database `nnscale_test` if they do not exist.
# Tests read the URL from NNSCALE_TEST_PG_URL (default: the URL printed here):
#     export NNSCALE_TEST_PG_URL="$(scripts/ci_postgres.sh | tail -n 1)"
set -euo pipefail

PG_ROLE=nnscale
PG_PASSWORD=nnscale
PG_DB=nnscale_test
PG_CLUSTER=main

log() { echo "ci_postgres: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (it installs packages and starts a system service)"
    exit 1
fi

have_server() {
    command -v pg_ctlcluster >/dev/null 2>&1 && compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if ! have_server; then
    log "installing postgresql from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

# The newest installed major version (Debian 12: 15).
PG_VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)

# Field of the cluster's line in `pg_lsclusters -h` (ver cluster port status owner datadir log),
# empty if there is no such cluster. awk reads all its input: no SIGPIPE under pipefail.
cluster_field() {
    pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" -v f="$1" '$1 == v && $2 == c {print $f}'
}

if [[ -z $(cluster_field 1) ]]; then
    log "creating cluster $PG_VERSION/$PG_CLUSTER"
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" >/dev/null
fi
if [[ $(cluster_field 4) != online ]]; then
    log "starting cluster $PG_VERSION/$PG_CLUSTER"
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
fi
PG_PORT=$(cluster_field 3)

for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PG_PORT" >&2

psql_admin() { runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }

if [[ $(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'") != 1 ]]; then
    log "creating role $PG_ROLE"
    psql_admin -c "CREATE ROLE $PG_ROLE LOGIN PASSWORD '$PG_PASSWORD'"
else
    psql_admin -c "ALTER ROLE $PG_ROLE LOGIN PASSWORD '$PG_PASSWORD'"  # known state on every run
fi
if [[ $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") != 1 ]]; then
    log "creating database $PG_DB"
    psql_admin -c "CREATE DATABASE $PG_DB OWNER $PG_ROLE"
fi

echo "postgresql://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
