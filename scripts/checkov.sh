#!/usr/bin/env bash
# Static analysis of infra/ with checkov, offline, in its own virtual environment (.venv-checkov)
# so its many pins never touch the app's. Exits non-zero on any failed check or any Bicep file
# checkov could not parse (checkov itself would report a parse failure and still exit 0).
# Every skipped check is justified by a `// checkov:skip=ID: reason` comment in the Bicep.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION="3.3.30"
PYTHON="${PYTHON:-python3.11}"
VENV=".venv-checkov"
STAMP="$VENV/.installed-$CHECKOV_VERSION"

if [ ! -f "$STAMP" ]; then
  command -v "$PYTHON" >/dev/null || { echo "$PYTHON not found" >&2; exit 1; }
  test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  touch "$STAMP"
fi

start=$(date +%s)
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
# --skip-download: no Bridgecrew/Prisma policy download, no network.
# BC_SKIP_MAPPING: no check-id mapping download; SKIP_PACKAGE_UPDATE_CHECK: no PyPI version probe.
set +e
BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE \
  "$VENV/bin/checkov" -d infra --framework bicep --skip-download --quiet --compact \
  --skip-results-upload >"$report" 2>&1
status=$?
set -e
cat "$report"
elapsed=$(( $(date +%s) - start ))

if grep -q "Parsing errors" "$report"; then
  echo "checkov: some Bicep files could not be parsed (see above)" >&2
  exit 1
fi
if ! grep -q "Passed checks:" "$report"; then
  echo "checkov: no results (no Bicep found?)" >&2
  exit 1
fi
summary="$(grep -m1 "Passed checks:" "$report")"
echo "checkov: ${summary} (${elapsed}s)"
exit "$status"
