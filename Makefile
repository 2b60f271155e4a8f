# Two commands for a newcomer: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Integration tests mostly wait on containers: three workers keep two cores busy.
PYTEST_WORKERS ?= 3

.PHONY: demo test unit tools engine images venv bench demo-clean clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# shellcheck and a local redis-server for tests/program (installed from Debian's packages when missing)
tools:
	@scripts/test-tools.sh

engine:
	@scripts/docker-engine.sh start >/dev/null

images: venv engine
	$(PY) -m tests.hosts.build

## Provision and verify two local Docker test hosts (Debian 12 and 13), print the summary.
demo: images
	$(PY) -m tests.hosts.demo

## The whole suite: unit, command-level and integration tests on real Docker hosts.
test: images tools
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile tests

## Unit, command-level and host-program tests (a local redis-server, no Docker). Four workers on two
## cores: the host-program tests mostly wait on redis-server starting and stopping.
unit: venv tools
	$(PY) -m pytest -n 4 tests/unit tests/commands tests/program

## hsi-redis against a minimal 5-operation deploy on 1, 10 and 20 fresh hosts (BENCH_ARGS="--hosts 1 2").
bench: images
	$(PY) bench/compare.py $(BENCH_ARGS)

demo-clean:
	$(PY) -m tests.hosts.demo --remove

clean: demo-clean
	$(PY) -m tests.hosts.fleet --remove-all
