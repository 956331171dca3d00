# Everything runs inside .venv, made from the repo's own files on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# dynalite (tools/dynalite) is the DynamoDB the concurrency tests race against.
PACKAGE := dist/streaming-file-builder.zip
DYNALITE := tools/dynalite
DYNALITE_STAMP := $(DYNALITE)/node_modules/.installed

.PHONY: venv dynalite test lint typecheck unit package demo bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(DYNALITE_STAMP): $(DYNALITE)/package.json $(wildcard $(DYNALITE)/package-lock.json)
	if [ -f $(DYNALITE)/package-lock.json ]; then \
		npm ci --prefix $(DYNALITE) --no-audit --no-fund; \
	else \
		npm install --prefix $(DYNALITE) --no-audit --no-fund; \
	fi
	touch $@

dynalite: $(DYNALITE_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(DYNALITE_STAMP)
	$(BIN)/pytest

test: lint typecheck package unit

# The deployable zip: the project and its runtime dependencies for Lambda's python3.11 on
# x86_64, no tests, no dev tools. SAM's CodeUri points at build/package.
package: $(STAMP)
	rm -rf build/package build/wheel $(PACKAGE)
	mkdir -p build/package dist
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir build/wheel .
	$(BIN)/python -m pip install --quiet --target build/package --implementation cp \
		--python-version 3.11 --platform manylinux2014_x86_64 --only-binary=:all: \
		build/wheel/*.whl
	rm -rf build/package/bin
	cd build/package && ../../$(BIN)/python -m zipfile -c ../../$(PACKAGE) .

# Many more random schedules of both backends than CI runs, each with a fresh seed; the
# statistics say how many schedules ran and how many held.
chaos: $(STAMP)
	SFB_HYPOTHESIS_PROFILE=chaos $(BIN)/pytest tests/unit/test_schedules.py \
		--hypothesis-show-statistics -q

demo: $(STAMP)
	$(BIN)/sfb demo

# Throughput, AWS requests, memory and latency, each against a baseline of the same run;
# prints a table and writes bench/results.json.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache $(DYNALITE)/node_modules
