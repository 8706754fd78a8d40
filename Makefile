# Two entry points for people (README quick start) and one for CI; each sets itself up.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: dev test lint chaos bench clean promtool

# promtool (for the alert rules' tests) is looked for on every run, and installed when missing.
$(STAMP): pyproject.toml | promtool
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --upgrade pip
	@$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

promtool:
	@./deploy/prometheus/install-promtool.sh

## Run taskflow embedded: API and worker in one process, state in ./taskflow.db.
dev: $(STAMP)
	$(VENV)/bin/taskflow dev

## Every check: lint, types, unit, contract and integration tests.
test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)

## The chaos run alone, with its figures (lost, reexecuted, stale_accepted, recovery_s).
chaos: $(STAMP)
	$(VENV)/bin/pytest -p no:cacheprovider -m chaos -s -q tests/integration/test_chaos.py

## The benchmark against the configured PostgreSQL and Redis (see docs/performance.md), with the
## floors of ../shared/probes beside it when that directory exists.
PROBES := ../shared/probes
bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.run $(if $(wildcard $(PROBES)/.),--floors $(PROBES))

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
