# The only install path: `make setup` installs everything the suite and its tests need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := mosquitto mosquitto-clients ser2net socat chromium docker-compose

.PHONY: setup system-packages test unit integration lint static demo demo-stop bench clean

setup: system-packages $(STAMP)

# apt-get only where a tool is missing, and only as root (a user's machine may already have them).
system-packages:
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (run 'sudo make setup' or install them)"; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check shared services tests scripts
	$(BIN)/ruff format --check shared services tests scripts
	$(BIN)/mypy

static: $(STAMP)
	$(BIN)/hadolint docker/Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	docker-compose -f compose.yaml config -q

test: setup lint static
	$(BIN)/pytest -q -p no:cacheprovider tests

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

demo: setup
	$(BIN)/python scripts/demo.py

bench: setup
	$(BIN)/python -m tests.perf

clean:
	rm -rf $(VENV) .demo artifacts
