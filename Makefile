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

# Independent tests run side by side (pytest-xdist): most wait on a line paced at 19200 baud, a
# broker or a timeout rather than on a CPU, so 4 workers pay even on 2 cores. tests/conftest.py
# keeps tests that share a module-scoped fixture on one worker; tests marked `timing` (they measure
# time, CPU or rates) run afterwards, alone. TEST_WORKERS=0 runs everything in one process.
# Bytecode goes to PYCACHE, outside the checkout; the run fails if a __pycache__ appears in it.
TEST_WORKERS ?= 4
PYCACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/aurora-suite/pycache
PYTEST := PYTHONPYCACHEPREFIX=$(PYCACHE) $(BIN)/pytest -q -p no:cacheprovider
IN_CHECKOUT := find . \( -path ./.git -o -path ./$(VENV) -o -path ./$(HA_VENV) \) -prune -o -name __pycache__ -type d
define run_tests
	@$(IN_CHECKOUT) -prune -exec rm -rf {} +
	@rc=0; \
	$(PYTEST) -n $(TEST_WORKERS) --dist loadgroup --durations=15 -m 'not timing' $(1) || rc=$$?; \
	$(PYTEST) --durations=5 -m timing $(1) || { r=$$?; [ $$r = 5 ] || rc=$$r; }; \
	left=$$($(IN_CHECKOUT) -print); \
	if [ -n "$$left" ]; then echo "bytecode written into the checkout:" $$left >&2; rc=1; fi; \
	exit $$rc
endef

test: setup lint static hass-venv
	$(call run_tests,tests)

unit: $(STAMP)
	$(call run_tests,tests/unit)

integration: setup hass-venv
	$(call run_tests,tests/integration)

demo: setup
	$(BIN)/python scripts/demo.py

bench: setup
	$(BIN)/python -m tests.perf

clean:
	rm -rf $(VENV) $(HA_VENV) .demo artifacts
