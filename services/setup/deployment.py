"""Create or complete a setup directory; safe to run again (what exists and is valid is kept).

Order matters: the CA first (clients trust it), then the server certificate it signs, the
passwords, the password file built from them, and last the broker's config and ACL.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from . import certs, passwords
from .files import KEEP, Action, Owner, ensure_dir, read_text, write_file
from .layout import (
    CONTAINER_BROKER_DIR,
    CONTAINER_DATA_DIR,
    MQTT_ACCOUNTS,
    SERVICE_ACCOUNTS,
    Layout,
)

DEFAULT_HOSTS = ("localhost", "broker", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class Options:
    """What ``aurora_setup`` was asked to do."""

    root: Path
    mosquitto_source: Path  # the repository's mosquitto/ directory (mosquitto.conf, acl)
    hosts: tuple[str, ...] = DEFAULT_HOSTS  # server certificate names, the first is its CN
    broker_gid: int | None = None  # group the broker runs as (reads its files through it)
    service_owner: Owner = KEEP  # owner of the bridge/fetch/web directories
    broker_data: str = CONTAINER_DATA_DIR  # persistence_location as the broker sees it
    websocket_port: int | None = None  # a wss:// listener (mosquitto/websockets.conf) on this port


@dataclass(slots=True)
class Report:
    """What happened to each file, plus the facts a summary needs."""

    actions: dict[Path, Action] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    hosts: tuple[str, ...] = ()
    tls_port: int = 8883
    websocket_port: int | None = None

    def add(self, path: Path, action: Action) -> None:
        self.actions[path] = action


def _listener_port(conf: str) -> int:
    """The port of the (single) ``listener`` line of the repository's config."""
    ports = re.findall(r"^\s*listener\s+(\d+)", conf, flags=re.MULTILINE)
    if len(ports) != 1:
        raise ValueError(f"expected exactly one listener in mosquitto.conf, found {len(ports)}")
    return int(ports[0])


def with_websockets(conf: str, websockets: str, port: int) -> str:
    """``conf`` with the WebSocket listener of ``websockets`` (mosquitto/websockets.conf) on ``port``."""
    block, count = re.subn(r"^(\s*listener\s+)\d+", rf"\g<1>{port}", websockets, flags=re.MULTILINE)
    if count != 1:
        raise ValueError(f"expected exactly one listener in websockets.conf, found {count}")
    return conf.rstrip("\n") + "\n\n" + block


def render_config(source: str, broker_dir: Path | str, data_dir: str) -> str:
    """The repository's mosquitto.conf with its container paths replaced."""
    for path in (str(broker_dir), data_dir):
        if any(c.isspace() for c in path):
            raise ValueError(f"mosquitto cannot use a path with white space: {path!r}")
    text = source.replace(CONTAINER_BROKER_DIR + "/", str(broker_dir).rstrip("/") + "/")
    return text.replace(CONTAINER_DATA_DIR + "/", data_dir.rstrip("/") + "/")


def healthcheck_options(broker_dir: Path | str, port: int, password: str) -> str:
    """``mosquitto_sub`` options for ``XDG_CONFIG_HOME=<broker_dir>/healthcheck``.

    Kept in a file so the password never appears in the healthcheck's command line (``ps``).
    """
    return (
        f"-h localhost\n-p {port}\n--cafile {str(broker_dir).rstrip('/')}/ca.crt\n"
        f"-u healthcheck\n-P {password}\n"
    )


def _ensure_ca(layout: Layout, report: Report) -> certs.KeyAndCert:
    key, cert = read_bytes(layout.ca_key), read_bytes(layout.ca_cert)
    ca = certs.load(key, cert) if key and cert else None
    if ca is not None and not certs.ca_is_usable(ca):
        report.notes.append("the CA expires soon: a new CA was created; give clients the new ca.crt")
        ca = None
    if ca is None:
        if key or cert:
            report.notes.append("the CA files were unreadable or did not match: a new CA was created")
        ca = certs.create_ca()
    report.add(layout.ca_key, write_file(layout.ca_key, ca.key_pem, 0o600))
    report.add(layout.ca_cert, write_file(layout.ca_cert, ca.cert_pem, 0o644))
    return ca


