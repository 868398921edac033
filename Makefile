PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 2

.PHONY: install run test test-fast bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/tidings init --if-missing
	$(BIN)/tidings serve

test: install lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

test-fast: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow"

bench: install
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/middleware.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/faulty.py

lint: install
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
