"""Fixtures of the integration tests that talk to Home Assistant's own code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.processes import wait_for

ROOT = Path(__file__).resolve().parents[2]
HA_PYTHON = ROOT / ".venv-ha" / "bin" / "python"
HA_STAMP = ROOT / ".venv-ha" / ".installed"  # what `make hass-venv` touches once the venv is whole
# `make test` builds .venv-ha beside the first tests (it takes a minute, or three on a machine
# that has no Python 3.13 yet) and names here the file it writes the build's exit status to
HA_BUILD = "AURORA_HA_VENV_BUILD"
HA_BUILD_WAIT_S = 900.0


def ha_venv_pending() -> Path | None:
    """The exit-status file of `make test`'s build of .venv-ha while that build still runs."""
    status = os.environ.get(HA_BUILD)
    if not status or HA_STAMP.exists() or Path(status).exists():
        return None
    return Path(status)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if ha_venv_pending() is None:
        return
    for item in items:  # their wait for the build counts against their time limit
        if "ha_python" in getattr(item, "fixturenames", ()):
            marker = item.get_closest_marker("timeout")
            limit = marker.args[0] if marker and marker.args else item.config.getini("timeout")
            item.add_marker(pytest.mark.timeout(float(limit) + HA_BUILD_WAIT_S), append=False)


@pytest.fixture(scope="module")
def ha_python() -> Path:
    """The HA venv's interpreter, once `make test`'s build of it is done; its absence is a failure
    in CI, where `make test` builds it."""
    if status := os.environ.get(HA_BUILD):
        ended = Path(status)
        wait_for(lambda: HA_STAMP.exists() or ended.exists(), HA_BUILD_WAIT_S, "the end of make hass-venv")
        if not HA_STAMP.exists():
            pytest.fail(
                f"make hass-venv failed (exit {ended.read_text().strip()}): see artifacts/hass-venv.log"
            )
    if not HA_PYTHON.exists():
        reason = f"{HA_PYTHON.relative_to(ROOT)} is missing: run `make hass-venv` (part of `make test`)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return HA_PYTHON
