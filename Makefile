# The two commands of the README: `make demo` and `make test`.
# Each creates the virtualenv it needs in .venv (PYTHON picks the interpreter).

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/stateshift demo

test: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The benchmarks get their own virtualenv: DBOS and temporalio are compared
# against, never installed with the test extras. BENCH_ARGS=--quick for a smoke run.
# PYTHONPATH=src: the runner measures this tree even when the venv is shared.
BENCH_VENV ?= .venv-bench
BENCH_BIN = $(BENCH_VENV)/bin

$(BENCH_VENV)/.installed: pyproject.toml bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install -q --upgrade pip
	$(BENCH_BIN)/pip install -q -e '.[postgres]' -r bench/requirements.txt
	touch $@

bench: $(BENCH_VENV)/.installed
	PYTHONPATH=src $(BENCH_BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
