#!/usr/bin/env bash
# Create .venv (if missing) and install Granula with its development tools into it.
# The install is skipped when pyproject.toml and this script are unchanged since the last one that
# succeeded in this .venv (a stamp holding their hash); GRANULA_REINSTALL=1 installs anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
STAMP=.venv/.granula-install-stamp
WANT=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "${GRANULA_REINSTALL:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
rm -f "$STAMP"
# pip's and the build backend's notices go to a log, shown only if the install fails.
LOG=.venv/install.log
echo "Granula: installing into .venv (a few minutes the first time; log: $LOG)" >&2
if ! { .venv/bin/python -m pip install --quiet --upgrade pip &&
  .venv/bin/python -m pip install --quiet -e ".[dev,deploy,embedded]"; } >"$LOG" 2>&1; then
  cat "$LOG" >&2
  echo "Granula: the install failed (above, and in $LOG)" >&2
  exit 1
fi
echo "$WANT" > "$STAMP"
