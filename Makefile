# The two commands of the README: `make run` and `make test`. Both set everything up on a fresh machine
# with only Python 3.11+ and pip (a virtualenv in .venv with exactly the versions of requirements-dev.lock,
# then the project itself installed editable without resolving anything).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements-dev.lock

.PHONY: install lock run test test-fast lint typecheck importcheck schema-check model bench clean

# Re-runs when pyproject.toml or the lock changes; `pip check` fails when pyproject.toml names a dependency
# the lock lacks (run `make lock`).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -c 'import sys; sys.exit("Bookbag needs Python 3.11+") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

## Re-resolve requirements-dev.lock from pyproject.toml (the main and dev dependencies, for Python 3.11),
## keeping the locked versions that still fit; `make lock UPGRADE=1` takes the newest versions allowed.
## Then `make install`, and check the fast paths' tested versions (bookbag/fast_paths.py).
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv>=0.5'
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --quiet -o $(LOCK) $(if $(UPGRADE),--upgrade)

## Run the service with demo data on the embedded SQLite database (var/bookbag.sqlite3).
run: install
	$(BIN)/bookbag serve --demo

## Lint, type-check, check the import direction and the committed schema, then run the whole test suite.
test: install lint typecheck importcheck
	$(BIN)/python -m pytest -q

## The quick lane while working: no browser, no multi-process or slow tests, no lint (`make test` runs all).
test-fast: install
	$(BIN)/python -m pytest -q -m "not browser and not slow and not processes"

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
