# Everything runs inside .venv, made from the repo's own files on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed-stamp
LOCKED_STAMP := $(VENV)/.locked-stamp
# dynalite (tools/dynalite) is the DynamoDB the concurrency tests race against, and the
# benchmark's realistic section measures against.
PACKAGE := dist/streaming-file-builder.zip
DYNALITE := tools/dynalite
DYNALITE_STAMP := $(DYNALITE)/node_modules/.installed

# Locked dependencies (`make lock` writes both): the dev environment for any python the
# project supports, and the Lambda's runtime dependencies for its python on manylinux x86_64.
DEV_LOCK := requirements/dev.txt
LAMBDA_LOCK := requirements/lambda.txt
DEV_PYTHON := $(shell sed -n 's/^requires-python *= *">=\([0-9.]*\)"/\1/p' pyproject.toml)

# The Lambda's python is named once, in template.yaml's Globals (`Runtime: pythonX.Y`);
# the zip, `sam build` and the lambda lock are all made for the version read from there.
RUNTIMES := $(shell sed -n 's/^[[:space:]]*Runtime:[[:space:]]*python\([0-9][0-9.]*\)[[:space:]]*$$/\1/p' template.yaml)
LAMBDA_PYTHON := $(firstword $(RUNTIMES))
check-runtime = $(if $(filter 1,$(words $(RUNTIMES))),,$(error template.yaml must name the \
	Lambda runtime exactly once, as `Runtime: pythonX.Y` (found: $(or $(RUNTIMES),none))))
LAMBDA_PLATFORM = --platform manylinux2014_x86_64 --implementation cp \
	--python-version $(LAMBDA_PYTHON) --only-binary=:all:
# The Lambda's wheels, downloaded once per lock and runtime; installing from here needs no
# index, so `sam build` (and its test) works offline once `make package` has run.
WHEELHOUSE := build/wheelhouse/python$(LAMBDA_PYTHON)

.PHONY: venv dynalite test lint typecheck unit package lock demo bench chaos clean \
	build-Function build-ExpireFunction

# The lock alone (and so uv, which `make lock` needs), then the project itself on top of it:
# editable, without dependencies and built by the lock's setuptools, so nothing is resolved or
# fetched beyond the lock. `pip check` fails if pyproject.toml asks for what the lock lacks.
$(LOCKED_STAMP): $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes --no-deps -r $(DEV_LOCK)
	touch $@

$(STAMP): $(LOCKED_STAMP) pyproject.toml
	$(PIP) install --quiet --no-deps --no-build-isolation --no-index -e .
	$(PIP) check || { echo "$(DEV_LOCK) does not satisfy pyproject.toml: run make lock" >&2; exit 1; }
	touch $@

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

# A worker a core, at most 4 (each starts its own servers: moto, dynalite, redis-server); a
# test file's tests stay on one worker (a module's fixture, such as the `sam build` one, runs
# once).
unit: $(STAMP) $(DYNALITE_STAMP)
	$(BIN)/pytest -n auto --maxprocesses 4 --dist loadfile

test: lint typecheck package unit

# Both locks, every dependency at its newest version within pyproject.toml's ranges. The dev
# lock also holds what builds the project (pyproject's build-system requires) and pip; the
# lambda lock takes the dev lock's versions (aws-sam-cli pins boto3) for the Lambda's python.
# `make lock LOCK_UPGRADE=` keeps every pin that still fits (after adding a dependency).
LOCK_UPGRADE ?= --upgrade
lock: $(LOCKED_STAMP)
	$(check-runtime)
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], "pip", sep="\n")' \
		| $(BIN)/uv pip compile --quiet $(LOCK_UPGRADE) --generate-hashes --custom-compile-command 'make lock' \
			--universal --python-version $(DEV_PYTHON) --extra dev pyproject.toml - -o $(DEV_LOCK)
	$(BIN)/uv pip compile --quiet $(LOCK_UPGRADE) --generate-hashes --custom-compile-command 'make lock' \
		--python-version $(LAMBDA_PYTHON) --python-platform x86_64-manylinux2014 --only-binary :all: \
		--constraints $(DEV_LOCK) pyproject.toml -o $(LAMBDA_LOCK)

