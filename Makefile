# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit conformance bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the main job: run the example order workflow and show its progress and output
run: $(STAMP)
	$(BIN)/stepflow run examples/order.asl.json --input @examples/order.input.json --handlers examples/order_handlers.py

## test: lint, type-check and the whole test suite
test: lint typecheck
	$(BIN)/python -m pytest -n 2 tests

lint: $(STAMP)
	$(BIN)/ruff check layers functions tests bench
	$(BIN)/ruff format --check layers functions tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

conformance: $(STAMP)
	$(BIN)/python ../shared/conformance/sfn_oracle.py check \
	    --cases ../shared/conformance/aws-recorded-dev.jsonl \
	    --runner tests/conformance/runner.py:run --python $(BIN)/python --pure-only

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
