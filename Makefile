# issuegraph — `make run` serves the API on demo data; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKERS ?= 1

.PHONY: run test install assets schema check lint typecheck bench clean

run: install assets
	$(BIN)/python -m server run --workers $(WORKERS)

test: install assets
	$(BIN)/python -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

assets:
	bash scripts/fetch_graphiql.sh

schema: install
	$(BIN)/python -m server schema schema.graphql

lint: install
	$(BIN)/ruff check core loaders domain execution resolvers server tests bench
	$(BIN)/ruff format --check core loaders domain execution resolvers server tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: install
	bash scripts/install_wrk.sh
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build server/static/graphiql .pgdata .pgdata-test