$(WHEELHOUSE)/.complete: $(LAMBDA_LOCK) | $(LOCKED_STAMP)
	$(check-runtime)
	rm -rf $(WHEELHOUSE)
	$(PIP) download --quiet --require-hashes --no-deps $(LAMBDA_PLATFORM) -d $(WHEELHOUSE) \
		-r $(LAMBDA_LOCK) || { echo "no wheels of $(LAMBDA_LOCK) for python$(LAMBDA_PYTHON):" \
		"offline, or the lock is for another python (make lock)" >&2; exit 1; }
	touch $@

# The one recipe that fills a Lambda code folder ($(1)): the project's wheel and the locked
# runtime dependencies for the template's python on x86_64, from the wheelhouse, no index;
# no tests, no dev tools, no byte code compiled by this machine's python.
define lambda-code
	$(check-runtime)
	rm -rf build/wheel build/lib  # setuptools reuses build/lib: a module deleted from the tree would ship
	$(PIP) wheel --quiet --no-deps --no-build-isolation --no-index --wheel-dir build/wheel .
	$(PIP) install --quiet --no-compile --no-index --find-links $(WHEELHOUSE) --require-hashes \
		--no-deps $(LAMBDA_PLATFORM) --target $(1) -r $(LAMBDA_LOCK)
	$(PIP) install --quiet --no-compile --no-index --no-deps --upgrade --target $(1) build/wheel/*.whl
	rm -rf $(1)/bin
endef

# The deployable zip, for anything that takes a zip (`sam build` makes the same folder).
package: $(STAMP) $(WHEELHOUSE)/.complete
	rm -rf build/package $(PACKAGE)
	mkdir -p build/package dist
	$(call lambda-code,build/package)
	cd build/package && ../../$(BIN)/python -m zipfile -c ../../$(PACKAGE) .

# `sam build` (template.yaml: `BuildMethod: makefile`, `CodeUri: .`) runs
# `make build-<LogicalId>` with ARTIFACTS_DIR set. samconfig.toml (build_in_source) makes it
# run here, not in a scratch copy of this folder, which SAM would first fill with .venv and
# node_modules (hundreds of MB): the build takes seconds and reuses the wheelhouse. Every
# function gets the same code (they differ by handler); since they share build/, they are
# built one after the other, as `sam build` does unless told `--parallel`.
build-Function build-ExpireFunction: $(STAMP) $(WHEELHOUSE)/.complete
	$(if $(ARTIFACTS_DIR),,$(error $@ is run by `sam build`, which sets ARTIFACTS_DIR))
	$(call lambda-code,$(ARTIFACTS_DIR))

# Many more random schedules of every backend than CI runs, each with a fresh seed, on the
# fakes; then fewer of the redis backend's on a real redis-server, and of a large file's
# DynamoDB state and of the chunk objects' deletions on moto. The statistics say how many
# schedules ran and how many held. Each property goes to the next free worker, as in `unit`.
CHAOS_WORKERS := -n auto --maxprocesses 4 --dist load
chaos: $(STAMP)
	SFB_HYPOTHESIS_PROFILE=chaos $(BIN)/pytest $(CHAOS_WORKERS) \
		$(wildcard tests/unit/test_schedules*.py) --hypothesis-show-statistics -q
	SFB_HYPOTHESIS_PROFILE=chaos-server $(BIN)/pytest $(CHAOS_WORKERS) \
		tests/integration/test_redis_schedules.py tests/integration/test_dynamodb_schedules.py \
		tests/integration/test_chunk_object_schedules.py --hypothesis-show-statistics -q

demo: $(STAMP)
	$(BIN)/sfb demo

# Throughput, AWS requests, memory and latency, each against a baseline of the same run;
# prints a table and writes bench/results.json. The realistic section's DynamoDB is dynalite.
bench: $(STAMP) $(DYNALITE_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist .aws-sam *.egg-info .mypy_cache .ruff_cache $(DYNALITE)/node_modules
