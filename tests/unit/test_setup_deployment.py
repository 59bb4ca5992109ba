"""aurora_setup's directory: what it writes, with which modes, and that a re-run keeps it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from aurora.setup import certs, passwords
from aurora.setup.cli import main, options_from, parse_args, summary
from aurora.setup.deployment import DEFAULT_HOSTS, Options, apply, parse_hosts, render_config
from aurora.setup.files import Owner
from aurora.setup.layout import MQTT_ACCOUNTS, Layout

from tests.support.logguard import ErrorLogGuard

REPO = Path(__file__).resolve().parents[2]


def _options(root: Path, hosts: tuple[str, ...] = DEFAULT_HOSTS) -> Options:
    return Options(
        root=root,
        mosquitto_source=REPO / "mosquitto",
        hosts=hosts,
        broker_gid=os.getgid(),
        service_owner=Owner(os.getuid(), os.getgid()),
        broker_data="/var/lib/mosquitto",
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_directory_holds_every_file_the_broker_and_services_need(tmp_path: Path) -> None:
    """compose.yaml and contrib/ mount these exact paths; a missing one stops a service."""
    layout = Layout(tmp_path)
    apply(_options(tmp_path))
    broker = [
        "mosquitto.conf",
        "acl",
        "passwd",
        "ca.crt",
        "server.crt",
        "server.key",
        "healthcheck/mosquitto_sub",
    ]
    for name in broker:
        assert (layout.broker_dir / name).is_file(), name
    for account in MQTT_ACCOUNTS:
        assert layout.password(account).read_text().strip()
        assert layout.account_ca(account).read_bytes() == layout.ca_cert.read_bytes()
    assert layout.web_ui_password.read_text().strip()


def test_secrets_are_private_and_broker_files_readable_by_its_group(tmp_path: Path) -> None:
    """mosquitto reads its files as user mosquitto (group read); nobody else reads a secret."""
    layout = Layout(tmp_path)
    apply(_options(tmp_path))
    assert 0o600 == _mode(layout.ca_key)
    assert 0o700 == _mode(layout.ca_dir)
    assert 0o750 == _mode(layout.broker_dir)
    for name in ("passwd", "acl", "server.key", "mosquitto.conf"):
        assert 0o640 == _mode(layout.broker_dir / name), name
    assert 0o640 == _mode(layout.healthcheck_dir / "mosquitto_sub")
    for account in MQTT_ACCOUNTS:
        assert 0o600 == _mode(layout.password(account)), account
        assert 0o700 == _mode(layout.account_dir(account)), account
    assert 0o600 == _mode(layout.web_ui_password)


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    """`make demo` makes its directory 0711 (mosquitto passes through, lists nothing)."""
    tmp_path.chmod(0o711)
    apply(_options(tmp_path))
    assert 0o711 == _mode(tmp_path)


def test_the_password_file_accepts_each_accounts_password(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    apply(_options(tmp_path))
    lines = passwords.parse_file(layout.password_file.read_text())
    assert set(MQTT_ACCOUNTS) == set(lines)
    for account in MQTT_ACCOUNTS:
        assert passwords.verify_line(lines[account], layout.password(account).read_text().strip())


def test_running_again_changes_nothing(tmp_path: Path) -> None:
    """`docker compose up` runs the setup at every start; clients must keep their CA and passwords."""
    apply(_options(tmp_path))
    before = _snapshot(tmp_path)
    report = apply(_options(tmp_path))
    assert before == _snapshot(tmp_path)
    assert {"kept"} == set(report.actions.values())


def test_a_lost_password_file_is_rebuilt_from_the_kept_passwords(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    apply(_options(tmp_path))
    secret = layout.password("bridge").read_text()
    layout.password_file.unlink()
    apply(_options(tmp_path))
    assert secret == layout.password("bridge").read_text()
    assert passwords.verify_line(passwords.parse_file(layout.password_file.read_text())["bridge"], secret)


def test_a_new_host_name_reissues_only_the_server_certificate(tmp_path: Path) -> None:
    """Adding a name must not invalidate the CA Home Assistant already trusts, nor any password."""
    layout = Layout(tmp_path)
    apply(_options(tmp_path))
    ca, key, secret = (
        layout.ca_cert.read_bytes(),
        layout.server_key.read_bytes(),
        layout.password("web").read_text(),
    )
    report = apply(_options(tmp_path, parse_hosts(["homeserver.lan", "192.168.1.10"])))
    assert ca == layout.ca_cert.read_bytes()
    assert secret == layout.password("web").read_text()
    assert key != layout.server_key.read_bytes()
    assert "updated" == report.actions[layout.server_cert]
    names = certs.server_names(
        certs.load(layout.server_key.read_bytes(), layout.server_cert.read_bytes()).cert
    )
    assert {"homeserver.lan", "192.168.1.10", *DEFAULT_HOSTS} == names


def test_a_server_certificate_from_another_ca_is_replaced(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    apply(_options(tmp_path))
    foreign = certs.issue_server(certs.create_ca(), list(DEFAULT_HOSTS))
    layout.server_key.write_bytes(foreign.key_pem)
    layout.server_cert.write_bytes(foreign.cert_pem)
    report = apply(_options(tmp_path))
    ca = certs.load(layout.ca_key.read_bytes(), layout.ca_cert.read_bytes())
    server = certs.load(layout.server_key.read_bytes(), layout.server_cert.read_bytes())
    assert ca is not None and server is not None
    assert certs.why_reissue(server, ca, DEFAULT_HOSTS) is None
    assert any("not signed by the CA" in note for note in report.notes)


def test_the_config_points_at_the_setup_directory(tmp_path: Path) -> None:
    """The repository's container paths are replaced; nothing else in the config changes."""
    layout = Layout(tmp_path)
    apply(_options(tmp_path))
    conf = layout.broker_conf.read_text()
    assert "/etc/aurora/mosquitto" not in conf
    assert f"password_file {layout.password_file}\n" in conf
    assert f"keyfile {layout.server_key}\n" in conf
    assert "persistence_location /var/lib/mosquitto/\n" in conf
    source = (REPO / "mosquitto" / "mosquitto.conf").read_text()
    moved = source.replace("/etc/aurora/mosquitto/", f"{layout.broker_dir}/")
    assert moved.replace("/mosquitto/data/", "/var/lib/mosquitto/") == conf


