# The suite's commands. `make help` lists them. Everything runs from the checkout's own .venv.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LINE ?= $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("etl_lib/runtime/stack.toml", "rb"))["default_line"])')
LOCK := requirements/$(LINE).lock
STAMP := $(VENV)/.installed-$(LINE)
# Where `make package` writes (DIST=...), and the configuration its job definitions come from (CONF=...).
DIST ?= dist
PYTEST_ARGS ?=
# Tests with Spark run in TEST_WORKERS processes (pytest-xdist); the modules that use the local services share one,
# and every other module runs whole on one (tests/conftest.py). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: help setup system-packages jvm lock fmt lint docs test test-unit test-spark test-integration demo demo-services bench package services-up services-down clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## Install everything on a fresh machine (LINE=spark41|spark35); idempotent, offline once done
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory system-packages $(STAMP) jvm && \
	echo "setup of line $(LINE) done in $$(( $$(date +%s) - start ))s"

system-packages: ## Java, Maven, PostgreSQL, Redis and Chromium from Debian's packages, if missing
	@bash scripts/install-system-packages.sh

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(LOCK) setup.py | $(PY)
	@test -f $(LOCK) || { echo "no lock for line $(LINE): run make lock LINE=$(LINE)"; exit 1; }
	$(PY) -m pip install --quiet --requirement $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	@rm -f $(VENV)/.installed-*
	@touch $@

jvm: $(STAMP) ## Resolve Delta, the Kafka connector and broker, the JDBC driver with Maven into .cache/jvm
	@$(PY) -m etl_lib.deploy.jvm resolve --line $(LINE)

lock: ## Regenerate requirements/<LINE>.lock from setup.py and stack.toml
	PYTHON=$(PYTHON) bash scripts/lock.sh $(LINE)

fmt: $(STAMP) ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lint: $(STAMP) ## ruff (lint and format check), mypy on etl_lib, and the layering (import-linter, pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: setup ## Run every test: unit, spark and integration (starts and stops the services it needs)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-unit: $(STAMP) ## Only the unit tests: no Spark, Java, Maven or services, only the venv
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-spark: setup ## Only the tests on the local SparkSession
	$(PY) -m pytest -m spark $(XDIST) $(PYTEST_ARGS)

test-integration: setup ## Only the tests against real local services
	$(PY) -m pytest -m integration $(XDIST) $(PYTEST_ARGS)

demo: setup ## The whole lambda pipeline on the bundled data (conf/local.yaml, no services); summary and HTML report
	$(VENV)/bin/etl-suite demo

demo-services: setup ## The same with the real Kafka broker, PostgreSQL and the local AWS endpoint (conf/services.yaml)
	$(VENV)/bin/etl-suite services up kafka postgres aws --conf conf/services.yaml
	$(VENV)/bin/etl-suite demo --conf conf/services.yaml; status=$$?; \
	$(VENV)/bin/etl-suite services down --conf conf/services.yaml; exit $$status

docs: $(STAMP) ## Build the documentation site (MkDocs) into site/; a broken link or a missing page fails it
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: setup ## Run the benchmarks (BENCH="name ..." for some); results go to benchmarks/results and RESULTS.md
	$(PY) -m benchmarks $(BENCH)

package: $(STAMP) ## The wheel, the --py-files zip, requirements, flat configs and Glue/EMR/Databricks job definitions in dist/ (CONF=file, SET="key=value ...": the deploy keys of your account)
	rm -rf $(DIST) build
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir $(DIST) .
	$(PY) -m etl_lib.deploy.package --out $(DIST) $(if $(CONF),--conf $(CONF)) $(addprefix --set ,$(SET))

services-up: setup ## Start Kafka, PostgreSQL and the AWS endpoint on loopback (conf/local.yaml)
	$(VENV)/bin/etl-suite services up

services-down: ## Stop the local services
	$(VENV)/bin/etl-suite services down

clean: ## Remove the local lakehouse, service state and build output (keeps .venv and .cache)
	-$(VENV)/bin/etl-suite services down 2>/dev/null
	rm -rf lakehouse .work build dist spark-warehouse metastore_db derby.log
