#!/usr/bin/env bash
# Quick start, command 1: install, then run PostgreSQL (embedded unless DATABASE_URL is set),
# the Dagster webserver and daemon; the inbox sensor loads whatever lands in data/inbox/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/granula up "$@"
