# Everything runs inside .venv, made from the repo's own files on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# dynalite (tools/dynalite) is the DynamoDB the concurrency tests race against.
DYNALITE := tools/dynalite
DYNALITE_STAMP := $(DYNALITE)/node_modules/.installed

.PHONY: venv dynalite test lint typecheck unit demo bench chaos clean

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

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(DYNALITE_STAMP)
	$(BIN)/pytest

test: lint typecheck unit

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
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache $(DYNALITE)/node_modules
