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
BASE_STAMP := $(VENV)/.installed-base
# What `make demo` needs (the broker and its client tools); the rest is for the tests.
DEMO_PACKAGES := mosquitto mosquitto-clients
TEST_PACKAGES := ser2net socat chromium docker-compose mbpoll
# The container tests (tests/containers/) run the image and compose.yaml with rootful podman
# serving the Docker API, base images made from Debian's packages (docker/README.md)
CONTAINER_PACKAGES := podman buildah runc catatonit debootstrap slirp4netns uidmap fuse-overlayfs \
                      containernetworking-plugins golang-github-containernetworking-plugin-dnsname
ARM64_PACKAGES := qemu-user-static binfmt-support

.PHONY: setup system-packages demo-packages hass-venv test test-rest unit integration containers arm64 \
        lint static demo bench clean

setup: system-packages $(STAMP)

# apt-get only where a tool is missing, and only as root (a user's machine may already have them).
define apt_install
	@missing=""; \
	for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (run 'sudo make setup' or install them)"; \
	  fi; \
	fi
endef

system-packages:
	$(call apt_install,$(DEMO_PACKAGES) $(TEST_PACKAGES) $(CONTAINER_PACKAGES) $(ARM64_PACKAGES))

demo-packages:
	$(call apt_install,$(DEMO_PACKAGES))

