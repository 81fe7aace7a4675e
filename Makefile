# rules-service: every target sets up what it needs, so each works on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install install-prod run test test-unit screenshots test-sqlite test-postgres reliability bench bench-decision-log profile cpu-profile lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Production: the service and its runtime dependencies only (no test, lint or bench tools),
# into PROD_VENV (default /opt/rules-service/venv); docs/deployment.md.
PROD_VENV ?= /opt/rules-service/venv
install-prod:
	$(PYTHON) -m venv $(PROD_VENV)
	$(PROD_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PROD_VENV)/bin/python -m pip install --quiet .

run: install
	$(VENV)/bin/rules-service demo --host $(HOST) --port $(PORT)

# The whole suite on the embedded default (SQLite). `make test-postgres` runs it on PostgreSQL.
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-sqlite: test

# The unit layer alone (no database, no processes) without the tests marked slow: seconds.
test-unit: install
	$(PY) -m pytest tests/unit -m "not slow" $(PYTEST_ARGS)

# Refreshes the README's pictures on purpose: the browser test writing into docs/screenshots/
# (a plain test run writes them to a temporary directory).
screenshots: install
	RULES_SERVICE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/e2e/test_browser.py $(PYTEST_ARGS)

test-postgres: install
	RULES_SERVICE_TEST_DATABASE=postgresql $(PY) -m pytest $(PYTEST_ARGS)

# Faults injected into real servers and databases, a soak, and fuzzing (tests/reliability),
# on the database RULES_SERVICE_TEST_DATABASE names (default SQLite). CI runs it on both.
reliability: install
	$(PY) -m pytest tests/reliability $(PYTEST_ARGS)

# The whole bench in one run (< 10 min): wrk from Debian's packages, the bench extras, then
# bench/run.py on SQLite and on a throwaway PostgreSQL database (started if it is down).
bench: install $(VENV)/.bench-installed
	command -v wrk || (apt-get update && apt-get install -y wrk)
	$(PY) -m bench.run

$(VENV)/.bench-installed: pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

# Listing the decision log at 10,000,000 decisions on PostgreSQL (partitioned) and SQLite
# (one table): about 10 minutes of seeding, so not part of `make bench`.
bench-decision-log: install $(VENV)/.bench-installed
	$(PY) -m bench.decision_log --database postgresql --decisions 10000000
	$(PY) -m bench.decision_log --database sqlite --decisions 10000000

# py-spy profiles of evaluate under load, summarised into bench/profiles/LABEL-DB.txt.
profile: install $(VENV)/.bench-installed
	command -v wrk || (apt-get update && apt-get install -y wrk)
	$(PY) -m bench.profile --label $(or $(LABEL),after)

# On-CPU profiles (py-spy without idle threads, 200 Hz, engine processes included) with the
# CPU per request of the same seconds: microseconds per step -> bench/profiles/cpu-LABEL-DB.txt.
cpu-profile: install $(VENV)/.bench-installed
	command -v wrk || (apt-get update && apt-get install -y wrk)
	$(PY) -m bench.cpu_profile --label $(or $(LABEL),after)

# ruff, mypy (strict where pyproject.toml says so) and the import contracts: the layers
# api/cli > services > adapters > engine > domain > language, Flask and SQLAlchemy kept out of
# the domain and the language ([tool.importlinter] in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check rules_service api tests bench
	$(VENV)/bin/mypy rules_service api bench
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache
