"""Every tool's every option has an environment variable in the one scheme (aurora.options), its
``--help`` names it, and every name from before the scheme still works."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from aurora import options
from aurora.bridge.cli import build_parser as bridge_parser
from aurora.fetch.cli import build_parser as fetch_parser
from aurora.monitor.cli import build_parser as monitor_parser
from aurora.mqtt import MqttSettings
from aurora.options import RENAMED, ToolParser, log_deprecated_names
from aurora.setup.cli import build_parser as setup_parser
from aurora.sim.cli import build_parser as sim_parser
from aurora.web.cli import build_parser as web_parser

from tests.support.environment import clear_tool_environment
from tests.support.processes import bare_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv running the tests (a clone has no .venv of its own)

TOOLS: dict[str, Callable[[], ToolParser]] = {
    "bridge": bridge_parser,
    "fetch": fetch_parser,
    "web": web_parser,
    "sim": sim_parser,
    "monitor": monitor_parser,
    "setup": setup_parser,
}
ARGUMENTS = {"fetch": ["unit.yml", "745"], "monitor": ["-"]}  # their required arguments
COMMON = {"homie-root", "log-format"}  # and every --mqtt-* option

# A value each renamed variable accepts, unlike its default (true/false options are worked out)
SAMPLES = {
    "AURORA_MQTT_PASSWORD_FILE": "/run/secrets/mqtt",
    "AURORA_MQTT_CA_FILE": "/run/secrets/ca.crt",
    "AURORA_BRIDGE_PORT": "tcp://127.0.0.1:2000/",
    "AURORA_BRIDGE_MQTT_URL": "mqtts://bridge@127.0.0.1:8883/",
    "AURORA_BRIDGE_DEVICE_NAME": "Basement",
    "AURORA_BRIDGE_FAST_INTERVAL": "2",
    "AURORA_BRIDGE_MEDIUM_INTERVAL": "60",
    "AURORA_BRIDGE_SLOW_INTERVAL": "600",
    "AURORA_BRIDGE_WATCHDOG_CYCLES": "9",
    "AURORA_BRIDGE_TIMEOUT": "1.5",
    "AURORA_BRIDGE_HA_PREFIX": "ha",
    "AURORA_BRIDGE_ENERGY_STATE": "/var/lib/aurora/e.json",
    "AURORA_BRIDGE_ENERGY_MAX_GAP": "30",
    "AURORA_BRIDGE_STATUS_FILE": "/run/aurora.status",
    "AURORA_BRIDGE_VPORT_RTU": "2000",
    "AURORA_BRIDGE_VPORT_MODBUS_TCP": "0.0.0.0:5020",
    "AURORA_BRIDGE_VPORT_MAX_CLIENTS": "4",
    "AURORA_BRIDGE_VPORT_IDLE_TIMEOUT": "60",
    "AURORA_WEB_ALLOWED_HOST": "pump.lan",
    "AURORA_SETUP_HOST": "pump.lan",
}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tool_environment(monkeypatch)
    monkeypatch.setattr(options, "_deprecated", {})
    monkeypatch.setattr(options, "_logged", set())
    monkeypatch.setattr(options, "_started", False)


def _options(parser: argparse.ArgumentParser) -> list[tuple[argparse.Action, str, bool]]:
    """Each option a user sets: (action, its long name or a positional's dest, is positional)."""
    found = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if action.default is argparse.SUPPRESS:  # fetch's --version
            continue
        if not action.option_strings:
            if action.nargs in ("?", "*"):  # an optional positional argument
                found.append((action, action.dest, True))
            continue  # a required one (fetch's PORT QUERY) is an argument, not a setting
        longs = [s[2:] for s in action.option_strings if s.startswith("--")]
        assert longs, f"{action.option_strings}: every option has a long name, which names its variable"
        found.append((action, longs[0], False))
    return found


def _expected(tool: str, name: str, positional: bool) -> str:
    common = name in COMMON or name.startswith("mqtt-")
    words = [name] if common and not positional else [tool, name]
    return "_".join(["AURORA", *words]).replace("-", "_").upper()


def _by_variable() -> dict[str, list[tuple[str, argparse.Action]]]:
    found: dict[str, list[tuple[str, argparse.Action]]] = {}
    for tool, build in TOOLS.items():
        parser = build()
        variables = parser.variables()
        for action, name, _ in _options(parser):
            found.setdefault(variables[name], []).append((tool, action))
    return found


@pytest.mark.parametrize("tool", TOOLS)
def test_every_option_has_a_variable_in_the_scheme(tool: str) -> None:
    parser = TOOLS[tool]()
    assert isinstance(parser, ToolParser)
    assert tool == parser.tool
    variables = parser.variables()
    listed = _options(parser)
    assert listed, "the walk found no option: it walks the wrong thing"
    assert {name for _, name, _ in listed} == set(variables)
    for _, name, positional in listed:
        assert _expected(tool, name, positional) == variables[name], name
    assert len(set(variables.values())) == len(variables), "two options share a variable"


@pytest.mark.parametrize("tool", TOOLS)
def test_the_help_names_every_options_variable(tool: str) -> None:
    parser = TOOLS[tool]()
    text = " ".join(parser.format_help().split())
    for name, variable in parser.variables().items():
        assert f"[{variable}]" in text, f"--{name}'s help does not name {variable}"
    assert "<unset>" not in text


def test_the_common_variables_are_one_per_option_in_every_tool() -> None:
    """AURORA_MQTT_CA_FILE means the same wherever it is read; nothing else is shared."""
    for variable, users in _by_variable().items():
        tools = {tool for tool, _ in users}
        assert len(users) == len(tools), f"{variable} twice in one tool"
        if len(tools) > 1:
            assert not variable.startswith(tuple(f"AURORA_{t.upper()}_" for t in TOOLS)), variable


def _sample(variable: str, action: argparse.Action) -> tuple[str, Any]:
    """A value for the variable and what the parsed option must then hold."""
    if isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction)):
        default = bool(action.default) if action.default is not options._UNSET else False
        return ("false" if default else "true"), not default
    text = SAMPLES[variable]
    if isinstance(action, argparse._AppendAction):
        return text, [text]
    kind = action.type
    return text, (kind(text) if callable(kind) else text)


@pytest.mark.parametrize(("new", "old"), [(new, old) for new, olds in RENAMED.items() for old in olds])
def test_every_old_name_still_works_and_warns_once_naming_the_new_one(
    monkeypatch: pytest.MonkeyPatch, new: str, old: str
) -> None:
    if new == "AURORA_MQTT_PASSWORD":  # no option: the password itself, for every tool
        monkeypatch.setenv(old, "pw")
        assert "pw" == MqttSettings.from_url("mqtt://fetch@127.0.0.1/").password
    else:
        users = _by_variable()[new]
        for tool, action in users:
            text, expected = _sample(new, action)
            monkeypatch.setenv(old, text)
            assert expected == getattr(TOOLS[tool]().parse_args(ARGUMENTS.get(tool, [])), action.dest), (
                tool,
                old,
            )
            assert expected != action.default, "the sample must differ from the default"
            monkeypatch.delenv(old)
            monkeypatch.setenv(new, text)
            assert expected == getattr(TOOLS[tool]().parse_args(ARGUMENTS.get(tool, [])), action.dest), (
                tool,
                new,
            )
            monkeypatch.delenv(new)
    with structlog.testing.capture_logs() as logs:
        log_deprecated_names()
        log_deprecated_names()
    assert [("deprecated_variable", old, new, "warning")] == [
        (line["event"], line["variable"], line["use"], line["log_level"]) for line in logs
    ]


