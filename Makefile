# The two commands of the README: `make demo` (the main job on the bundled example) and
# `make test` (every check: lint, format, types, layers, tests). Both create .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint types layers unit data bench clean

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

data: examples/retail/data/.done examples/flights/data/.done

# The main job on the bundled example, until `taxiway sprint` exists: check the sources,
# train against the baseline (building the point-in-time training set), materialize the online
# store, prove there is no skew, and run the handoff audit (its report lands in
# examples/retail/.taxiway/audit/; exit 1 on a blocker is reported, not fatal, for the demo).
RETAIL := examples/retail/taxiway.yaml
demo: $(VENV)/.base examples/retail/data/.done
	$(BIN)/taxiway check -f $(RETAIL)
	$(BIN)/taxiway train -f $(RETAIL)
	$(BIN)/taxiway features materialize -f $(RETAIL) --as-of 2025-12-31
	$(BIN)/taxiway features skew -f $(RETAIL) --sample 500
	$(BIN)/taxiway audit -f $(RETAIL) --out examples/retail/.taxiway/audit || \
		echo "the audit found blockers: see examples/retail/.taxiway/audit/audit.md"

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

types: $(VENV)/.dev
	$(BIN)/mypy

layers: $(VENV)/.dev
	$(BIN)/lint-imports

unit: $(VENV)/.dev
	$(BIN)/pytest

test: lint types layers unit

bench: $(VENV)/.dev
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/contracts.py

clean:
	rm -rf $(VENV) .taxiway examples/*/.taxiway examples/*/data .mypy_cache .ruff_cache .pytest_cache
