# Two entry points for people (README quick start) and one for CI; each sets itself up.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: dev test lint audit chaos bench clean promtool browser screenshots tools

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --upgrade pip
	@$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## What the tests need beside Python, looked for on every run and installed when missing:
## promtool (the alert rules' tests) and Debian's chromium (the dashboard's browser tests).
tools: promtool browser

promtool:
	@./deploy/prometheus/install-promtool.sh

## Headless Chromium and its driver from Debian, for the dashboard's browser tests (and its
## screenshots); installed only when missing. Nothing downloads a browser of its own. Where
## apt-get cannot run (another system, not root) it says what to install, and goes on.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && apt-get install -y --no-install-recommends chromium chromium-driver; \
	else \
		echo "make: the browser tests need /usr/bin/chromium and /usr/bin/chromedriver" \
			"(Debian: apt-get install chromium chromium-driver)" >&2; \
	fi

## The dashboard's screenshots in docs/screenshots/, taken from a `taskflow dev` with sample tasks.
screenshots: $(STAMP) | browser
	$(VENV)/bin/python -m tests.screenshots

## Run taskflow embedded: API and worker in one process, state in ./taskflow.db.
dev: $(STAMP)
	$(VENV)/bin/taskflow dev

## Every check: lint, types, unit, contract and integration tests. pytest runs two workers
## (pytest-xdist): most tests wait on the processes and servers they start, so two take about a
## third off the wall time on two cores. Two, not one per core: each worker's stacks start
## processes of their own and share the PostgreSQL's connections. --dist loadfile keeps a module
## on one worker, so its module-scoped stack starts once; --no-loadscope-reorder keeps the order
## tests/schedule.py gives them, longest first. PYTEST_ARGS=-n0 runs it serially.
test: $(STAMP) | tools
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/bandit -q -c pyproject.toml -r src examples
	$(VENV)/bin/pytest -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

## The chaos run alone, with its figures (lost, reexecuted, stale_accepted, recovery_s).
chaos: $(STAMP)
	$(VENV)/bin/pytest -p no:cacheprovider -m chaos -s -q tests/integration/test_chaos.py

## The benchmark against the configured PostgreSQL and Redis (see docs/performance.md), with the
## floors of ../shared/probes beside it when that directory exists. BENCH_ARGS adds options of
## benchmarks.run, e.g. `make bench BENCH_ARGS=--auth` (every request with an API key).
PROBES := ../shared/probes
BENCH_ARGS ?=
bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.run $(if $(wildcard $(PROBES)/.),--floors $(PROBES)) $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/bandit -q -c pyproject.toml -r src examples

## Known vulnerabilities in the installed dependencies, from PyPI's advisory data: needs
## https://pypi.org on the network, so it is not part of `make test` (docs/security.md).
## --strict: a package that could not be looked up fails the run instead of passing unseen.
audit: $(STAMP)
	$(VENV)/bin/pip-audit --strict --skip-editable --progress-spinner off

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
