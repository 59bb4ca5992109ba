"""aurora.options: command line > environment > default, empty is unset, bad values exit 2 naming
the variable, old names still work with one warning."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from aurora import options
from aurora.options import ToolParser, bounded, env_value, log_deprecated_names, variable_name

from tests.support.environment import clear_tool_environment
from tests.support.processes import bare_env


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tool_environment(monkeypatch)
    # Each test starts as a fresh process would: no old name seen, nothing logged yet
    monkeypatch.setattr(options, "_deprecated", {})
    monkeypatch.setattr(options, "_logged", set())
    monkeypatch.setattr(options, "_started", False)


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: more than 0 s")
    return value


def _parser() -> ToolParser:
    p = ToolParser(tool="demo", prog="demo")
    p.add_argument("target", nargs="?", help="where")
    p.add_argument("--interval", type=_seconds, default="5", help="seconds (default %(default)s)")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--name", default="x")
    p.add_argument("--flag", action="store_true")
    p.add_argument("--feature", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--mode", choices=("a", "b"), default="a")
    p.add_argument("--host", action="append")
    p.add_argument("--mqtt-ca-file")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pty")
    where.add_argument("--tcp")
    return p


def test_the_names_follow_the_scheme() -> None:
    assert "AURORA_DEMO_VPORT_RTU" == variable_name("demo", "vport-rtu")
    assert "AURORA_MQTT_CA_FILE" == variable_name("demo", "mqtt-ca-file")
    assert "AURORA_HOMIE_ROOT" == variable_name("demo", "homie-root")
    assert "AURORA_DEMO_MQTT_URL" == variable_name("demo", "mqtt-url", positional=True)
    assert {
        "target": "AURORA_DEMO_TARGET",
        "interval": "AURORA_DEMO_INTERVAL",
        "mqtt-ca-file": "AURORA_MQTT_CA_FILE",
        "pty": "AURORA_DEMO_PTY",
    }.items() <= _parser().variables().items()


def test_without_command_line_or_environment_the_defaults_hold_typed() -> None:
    args = _parser().parse_args([])
    assert (None, 5.0, 3, "x", False, True, "a", None) == (
        args.target,
        args.interval,
        args.count,
        args.name,
        args.flag,
        args.feature,
        args.mode,
        args.host,
    )


def test_the_environment_beats_the_default_and_the_command_line_beats_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AURORA_DEMO_TARGET", "tcp://a:1/")
    monkeypatch.setenv("AURORA_DEMO_INTERVAL", "2.5")
    monkeypatch.setenv("AURORA_DEMO_FLAG", "yes")
    monkeypatch.setenv("AURORA_DEMO_FEATURE", "off")
    monkeypatch.setenv("AURORA_DEMO_MODE", "b")
    monkeypatch.setenv("AURORA_DEMO_HOST", "a.lan; b.lan")
    args = _parser().parse_args([])
    assert ("tcp://a:1/", 2.5, True, False, "b", ["a.lan", "b.lan"]) == (
        args.target,
        args.interval,
        args.flag,
        args.feature,
        args.mode,
        args.host,
    )
    args = _parser().parse_args(["tcp://b:2/", "--interval", "7", "--feature", "--host", "c.lan"])
    assert ("tcp://b:2/", 7.0, True, ["c.lan"]) == (args.target, args.interval, args.feature, args.host)


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_variable_is_unset(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Compose's ``VAR: ${VAR:-}`` passes an empty string for a setting the user left out."""
    for name in ("AURORA_DEMO_COUNT", "AURORA_DEMO_NAME", "AURORA_DEMO_FLAG", "AURORA_DEMO_HOST"):
        monkeypatch.setenv(name, value)
    args = _parser().parse_args([])
    assert (3, "x", False, None) == (args.count, args.name, args.flag, args.host)


def test_blanks_around_a_value_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURORA_DEMO_COUNT", " 12 ")
    assert 12 == _parser().parse_args([]).count


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AURORA_DEMO_COUNT", "many", "AURORA_DEMO_COUNT='many': not a whole number"),
        ("AURORA_DEMO_INTERVAL", "-1", "AURORA_DEMO_INTERVAL='-1': -1: more than 0 s"),
        ("AURORA_DEMO_FLAG", "maybe", "AURORA_DEMO_FLAG='maybe': use true or false"),
        ("AURORA_DEMO_MODE", "c", "AURORA_DEMO_MODE='c': use one of a, b"),
    ],
)
def test_a_bad_value_exits_2_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args([])
    assert 2 == exited.value.code
    assert f"demo: {message}\n" == capsys.readouterr().err


def test_a_bad_value_is_not_checked_when_the_command_line_gives_the_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AURORA_DEMO_COUNT", "many")
    assert 4 == _parser().parse_args(["--count", "4"]).count


def test_a_password_in_a_bad_value_is_not_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    p = ToolParser(tool="demo", prog="demo")
    p.add_argument("--broker", type=int)
    monkeypatch.setenv("AURORA_DEMO_BROKER", "mqtt://user:s3cret@host/")
    with pytest.raises(SystemExit):
        p.parse_args([])
    err = capsys.readouterr().err
    assert "s3cret" not in err
    assert "mqtt://user:***@host/" in err


