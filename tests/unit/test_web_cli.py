"""web_aid_tool's command line: options, their environment variables, and the device in a URL."""

from __future__ import annotations

import pytest
from aurora.mqtt import MqttSettings
from aurora.web.cli import DEFAULT_PORT, parse_args

from tests.support.environment import clear_tool_environment


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tool_environment(monkeypatch)


def test_defaults_listen_on_localhost_port_4567(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off the LAN unless asked (docs/protocol.md#bugs-web: the original bound 0.0.0.0 in production)."""
    args = parse_args(["unit.yml", "--password-file", "pw"])
    assert ("unit.yml", DEFAULT_PORT, "127.0.0.1", None) == (args.target, args.port, args.bind, args.html)


def test_every_option_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """compose.yaml sets AURORA_WEB_* and keeps secrets out of the command line."""
    monkeypatch.setenv("AURORA_WEB_TARGET", "mqtts://web@broker:8883/")
    monkeypatch.setenv("AURORA_WEB_PORT", "8080")
    monkeypatch.setenv("AURORA_WEB_BIND", "0.0.0.0")
    monkeypatch.setenv("AURORA_WEB_HTML", "/srv/awl")
    monkeypatch.setenv("AURORA_WEB_PASSWORD_FILE", "/run/secrets/ui")
    args = parse_args([])
    assert ("mqtts://web@broker:8883/", 8080, "0.0.0.0", "/srv/awl", "/run/secrets/ui") == (
        args.target,
        args.port,
        args.bind,
        args.html,
        args.password_file,
    )
    assert 9000 == parse_args(["--port", "9000"]).port  # a flag beats the environment


def test_no_password_file_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """There is no way to run the UI without a login."""
    with pytest.raises(SystemExit) as exited:
        parse_args(["unit.yml"])
    assert 2 == exited.value.code
    assert "--password-file is required" in capsys.readouterr().err


def test_the_device_is_taken_from_the_url_path_or_the_topic_option() -> None:
    """mqtts://web@broker/homie/aurora-1/$modbus names the device; without a path it is discovered."""

    def settings(argv: list[str]) -> MqttSettings:
        args = parse_args([*argv, "--password-file", "/dev/null"])
        return MqttSettings.from_url(args.target, topic=args.mqtt_topic, root=args.homie_root)

    named = settings(["mqtts://web@broker/homie/aurora-2611000042/$modbus"])
    assert ("homie", "aurora-2611000042") == (named.root, named.device)
    short = settings(["mqtts://web@b/homie/aurora-1"])
    assert ("homie", "aurora-1") == (short.root, short.device)
    assert settings(["mqtts://web@broker/"]).device is None
    assert "other" == settings(["mqtts://web@broker/", "--homie-root", "other"]).root
    over_ws = settings(["wss://web@broker:8884/mqtt", "--mqtt-topic", "site2/aurora-7/$modbus"])
    assert ("site2", "aurora-7", "/mqtt", "websockets") == (
        over_ws.root,
        over_ws.device,
        over_ws.ws_path,
        over_ws.transport,
    )


def test_hardening_options_have_defaults_and_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--allowed-host, --max-connections, --header-timeout, --body-timeout [AURORA_WEB_<OPTION>]."""
    args = parse_args(["unit.yml", "--password-file", "pw"])
    assert ([], 256, 10.0, 10.0) == (
        args.allowed_host,
        args.max_connections,
        args.header_timeout,
        args.body_timeout,
    )
    monkeypatch.setenv("AURORA_WEB_ALLOWED_HOST", "pump.lan,.home.arpa")
    monkeypatch.setenv("AURORA_WEB_MAX_CONNECTIONS", "64")
    monkeypatch.setenv("AURORA_WEB_HEADER_TIMEOUT", "5")
    monkeypatch.setenv("AURORA_WEB_BODY_TIMEOUT", "20")
    args = parse_args(["unit.yml", "--password-file", "pw"])
    assert (["pump.lan,.home.arpa"], 64, 5.0, 20.0) == (
        args.allowed_host,
        args.max_connections,
        args.header_timeout,
        args.body_timeout,
    )
    flags = ["--allowed-host", "a.lan", "--allowed-host", "b.lan"]
    assert ["a.lan", "b.lan"] == parse_args(["unit.yml", "--password-file", "pw", *flags]).allowed_host


@pytest.mark.parametrize(
    "flag",
    [
        ["--max-connections", "0"],
        ["--header-timeout", "0"],
        ["--body-timeout", "-1"],
        ["--body-timeout", "x"],
    ],
)
def test_hardening_options_refuse_nonsense(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A limit of 0 or a negative time would serve nobody: a usage error, not a silent default."""
    with pytest.raises(SystemExit) as exited:
        parse_args(["unit.yml", "--password-file", "pw", *flag])
    assert 2 == exited.value.code
    assert flag[0] in capsys.readouterr().err
