"""``aurora_mqtt_bridge``'s command line: flag > AURORA_BRIDGE_* environment > default, clear usage errors."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from aurora.bridge.cli import config_from_args, parse_args
from aurora.bridge.spec import Tier

from tests.support.environment import clear_tool_environment

URL = "mqtts://bridge@broker.example:8883/"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tool_environment(monkeypatch)


def test_the_originals_form_gives_the_defaults() -> None:
    args = parse_args(["/dev/ttyUSB0", URL])
    config = config_from_args(args)
    assert "/dev/ttyUSB0" == config.port
    assert {Tier.FAST: 5.0, Tier.MEDIUM: 30.0, Tier.SLOW: 300.0} == dict(config.intervals_s)
    assert config.homie and config.home_assistant
    assert not config.allow_raw_writes
    assert mqtt.MQTTProtocolVersion.MQTTv5 == config.protocol
    assert "WaterFurnace" == config.device_name


def test_every_option_also_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Containers and systemd units configure the bridge without a command line."""
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("AURORA_BRIDGE_PORT", "tcp://pi:2000/")
    monkeypatch.setenv("AURORA_BRIDGE_MQTT_URL", URL)
    monkeypatch.setenv("AURORA_BRIDGE_HOMIE", "false")
    monkeypatch.setenv("AURORA_BRIDGE_FAST_INTERVAL", "2")
    monkeypatch.setenv("AURORA_MQTT_PROTOCOL", "3.1.1")
    monkeypatch.setenv("AURORA_BRIDGE_ALLOW_RAW_WRITES", "yes")
    monkeypatch.setenv("AURORA_MQTT_PASSWORD_FILE", str(secret))
    config = config_from_args(parse_args([]))
    assert "tcp://pi:2000/" == config.port
    assert not config.homie
    assert 2.0 == config.intervals_s[Tier.FAST]
    assert mqtt.MQTTProtocolVersion.MQTTv311 == config.protocol
    assert config.allow_raw_writes
    assert "s3cret" == config.mqtt.password
    assert "s3cret" not in repr(config)


def test_a_flag_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURORA_BRIDGE_HOMIE", "false")
    monkeypatch.setenv("AURORA_BRIDGE_FAST_INTERVAL", "2")
    args = parse_args(["/dev/ttyUSB0", URL, "--homie", "--fast-interval", "3"])
    assert args.homie
    assert 3.0 == args.fast_interval


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "PORT and MQTT_URL are required"),
        (["/dev/ttyUSB0", "http://broker/"], "starts with mqtt://, mqtts://, ws:// or wss://"),
        (["/dev/ttyUSB0", URL, "--fast-interval", "fast"], "is not a number of seconds"),
        (["/dev/ttyUSB0", URL, "--fast-interval", "0"], "outside 0.5..86400"),
        (["/dev/ttyUSB0", URL, "--fast-interval", "60", "--medium-interval", "30"], "intervals must grow"),
        (["/dev/ttyUSB0", URL, "--homie-root", "a/b"], "one topic level"),
        (["/dev/ttyUSB0", URL, "--mqtt-protocol", "4"], "invalid choice"),
    ],
)
def test_a_bad_command_line_is_a_usage_error_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert 2 == exit_info.value.code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_malformed_boolean_in_the_environment_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AURORA_BRIDGE_HOMIE", "maybe")
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["/dev/ttyUSB0", URL])
    assert 2 == exit_info.value.code
    assert "AURORA_BRIDGE_HOMIE='maybe'" in capsys.readouterr().err


def test_the_help_names_the_environment_variable_of_each_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for var in (
        "AURORA_BRIDGE_PORT",
        "AURORA_BRIDGE_MQTT_URL",
        "AURORA_BRIDGE_DEVICE_NAME",
        "AURORA_BRIDGE_HOMIE",
        "AURORA_BRIDGE_HOME_ASSISTANT",
        "AURORA_BRIDGE_FAST_INTERVAL",
        "AURORA_BRIDGE_MEDIUM_INTERVAL",
        "AURORA_BRIDGE_SLOW_INTERVAL",
        "AURORA_BRIDGE_DEBUG_MODBUS",
        "AURORA_BRIDGE_ALLOW_RAW_WRITES",
        "AURORA_MQTT_PROTOCOL",
        "AURORA_MQTT_PASSWORD_FILE",
    ):
        assert f"[{var}]" in text, var
