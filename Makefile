# Two commands for a fresh machine: `make run` and `make test`. Both install what is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
LOCK := requirements.lock.txt
APP_PINS := $(VENV)/app-pins.txt
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: run test lint typecheck bench install clean checkov lock chromium

# The deployed app's dependencies come from the hash-pinned lock only (every file checked against
# its sha256; scripts/lock.sh regenerates it). The dev tools then install under constraints equal
# to the lock's pins, so they can never move an app package to another version. (The constraints
# are the pins without hashes: a hash in a constraints file would demand hashes for the dev tools.)
$(PY_STAMP): requirements.txt $(LOCK) requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes -r $(LOCK)
	sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*==[^ ;\\]*\).*/\1/p' $(LOCK) > $(APP_PINS)
	$(PIP) -r requirements-dev.txt -c $(APP_PINS)
	$(PIP) --no-deps -e .
	$(PY) -m pip check
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(PY_STAMP) $(NODE_STAMP)

run: install
	PITCREW_QUOTA_AUTO_INCREASE=$${PITCREW_QUOTA_AUTO_INCREASE:-true} \
	  $(VENV)/bin/pitcrew dev --policy examples/pitcrew.demo.yaml --allow-dev-principal

# checkov runs first, in its own virtual environment (.venv-checkov), so pytest's summary is
# the last line of the output.
# The suite runs in TEST_WORKERS processes (pytest-xdist) sharing one Azurite: a test mostly waits
# on Azurite, the local endpoints and its receivers, so more workers than the 2 cores still pay.
TEST_WORKERS ?= 4

test: install chromium
	scripts/checkov.sh
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# The console's browser tests (tests/browser) drive Debian's chromium through Playwright for Python
# (its wheel carries the driver; no browser is ever downloaded). CI runs as root, so apt-get works;
# if it cannot, the browser tests fail and say so.
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) \
		|| echo "could not install chromium (apt-get): the browser tests will fail" >&2

checkov:
	scripts/checkov.sh

# Regenerate requirements.lock.txt after a change to requirements.txt (`make lock`), or move every
# pin to the newest allowed version (`scripts/lock.sh --upgrade`).
lock:
	scripts/lock.sh

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy pitcrew pitcrew_dev functions function_app.py

# Every bench, small sizes, each on its own fresh Azurite; one table (bench/README.md).
bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .azurite .pitcrew
