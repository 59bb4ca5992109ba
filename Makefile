# The only install path: `make setup` installs everything the suite and its tests need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Home Assistant's own discovery schemas for tests/integration/test_hass_validation.py, in a venv of
# their own: HA needs Python 3.13, the project stays on 3.11 (tests/hass/requirements.txt says why)
HA_VENV := .venv-ha
HA_STAMP := $(HA_VENV)/.installed
HA_PYTHON ?=
SYSTEM_PACKAGES := mosquitto mosquitto-clients ser2net socat chromium docker-compose mbpoll

.PHONY: setup system-packages hass-venv test unit integration lint static demo bench clean

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

# python3.13 may be a pyenv shim that only fails when run, so each candidate must run and be 3.13
$(HA_STAMP): tests/hass/requirements.txt
	@py=""; \
	for c in $(HA_PYTHON) python3.13 $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13 \
	         $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do \
	  if "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then py="$$c"; break; fi; \
	done; \
	if [ -z "$$py" ]; then echo "make hass-venv: no working Python 3.13 found (tried python3.13 on PATH and pyenv's versions); install one or pass HA_PYTHON=/path/to/python3.13" >&2; exit 1; fi; \
	echo "building $(HA_VENV) with $$py"; \
	rm -rf $(HA_VENV) && "$$py" -m venv $(HA_VENV)
	$(HA_VENV)/bin/pip install -q --no-deps --ignore-requires-python -r tests/hass/requirements.txt
	$(HA_VENV)/bin/python tests/hass/validate_discovery.py --check-install
	touch $(HA_STAMP)

hass-venv: $(HA_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check shared services tests scripts
	$(BIN)/ruff format --check shared services tests scripts
	$(BIN)/mypy

static: $(STAMP)
	$(BIN)/hadolint docker/Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	docker-compose -f compose.yaml config -q

test: setup lint static hass-venv
	$(BIN)/pytest -q -p no:cacheprovider tests

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: setup hass-venv
	$(BIN)/pytest -q tests/integration

demo: setup
	$(BIN)/python scripts/demo.py

bench: setup
	$(BIN)/python -m tests.perf

clean:
	rm -rf $(VENV) $(HA_VENV) .demo artifacts
