PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
TEST_WORKERS ?= 3  # on 2 cores: many tests wait on real timers (docs/development.md)
# The tests start many `tidings` processes: with bytecode written (even where the environment
# says PYTHONDONTWRITEBYTECODE), each imports tidings' compiled modules instead of compiling them again.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

.PHONY: install install-test run test test-fast screenshots bench lint docs clean constraints

# `make run` installs what running needs (`pip install -e .`); the test tools, the PostgreSQL
# driver and the Redis client come with `make test` (`.[test]`, which pulls in both extras).
install: $(STAMP)

install-test: $(TEST_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $(STAMP)

# `.[test]` includes everything `.` installs: the run stamp is fresh too afterwards.
$(TEST_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP) $(TEST_STAMP)

run: install
	$(BIN)/tidings init --if-missing
	$(BIN)/tidings serve

test: install-test lint
	$(PYTEST) -q -n $(TEST_WORKERS)

test-fast: install-test
	$(PYTEST) -q -n $(TEST_WORKERS) -m "not slow"

# the web UI's tests, writing each checked page at 1280 and 375 px into build/ui-screenshots/
screenshots: install-test
	TIDINGS_SCREENSHOTS=build/ui-screenshots $(PYTEST) -q -n $(TEST_WORKERS) tests/ui

bench: install-test
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/middleware.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/faulty.py
	$(BIN)/python bench/cli_start.py
	$(BIN)/python bench/redact.py
	$(BIN)/python bench/authz.py
	$(BIN)/python bench/config_reload.py
	$(BIN)/python bench/sync.py

lint: install-test
	$(BIN)/ruff check src tests bench

# the reference in docs/ as a static site in ./site (the suite builds it too, with --strict)
docs: install-test
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info .pytest_cache

# After changing dependencies in pyproject.toml: install them, run the suite, then record the versions.
constraints: install-test
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^tidings'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