def _ensure_server(layout: Layout, ca: certs.KeyAndCert, options: Options, report: Report) -> None:
    key, cert = read_bytes(layout.server_key), read_bytes(layout.server_cert)
    server = certs.load(key, cert) if key and cert else None
    reason = certs.why_reissue(server, ca, options.hosts) if server else "missing"
    if server is None or reason is not None:
        if server is not None:
            report.notes.append(f"broker certificate issued anew: the old one {reason}")
        server = certs.issue_server(ca, options.hosts)
    group = Owner(0, options.broker_gid)
    report.add(layout.server_key, write_file(layout.server_key, server.key_pem, 0o640, group))
    report.add(layout.server_cert, write_file(layout.server_cert, server.cert_pem, 0o644, group))


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _ensure_password(path: Path, owner: Owner, report: Report) -> str:
    existing = (read_text(path) or "").strip()
    password = existing or passwords.new_password()
    report.add(path, write_file(path, password.encode(), 0o600, owner))
    return password


def _password_file(current: str | None, secrets: dict[str, str]) -> str:
    """Password-file text: an existing line is kept while it still matches its password."""
    old = passwords.parse_file(current or "")
    lines = []
    for user, password in secrets.items():
        line = old.get(user)
        if line is None or not passwords.verify_line(line, password):
            line = passwords.hash_line(user, password)
        lines.append(line)
    return "\n".join(lines) + "\n"


def apply(options: Options) -> Report:
    """Bring ``options.root`` to the layout of ``layout.py``; return what changed."""
    layout = Layout(options.root)
    conf_source = (options.mosquitto_source / "mosquitto.conf").read_text(encoding="utf-8")
    acl_source = (options.mosquitto_source / "acl").read_bytes()
    report = Report(hosts=options.hosts, tls_port=_listener_port(conf_source))
    if options.websocket_port is not None:
        websockets = (options.mosquitto_source / "websockets.conf").read_text(encoding="utf-8")
        conf_source = with_websockets(conf_source, websockets, options.websocket_port)
        report.websocket_port = options.websocket_port
    broker = Owner(0, options.broker_gid)

    if not layout.root.is_dir():  # an existing directory keeps the mode its owner chose
        ensure_dir(layout.root, 0o755)
    ensure_dir(layout.ca_dir, 0o700)
    ca = _ensure_ca(layout, report)

    ensure_dir(layout.broker_dir, 0o750, broker)
    ensure_dir(layout.healthcheck_dir, 0o750, broker)
    broker_ca = layout.broker_dir / "ca.crt"
    report.add(broker_ca, write_file(broker_ca, ca.cert_pem, 0o644, broker))
    _ensure_server(layout, ca, options, report)

    secrets: dict[str, str] = {}
    for account in MQTT_ACCOUNTS:
        owner = options.service_owner if account in SERVICE_ACCOUNTS else KEEP
        ensure_dir(layout.account_dir(account), 0o700, owner)
        secrets[account] = _ensure_password(layout.password(account), owner, report)
        account_ca = layout.account_ca(account)
        report.add(account_ca, write_file(account_ca, ca.cert_pem, 0o644, owner))
    _ensure_password(layout.web_ui_password, options.service_owner, report)

    passwd = _password_file(read_text(layout.password_file), secrets)
    report.add(layout.password_file, write_file(layout.password_file, passwd.encode(), 0o640, broker))
    report.add(layout.acl, write_file(layout.acl, acl_source, 0o640, broker))
    conf = render_config(conf_source, layout.broker_dir, options.broker_data)
    report.add(layout.broker_conf, write_file(layout.broker_conf, conf.encode(), 0o640, broker))
    health = healthcheck_options(layout.broker_dir, report.tls_port, secrets["healthcheck"])
    health_file = layout.healthcheck_dir / "mosquitto_sub"
    report.add(health_file, write_file(health_file, health.encode(), 0o640, broker))
    return report


_DNS_NAME = re.compile(r"^(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


def parse_hosts(values: Sequence[str]) -> tuple[str, ...]:
    """The names the broker certificate is for: the given ones (comma or space separated, in
    order, the first becomes the common name), then ``DEFAULT_HOSTS``; de-duplicated."""
    hosts: list[str] = []
    for value in values:
        for word in re.split(r"[,\s]+", value.strip()):
            if not word:
                continue
            if isinstance(certs.san_entry(word), x509.IPAddress):
                host = str(ipaddress.ip_address(word))
            elif _DNS_NAME.match(word):
                host = word
            else:
                raise ValueError(f"not a host name or IP address: {word!r}")
            if host not in hosts:
                hosts.append(host)
    return tuple(hosts + [h for h in DEFAULT_HOSTS if h not in hosts])
