# mlauto: the two commands a fresh machine needs are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: venv run test test-fast bench mlflow-ui tracking-server lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

venv: $(BIN)/.installed

## Set up, then run every stage on the bundled dataset; serves until Ctrl-C (ARGS="serve.blocking=false" returns).
run: venv
	$(BIN)/mlauto experiment=quickstart $(ARGS)

## Set up, then run the whole test suite, slow end-to-end tests included.
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Everything but the slow end-to-end tests.
test-fast: venv
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## Serving latency of the endpoint against a bare FastAPI baseline, measured in the same run.
bench: venv
	$(BIN)/python bench/serve_latency.py $(ARGS)

## MLflow's UI over the default store.
mlflow-ui: venv
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/runs/mlflow.db --port 5000

## An MLflow tracking server on a local PostgreSQL (for tracking=server): runs in runs/tracking, artifacts
## proxied to ROOT/mlartifacts (ROOT=s3://bucket/prefix works too); Ctrl-C stops both. Needs PostgreSQL installed.
ROOT ?= runs
tracking-server: venv
	$(BIN)/python -m mlauto.track.server --dir $(CURDIR)/runs/tracking --root $(ROOT) --port 5000

clean:
	rm -rf $(VENV) runs .pytest_cache
