# Two commands for a fresh machine: `make run` and `make test`. Both install what is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test lint typecheck bench install clean checkov

$(PY_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(PY_STAMP) $(NODE_STAMP)

run: install
	$(VENV)/bin/pitcrew dev --policy examples/pitcrew.demo.yaml --allow-dev-principal

# checkov runs first, in its own virtual environment (.venv-checkov), so pytest's summary is
# the last line of the output.
test: install
	scripts/checkov.sh
	$(PY) -m pytest -q

checkov:
	scripts/checkov.sh

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy pitcrew functions function_app.py

bench: install
	$(PY) bench/cold_start.py
	$(PY) bench/intake.py
	$(PY) bench/rotation.py
	$(PY) bench/replay.py --messages 2000 --memory-messages 20000

clean:
	rm -rf $(VENV) node_modules .azurite .pitcrew
