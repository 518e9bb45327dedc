# mlauto: the two commands a fresh machine needs are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: venv venv-autogluon run test test-fast test-integration test-e2e bench mlflow-ui tracking-server lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

venv: $(BIN)/.installed

## Set up, then run every stage on the bundled dataset; serves until Ctrl-C (ARGS="serve.blocking=false" returns).
run: venv
	$(BIN)/mlauto experiment=quickstart $(ARGS)

## Set up, then run the whole test suite: unit, integration and the slow end-to-end tests (the
## chaos_full, cluster and package tiers run in their own pytest processes, see .ci/run).
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The unit tier only (tests/unit): no Ray, under a minute (spread over the cores with pytest-xdist).
test-fast: venv
	$(BIN)/python -m pytest tests/unit -n auto $(PYTEST_ARGS)

## The integration tier (tests/integration): starts one local Ray for the session.
test-integration: venv
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

## The slow end-to-end tier (tests/e2e): the quickstart and every experiment, through the real launcher.
test-e2e: venv
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

## Serving latency of the endpoint against a bare FastAPI baseline, measured in the same run.
bench: venv
	$(BIN)/python bench/serve_latency.py $(ARGS)

## AutoGluon-Tabular for bench/automl_suite.py --tools autogluon, in a virtualenv of its own (its pins,
## ray<2.59 among them, clash with mlauto's); torch for its neural networks, CPU build.
venv-autogluon:
	$(PYTHON) -m venv .venv-autogluon
	.venv-autogluon/bin/pip install --quiet --upgrade pip
	.venv-autogluon/bin/pip install --quiet 'autogluon.tabular[lightgbm,xgboost,catboost]==1.6.*' 'torch==2.13.0' 'numpy<2'

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
