#!/usr/bin/env bash
# Quick start, command 2: install, make sure PostgreSQL is up, lint, check the import contracts,
# run the whole test suite. Arguments go to pytest: `scripts/test.sh -m "not slow"` is the fast tier.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/ensure_postgres.sh
.venv/bin/ruff check granula_pipeline granula_pipeline_tests scripts
# The import contracts of pyproject's [tool.importlinter]: lib free of Dagster and the web stack,
# api free of Dagster.
.venv/bin/lint-imports --no-cache
# Types: strict on the engine (lib/), checked everywhere else (pyproject's [tool.mypy]).
.venv/bin/mypy
# The UI test drives Debian's Chromium through Playwright (no browser download needed).
if [ -z "${GRANULA_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ] && [ "$(id -u)" -eq 0 ] \
    && command -v apt-get >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    || echo "test.sh: could not install chromium; the UI test will fail" >&2
fi
.venv/bin/python -m pytest "$@"