def test_an_old_name_as_a_user_sees_it(tmp_path: Path) -> None:
    """The real tool: the old name is read (here a password file that does not exist, so it stops
    with exit 2) and stderr says, once and at WARNING, what to call it now."""
    missing = tmp_path / "no-such-password"
    done = subprocess.run(
        [str(BIN / "aurora_fetch"), "mqtt://fetch@127.0.0.1:9/", "745"],
        env=bare_env("/usr/bin:/bin", MQTT_PASSWORD_FILE=str(missing), AURORA_LOG_FORMAT="json"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 2 == done.returncode, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "deprecated_variable" in line]
    assert 1 == len(warnings), done.stderr
    assert '"level": "warning"' in warnings[0]
    assert '"use": "AURORA_MQTT_PASSWORD_FILE"' in warnings[0]
    assert str(missing) in done.stderr  # the old name's value was used


def test_compose_passes_the_tools_variables_by_their_new_names() -> None:
    """Every variable compose.yaml gives a container is one a tool reads, by its name in the
    scheme; an old name appears only passed through beside its new one (a user's .env)."""
    known = set(_by_variable()) | {"AURORA_MQTT_PASSWORD"}
    old_names = {old: new for new, olds in RENAMED.items() for old in olds}
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    seen = 0
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        for variable in environment:
            seen += 1
            if variable in old_names:
                assert old_names[variable] in environment, f"{name}: {variable} without its new name"
            else:
                assert variable in known, f"{name}: {variable} is no tool's variable"
    assert seen >= 10


# Every variable a tool read before the scheme (the 0.x releases' README and --help)
BEFORE = {
    *("MQTT_PASSWORD_FILE", "MQTT_PASSWORD", "MQTT_CA_FILE"),
    *("AURORA_PORT", "AURORA_MQTT_URL", "AURORA_DEVICE_NAME", "AURORA_HOMIE", "AURORA_HOME_ASSISTANT"),
    *("AURORA_FAST_INTERVAL", "AURORA_MEDIUM_INTERVAL", "AURORA_SLOW_INTERVAL", "AURORA_WATCHDOG_CYCLES"),
    *("AURORA_TIMEOUT", "AURORA_ALLOW_RAW_WRITES", "AURORA_MQTT_PROTOCOL", "AURORA_HOMIE_ROOT"),
    *("AURORA_HA_PREFIX", "AURORA_ENERGY_STATE", "AURORA_ENERGY_MAX_GAP", "AURORA_DEBUG_MODBUS"),
    *("AURORA_LOG_FORMAT", "AURORA_STATUS_FILE", "AURORA_VPORT_RTU", "AURORA_VPORT_MODBUS_TCP"),
    *("AURORA_VPORT_READ_ONLY", "AURORA_VPORT_MAX_CLIENTS", "AURORA_VPORT_IDLE_TIMEOUT"),
    *("AURORA_FETCH_TIMEOUT", "AURORA_MONITOR_REPLY_TIMEOUT"),
    *("AURORA_WEB_TARGET", "AURORA_WEB_PORT", "AURORA_WEB_BIND", "AURORA_WEB_ALLOWED_HOSTS"),
    *("AURORA_WEB_MAX_CONNECTIONS", "AURORA_WEB_HEADER_TIMEOUT", "AURORA_WEB_BODY_TIMEOUT"),
    *("AURORA_WEB_HTML", "AURORA_WEB_PASSWORD_FILE", "AURORA_WEB_TIMEOUT"),
    *("AURORA_SIM_DUMP", "AURORA_SIM_PTY", "AURORA_SIM_TCP", "AURORA_SIM_SERIAL", "AURORA_SIM_BAUD"),
    *("AURORA_SIM_TURNAROUND_MS", "AURORA_SIM_DELAY_MS", "AURORA_SIM_REFUSE_WF_CODES"),
    *("AURORA_SIM_SILENT_WF_CODES", "AURORA_SIM_DROP", "AURORA_SIM_CORRUPT", "AURORA_SIM_PARTIAL"),
    *("AURORA_SIM_STRAY", "AURORA_SIM_POWER", "AURORA_SIM_TAP_PTY", "AURORA_SIM_WRITE_LOG"),
    *("AURORA_SETUP_DIR", "AURORA_SETUP_HOSTS", "AURORA_SETUP_BROKER_GROUP", "AURORA_SETUP_SERVICE_OWNER"),
    *("AURORA_SETUP_BROKER_DATA", "AURORA_SETUP_MOSQUITTO_SOURCE"),
}


def test_every_name_read_before_the_scheme_is_still_read() -> None:
    """Either it is a variable of the scheme already, or an old name of one (tested above)."""
    current = set(_by_variable()) | {"AURORA_MQTT_PASSWORD"}
    old_names = {old for olds in RENAMED.values() for old in olds}
    assert set() == {name for name in BEFORE if name not in current and name not in old_names}
    assert set() == old_names & current, "an old name is also a current variable"
