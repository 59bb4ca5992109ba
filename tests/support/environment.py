"""A test's environment without the tools' variables, so a developer's own settings (an exported
AURORA_MQTT_PASSWORD_FILE, a .env sourced in the shell) cannot change what a test sees."""

from __future__ import annotations

import os

import pytest

# The harness's own switches (tests/containers), not tool options.
_HARNESS = ("AURORA_CONTAINER_", "AURORA_TEST_")


def clear_tool_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every AURORA_* and MQTT_* variable a tool could read, for this test only."""
    for name in list(os.environ):
        if name.startswith(("AURORA_", "MQTT_")) and not name.startswith(_HARNESS):
            monkeypatch.delenv(name)
