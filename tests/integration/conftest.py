"""Fixtures of the integration tests that talk to Home Assistant's own code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HA_PYTHON = ROOT / ".venv-ha" / "bin" / "python"


@pytest.fixture(scope="module")
def ha_python() -> Path:
    """The HA venv's interpreter; its absence is a failure in CI, where `make test` builds it."""
    if not HA_PYTHON.exists():
        reason = f"{HA_PYTHON.relative_to(ROOT)} is missing: run `make hass-venv` (part of `make test`)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return HA_PYTHON
