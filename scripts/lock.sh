#!/usr/bin/env bash
# Regenerates requirements.lock.txt: every package the deployed app installs (requirements.txt and
# all its transitive dependencies), pinned to one version with the sha256 of each published file,
# resolved for CPython 3.11 on Linux (the Flex Consumption runtime). `make test`, `make run` and the
# deploy package (scripts/package_app.py) install from it with `pip install --require-hashes`.
#
#   scripts/lock.sh                                  keep the current pins, add/drop what changed
#   scripts/lock.sh --upgrade                        newest versions within requirements.txt
#   scripts/lock.sh --upgrade-package azure-identity one package (and what it needs)
#
# pip-tools runs from a throwaway virtual environment outside the repository, so it never enters
# the app's or the dev environment. It reads the index pip is configured with (pip config list).
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_TOOLS_VERSION="7.6.2"
PYTHON="${PYTHON:-python3.11}"
VENV="${PITCREW_PIP_TOOLS_VENV:-${TMPDIR:-/tmp}/pitcrew-pip-tools-$PIP_TOOLS_VERSION}"

command -v "$PYTHON" >/dev/null || { echo "$PYTHON not found: the lock is resolved for Python 3.11" >&2; exit 1; }
"$PYTHON" - <<'PY'
import platform, sys
if sys.version_info[:2] != (3, 11) or platform.system() != "Linux":
    sys.exit(f"lock.sh must run on CPython 3.11 on Linux (the Flex Consumption runtime), not "
             f"{platform.python_implementation()} {platform.python_version()} on {platform.system()}")
PY

if [ ! -x "$VENV/bin/pip-compile" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pip-tools==$PIP_TOOLS_VERSION"
fi

CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "$VENV/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --output-file requirements.lock.txt "$@" requirements.txt
echo "requirements.lock.txt: $(grep -c '^[A-Za-z0-9]' requirements.lock.txt) packages pinned with hashes"