def test_render_config_refuses_paths_mosquitto_cannot_read() -> None:
    with pytest.raises(ValueError, match="white space"):
        render_config("password_file /etc/aurora/mosquitto/passwd\n", "/my dir", "/data")


def test_host_names_come_first_and_defaults_follow() -> None:
    """The first name is the certificate's CN and the host shown for Home Assistant."""
    assert ("ha.lan", "10.0.0.2", *DEFAULT_HOSTS) == parse_hosts(["ha.lan, 10.0.0.2", "localhost"])
    assert ("fe80::1", *DEFAULT_HOSTS) == parse_hosts(["FE80:0:0::1"])
    with pytest.raises(ValueError, match="not a host name"):
        parse_hosts(["bad_name!"])


def test_the_summary_shows_a_password_only_when_asked(tmp_path: Path) -> None:
    """`docker compose logs setup` must not reveal Home Assistant's password."""
    options = _options(tmp_path, parse_hosts(["homeserver.lan"]))
    report = apply(options)
    password = Layout(tmp_path).password("homeassistant").read_text()
    quiet = summary(options, report, show_secrets=False)
    assert password not in quiet
    assert "Broker:        homeserver.lan" in quiet
    assert "Username:      homeassistant" in quiet
    for account in MQTT_ACCOUNTS:
        assert Layout(tmp_path).password(account).read_text() not in quiet
    loud = summary(options, report, show_secrets=True)
    assert password in loud
    assert "-----BEGIN CERTIFICATE-----" in loud


def test_options_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURORA_SETUP_DIR", str(tmp_path))
    monkeypatch.setenv("AURORA_SETUP_HOST", "a.lan,b.lan")
    monkeypatch.setenv("AURORA_SETUP_BROKER_GROUP", "1883")
    monkeypatch.setenv("AURORA_SETUP_SERVICE_OWNER", "10001:10002")
    monkeypatch.setenv("AURORA_SETUP_MOSQUITTO_SOURCE", str(REPO / "mosquitto"))
    options = options_from(parse_args([]))
    assert tmp_path == options.root
    assert ("a.lan", "b.lan", *DEFAULT_HOSTS) == options.hosts
    assert 1883 == options.broker_gid
    assert Owner(10001, 10002) == options.service_owner
    flags = options_from(parse_args(["--host", "c.lan", "--service-owner", "5"]))
    assert ("c.lan", *DEFAULT_HOSTS) == flags.hosts
    assert Owner(5, None) == flags.service_owner


@pytest.mark.parametrize(
    "argv",
    [["--service-owner", "aurora"], ["--broker-group", "no-such-group-here"], ["--host", "a b!"]],
)
def test_bad_arguments_exit_2_without_writing(
    tmp_path: Path, argv: list[str], error_logs: ErrorLogGuard
) -> None:
    assert 2 == main(["--dir", str(tmp_path / "cfg"), "--mosquitto-source", str(REPO / "mosquitto"), *argv])
    assert not (tmp_path / "cfg").exists()
    assert ["bad_setup_arguments"] == [r.event for r in error_logs.records]


def test_a_websocket_listener_only_when_asked_with_the_brokers_own_paths(tmp_path: Path) -> None:
    import dataclasses

    apply(_options(tmp_path / "plain"))
    assert "websockets" not in Layout(tmp_path / "plain").broker_conf.read_text()
    with_ws = dataclasses.replace(_options(tmp_path / "ws"), websocket_port=9443)
    report = apply(with_ws)
    conf = Layout(tmp_path / "ws").broker_conf.read_text()
    assert 9443 == report.websocket_port
    assert ["8883", "9443"] == [line.split()[1] for line in conf.splitlines() if line.startswith("listener ")]
    block = conf.split("listener 9443", 1)[1]
    assert "protocol websockets" in block
    assert (
        f"certfile {Layout(tmp_path / 'ws').broker_dir}/server.crt" in block
    )  # the real path, not the container's
    assert "/etc/aurora/mosquitto/" not in conf
    with pytest.raises(SystemExit):
        parse_args(["--websocket-port", "70000"])