# The suite alone (what `make demo` needs), then the development tools on top
$(BASE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(BASE_STAMP)

$(STAMP): $(BASE_STAMP)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# A Python 3.13 from HA_PYTHON, PATH or pyenv, else made from Debian trixie's packages (as root,
# once, about 2 minutes): scripts/ha-python.sh says how, and fails in one line when it cannot.
$(HA_STAMP): tests/hass/requirements.txt
	HOST_PIP="$(abspath $(BIN))/pip" scripts/ha-python.sh $(HA_VENV) $(HA_PYTHON) python3.13 \
	  $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13 \
	  /usr/local/bin/python3.13 /usr/bin/python3.13
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
# broker or a timeout rather than on a CPU, so 4 workers pay even on 2 cores. A module's tests run
# on one worker (--dist loadfile), so a module-scoped fixture is set up once (xdist's own
# --dist loadgroup groups nothing under pytest 9: it renames a node id pytest no longer reads), in
# collection order, which starts the longest first (tests/conftest.py: LONG_MODULES; xdist would
# otherwise start the modules with the most tests first, short unit modules among them);
# tests marked `timing` (they measure time, CPU or rates) run afterwards, alone, except that those
# also marked `wallclock` (a minute of elapsed time each, little CPU: the energy integrals) run
# beside them, four at a time (fewer than two a worker: xdist hands them out one by one, round
# robin), which keeps that pass to about the length of its longest test.
# TEST_WORKERS=0 runs everything in one process.
# Each pass leaves a JUnit report in artifacts/ (per-test times: what one process would take);
# a failed run ends with the names of its failed tests (scripts/failed_tests.py), since the passes'
# output follows one another and a log kept only by its end would lose them.
# Bytecode goes to PYCACHE, outside the checkout; the run fails if a __pycache__ appears in it.
TEST_WORKERS ?= 4
WALLCLOCK_LOG := artifacts/wallclock.log
PYCACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/aurora-suite/pycache
PYTEST := PYTHONPYCACHEPREFIX=$(PYCACHE) $(BIN)/pytest -q -p no:cacheprovider
FAILED_TESTS := $(BIN)/python scripts/failed_tests.py $(addprefix artifacts/,parallel.xml timing.xml wallclock.xml)
IN_CHECKOUT := find . \( -path ./.git -o -path ./$(VENV) -o -path ./$(HA_VENV) \) -prune -o -name __pycache__ -type d
define run_tests
	@$(IN_CHECKOUT) -prune -exec rm -rf {} +
	@mkdir -p artifacts; rm -f artifacts/parallel.xml artifacts/timing.xml artifacts/wallclock.xml
	@rc=0; \
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 --junitxml=artifacts/parallel.xml -m 'not timing' $(1) || rc=$$?; \
	$(PYTEST) -n 4 --junitxml=artifacts/wallclock.xml -m 'timing and wallclock' $(1) >$(WALLCLOCK_LOG) 2>&1 & wall=$$!; \
	$(PYTEST) --durations=5 --junitxml=artifacts/timing.xml -m 'timing and not wallclock' $(1) || { r=$$?; [ $$r = 5 ] || rc=$$r; }; \
	wait $$wall || { r=$$?; [ $$r = 5 ] || rc=$$r; }; \
	echo "---- wallclock tests ($(WALLCLOCK_LOG)) ----"; tail -n 25 $(WALLCLOCK_LOG); \
	left=$$($(IN_CHECKOUT) -print); \
	if [ -n "$$left" ]; then echo "bytecode written into the checkout:" $$left >&2; rc=1; fi; \
	[ $$rc = 0 ] || { echo "---- failed ----"; $(FAILED_TESTS); }; \
	exit $$rc
endef

# The container tests (tests/containers: one compose stack, a few minutes, mostly waiting on
# faults) run beside the rest in a process of their own; their output follows once both are
# done, and either failing fails `make test`.
# lint and static run first, side by side. The Home Assistant venv (a minute, three where Python
# 3.13 must be made first) is built beside them and the first tests: the tests that need it wait
# for its stamp, or for the build's exit status in HA_BUILD_STATUS (tests/integration/conftest.py).
HA_BUILD_LOG := artifacts/hass-venv.log
HA_BUILD_STATUS := artifacts/hass-venv.status
test: setup
	@mkdir -p artifacts; rm -f $(HA_BUILD_STATUS); \
	{ $(MAKE) --no-print-directory hass-venv >$(HA_BUILD_LOG) 2>&1; echo $$? >$(HA_BUILD_STATUS); } & ha=$$!; \
	if ! $(MAKE) --no-print-directory -j2 lint static; then wait $$ha; exit 1; fi; \
	rm -f artifacts/containers.xml; \
	$(PYTEST) --junitxml=artifacts/containers.xml tests/containers >artifacts/containers.log 2>&1 & containers=$$!; \
	trap 'kill $$containers 2>/dev/null' INT TERM; \
	AURORA_HA_VENV_BUILD=$(abspath $(HA_BUILD_STATUS)) $(MAKE) --no-print-directory test-rest; rest=$$?; \
	wait $$ha; ha_rc=$$(cat $(HA_BUILD_STATUS) 2>/dev/null || echo 1); \
	if [ "$$ha_rc" != 0 ]; then echo "---- make hass-venv failed ($(HA_BUILD_LOG)) ----"; tail -n 30 $(HA_BUILD_LOG); fi; \
	wait $$containers; ctr=$$?; \
	echo "---- tests/containers (artifacts/containers.log) ----"; cat artifacts/containers.log; \
	[ $$rest = 0 ] && [ $$ctr = 0 ] || { echo "---- failed (artifacts/*.xml) ----"; $(FAILED_TESTS) artifacts/containers.xml; }; \
	exit $$(( rest || ctr || ha_rc ))

test-rest:
	$(call run_tests,--ignore=tests/containers tests)

# The image built and compose.yaml run for real with podman (root; docker/README.md)
containers: setup
	$(PYTEST) tests/containers

# The image built for linux/arm64 under qemu, and the sim and fetch run inside it
arm64: setup
	AURORA_TEST_ARM64=1 $(PYTEST) -s tests/containers/test_arm64.py

unit: $(STAMP)
	$(call run_tests,tests/unit)

integration: setup hass-venv
	$(call run_tests,tests/integration)

demo: demo-packages $(BASE_STAMP)
	$(BIN)/python scripts/demo.py

bench: setup
	$(BIN)/python -m tests.perf

clean:
	rm -rf $(VENV) $(HA_VENV) .demo artifacts
