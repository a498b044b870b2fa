# The two commands of the README: `make demo` (the main job on the bundled example) and
# `make test` (every check: lint, format, types, layers, tests). Both create .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo demo-blocked demo-recs demo-loop test lint types layers unit security audit-deps data bench clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[examples]'
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.base
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

examples/retail/data/.done: examples/retail/simulate.py | $(VENV)/.base
	$(BIN)/python examples/retail/simulate.py --out examples/retail/data
	touch $@

examples/flights/data/.done: examples/flights/prepare.py | $(VENV)/.base
	$(BIN)/python examples/flights/prepare.py --out examples/flights/data
	touch $@

examples/shop-recs/data/.done: examples/shop-recs/simulate.py | $(VENV)/.base
	$(BIN)/python examples/shop-recs/simulate.py --out examples/shop-recs/data
	touch $@

data: examples/retail/data/.done examples/flights/data/.done examples/shop-recs/data/.done

# The main job: the deployment sprint on the bundled retail example, embedded backends only
# (DuckDB, SQLite, files). It checks the sources, trains against the baseline, audits, serves
# the candidate in a subprocess (smoke test, load test, fault drill), checks governance, and
# writes the debrief to examples/retail/.taxiway/report/. Exit 1 only means "not deployed"
# (the example's sign-offs are not recorded: the debrief says who must sign); 2 and above is
# an error. The data ends on 2025-12-31, so the sprint acts as of that day.
RETAIL := examples/retail/taxiway.yaml
demo: $(VENV)/.base examples/retail/data/.done
	@$(BIN)/taxiway sprint -f $(RETAIL) --as-of 2025-12-31 \
		--report examples/retail/.taxiway/report; status=$$?; [ $$status -le 1 ]

# The same sprint on examples/blocked: a source the role cannot read, a leaking input, no
# owner, missing sign-offs. Its debrief names each with the fix (path 2). demo.py writes the
# leaking table and, on the PostgreSQL server at 127.0.0.1:5432 (database test, trust auth; or
# BLOCKED_ADMIN_URL), creates the CRM table and a role that cannot read it, so the fix is the
# GRANT; with no server there it says so and the blocker is the failed connection.
demo-blocked: $(VENV)/.base examples/retail/data/.done
	@$(BIN)/python examples/blocked/demo.py --report examples/blocked/.taxiway/report; \
		status=$$?; [ $$status -le 1 ]

# The sprint on examples/shop-recs: a recommender (EASE, item-to-item, popularity in the user's
# segment, popularity) trained on a time split and judged against popularity, its audit,
# /v1/recommend served, smoke- and load-tested, fault drills, the recommendation monitor and its
# fallback drill. Exit 1 means "not deployed": the example's sign-offs are not recorded (path 2:
# the debrief names each with its fix). The load test (one worker, 8 connections) and the two
# fault drills (the model down, the model slow: every answer from the fallbacks) are within the
# 50 ms budget as the clients see it.
demo-recs: $(VENV)/.base examples/shop-recs/data/.done
	@$(BIN)/taxiway sprint -f examples/shop-recs/taxiway.yaml --as-of 2025-12-31 \
		--report examples/shop-recs/.taxiway/report; status=$$?; [ $$status -le 1 ]

# The retraining loop (docs/retraining.md), embedded backends only: a shop whose customers
# change behaviour, simulated once (seeded), then time advances and `taxiway run`'s scheduler
# ticks three times: a cadence retrain that rolls out, a retrain the monitor's drift alert
# triggers that beats production, and one worse than production that stops with the figures;
# then `taxiway models history`. In examples/retail/.loop (rebuilt each run); ~1 CPU-minute
# (118 s wall on a loaded 2-core machine).
demo-loop: $(VENV)/.base
	@cd examples/retail && ../../$(BIN)/python loop.py

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

types: $(VENV)/.dev
	$(BIN)/mypy

layers: $(VENV)/.dev
	$(BIN)/lint-imports

# bandit over the source: a finding fails with its file, line and check (docs/security.md).
# `make test` runs the same check as tests/security/test_static.py.
security: $(VENV)/.dev
	$(BIN)/bandit -c pyproject.toml -r src -q 2>$(VENV)/bandit.log || { cat $(VENV)/bandit.log; exit 1; }

# Known vulnerabilities in the installed dependencies: pip-audit asks PyPI's advisory API over
# the network, so it is not part of `make test` (no network here; docs/security.md).
audit-deps: $(VENV)/.dev
	$(BIN)/pip freeze --exclude-editable > $(VENV)/requirements.lock
	$(BIN)/pip-audit --strict --no-deps --disable-pip --desc on -r $(VENV)/requirements.lock

unit: $(VENV)/.dev
	$(BIN)/pytest

test: lint types layers unit

bench: $(VENV)/.dev
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/contracts.py

clean:
	rm -rf $(VENV) .taxiway examples/*/.taxiway examples/*/.loop examples/*/data .mypy_cache .ruff_cache .pytest_cache
