# issuegraph — `make run` serves the API on demo data; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKERS ?= 1

.PHONY: run reset test install assets schema check lint typecheck bench clean

run: install assets
	$(BIN)/python -m server run --workers $(WORKERS)

# Drop the data (embedded, or DATABASE_URL's) and load the demo data again at SEED_SCALE.
reset: install
	$(BIN)/python -m server reset

test: install assets
	$(BIN)/python -m pytest

install: $(STAMP)

# pip and setuptools say a lot: their output goes to $(VENV)/install.log, shown only when
# the install fails.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing issuegraph and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/python -m pip install --upgrade pip \
		&& $(BIN)/python -m pip install -e '.[dev]'; } >$(VENV)/install.log 2>&1 \
		|| { cat $(VENV)/install.log; echo "make: pip install failed (above)"; exit 1; }
	@touch $(STAMP)

assets:
	@bash scripts/fetch_graphiql.sh

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