def test_mutually_exclusive_options_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AURORA_DEMO_PTY", "/tmp/link")
    # the command line's choice wins: the other option's variable is ignored, not an error
    args = _parser().parse_args(["--tcp", "h:1"])
    assert ("h:1", None) == (args.tcp, args.pty)
    monkeypatch.setenv("AURORA_DEMO_TCP", "h:2")
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args([])
    assert 2 == exited.value.code
    assert "AURORA_DEMO_PTY and AURORA_DEMO_TCP are set" in capsys.readouterr().err


def test_the_help_names_each_variable_and_shows_the_real_default() -> None:
    text = " ".join(_parser().format_help().split())
    assert "seconds (default 5) [AURORA_DEMO_INTERVAL]" in text
    assert "[AURORA_MQTT_CA_FILE]" in text
    assert "<unset>" not in text


def test_an_old_name_still_works_and_warns_once_naming_the_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MQTT_CA_FILE", "/etc/ca.crt")
    assert "/etc/ca.crt" == _parser().parse_args([]).mqtt_ca_file
    assert "/etc/ca.crt" == _parser().parse_args([]).mqtt_ca_file  # read twice, warned once
    with structlog.testing.capture_logs() as logs:
        log_deprecated_names()
        log_deprecated_names()
    assert [{"event": "deprecated_variable", "variable": "MQTT_CA_FILE", "use": "AURORA_MQTT_CA_FILE"}] == [
        {k: v for k, v in line.items() if k in ("event", "variable", "use")} for line in logs
    ]
    assert "warning" == logs[0]["log_level"]


def test_the_new_name_wins_over_the_old_one_and_the_warning_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURORA_MQTT_CA_FILE", "/new")
    monkeypatch.setenv("MQTT_CA_FILE", "/old")
    assert "/new" == env_value("AURORA_MQTT_CA_FILE")
    with structlog.testing.capture_logs() as logs:
        log_deprecated_names()
    assert ["deprecated_variable_ignored"] == [line["event"] for line in logs]


def test_an_old_name_read_after_start_up_is_warned_of_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    log_deprecated_names()  # the tool has started
    monkeypatch.setenv("MQTT_PASSWORD", "pw")
    with structlog.testing.capture_logs() as logs:
        assert "pw" == env_value("AURORA_MQTT_PASSWORD")
        assert "pw" == env_value("AURORA_MQTT_PASSWORD")
    assert [("deprecated_variable", "MQTT_PASSWORD")] == [(line["event"], line["variable"]) for line in logs]
    assert "pw" not in str(logs)


def test_a_real_tool_ends_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    """As a user sees it: the bridge started with a bad variable stops before doing anything."""
    env = bare_env("/usr/bin:/bin", AURORA_BRIDGE_FAST_INTERVAL="soon", HOME=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "aurora.bridge", "tcp://127.0.0.1:9/", "mqtt://127.0.0.1:9/"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 2 == done.returncode
    assert [
        "aurora_mqtt_bridge: AURORA_BRIDGE_FAST_INTERVAL='soon': 'soon' is not a number of seconds"
    ] == done.stderr.splitlines()
    assert not list(tmp_path.iterdir())  # nothing written: no state file, no status file


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        ("port", "http", "'http' is not a port number"),
        ("port", "0", "0: outside 1..65535"),
        ("port", "65536", "65536: outside 1..65535"),
        ("seconds", "nan", "nan s: outside 0.5..86400 s"),
        ("seconds", "inf", "inf s: outside 0.5..86400 s"),
        ("timeout", "0", "0 s: more than 0 and at most 3600 s"),
        ("count", "0", "0: at least 1"),
        ("free-port", "-1", "-1: outside 0..65535 (0 picks a free one)"),
    ],
)
def test_a_bounded_value_out_of_its_range_is_refused_in_one_line(kind: str, text: str, message: str) -> None:
    parse = BOUNDED[kind]
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        parse(text)
    assert message == str(refused.value)


def test_a_bounded_value_within_its_range_is_the_value_itself() -> None:
    assert (1, 65535) == (BOUNDED["port"]("1"), BOUNDED["port"](" 65535 "))
    assert 0.5 == BOUNDED["seconds"]("0.5") and 3600.0 == BOUNDED["timeout"]("3600")
    assert 0 == BOUNDED["free-port"]("0") and 10**6 == BOUNDED["count"]("1000000")


def test_a_bounded_option_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = ToolParser(tool="demo", prog="demo")
    parser.add_argument("--port", type=BOUNDED["port"], default=8883)
    monkeypatch.setenv("AURORA_DEMO_PORT", "99999")
    with pytest.raises(SystemExit) as ended:
        parser.parse_args([])
    assert 2 == ended.value.code
    assert "AURORA_DEMO_PORT='99999': 99999: outside 1..65535" in capsys.readouterr().err


BOUNDED = {
    "port": bounded(int, 1, 65535, what="a port number"),
    "free-port": bounded(int, 0, 65535, what="a port number", hint="(0 picks a free one)"),
    "seconds": bounded(float, 0.5, 86400.0, what="a number of seconds", unit=" s"),
    "timeout": bounded(float, 0.0, 3600.0, what="a number of seconds", unit=" s", low_exclusive=True),
    "count": bounded(int, 1, what="a whole number"),
}
