#!/usr/bin/env bash
# Quick start, command 2: install, make sure PostgreSQL is up, lint, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/ensure_postgres.sh
.venv/bin/ruff check granula_pipeline granula_pipeline_tests scripts
.venv/bin/python -m pytest "$@"
