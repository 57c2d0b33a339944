# The two commands of the README: `make run` and `make test`. Both set everything up on a fresh machine
# with only Python 3.11+ (a virtualenv in .venv, the project installed editable with its dev extras).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck importcheck schema-check model bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Bookbag needs Python 3.11+") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the service with demo data on the embedded SQLite database (var/bookbag.sqlite3).
run: install
	$(BIN)/bookbag serve --demo

## Lint, type-check, check the import direction and the committed schema, then run the whole test suite.
test: install lint typecheck importcheck
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

importcheck: install
	$(BIN)/lint-imports

## Rebuild the shipped default classifier model from the repository's own seed set.
model: install
	$(BIN)/bookbag classifier build-default

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
