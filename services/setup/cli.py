"""``aurora_setup``: CA, broker certificate, passwords and mosquitto files in one directory.

Every option also comes from its ``AURORA_SETUP_<OPTION>`` variable (flag > environment > default).
Safe to run again: what exists and is still valid is kept. Secrets are printed only on request.
"""

from __future__ import annotations

import argparse
import datetime as dt
import grp
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog
from aurora.errors import UsageError
from aurora.logs import add_log_format_argument, configure_logging
from aurora.options import ToolParser, bounded, log_deprecated_names

from . import certs
from .deployment import DEFAULT_HOSTS, Options, Report, apply, parse_hosts
from .files import KEEP, Owner
from .layout import CONTAINER_DATA_DIR, Layout

log = structlog.get_logger(__name__)

DEFAULT_DIR = "/etc/aurora"
EXAMPLE_GID = 1883  # the eclipse-mosquitto image's mosquitto group
# Where the repository's mosquitto/ directory is: a source checkout, then the container image.
_SOURCE_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "mosquitto",
    Path(sys.prefix) / "share" / "aurora" / "mosquitto",
    Path("/usr/share/aurora/mosquitto"),
)


_port = bounded(int, 1, 65535, what="a port number")


def build_parser() -> ToolParser:
    """The command line; every option also reads AURORA_SETUP_<OPTION>."""
    parser = ToolParser(
        tool="setup",
        prog="aurora_setup",
        description="Create the broker's CA, server certificate, passwords, password file and ACL "
        "in one directory, and print what Home Assistant needs to connect. Safe to run again.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="the setup directory (default %(default)s)",
    )
    parser.add_argument(
        "--host",
        action="append",
        default=None,
        metavar="NAMES",
        help="host name or IP address clients use to reach the broker; repeat or separate with "
        f"commas; {', '.join(DEFAULT_HOSTS)} are always added",
    )
    parser.add_argument(
        "--broker-group",
        default=None,
        metavar="GROUP",
        help="group (name or id) mosquitto runs as; its files become 0640 root:GROUP "
        f"(default: group mosquitto if it exists, else {EXAMPLE_GID})",
    )
    parser.add_argument(
        "--service-owner",
        default=None,
        metavar="UID:GID",
        help="owner of the bridge, fetch and web directories (the containers' user) "
        "(default: leave them to the user running the setup)",
    )
    parser.add_argument(
        "--broker-data",
        default=CONTAINER_DATA_DIR,
        metavar="DIR",
        help="persistence directory as the broker sees it (default %(default)s)",
    )
    parser.add_argument(
        "--mosquitto-source",
        type=Path,
        default=None,
        metavar="DIR",
        help="the suite's mosquitto/ directory with mosquitto.conf and acl "
        "(default: found next to the installed package)",
    )
    parser.add_argument(
        "--websocket-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="also listen for MQTT over WebSockets with TLS (wss://) on PORT, with the same "
        "passwords, ACL and certificate (mosquitto/websockets.conf; default: no such listener)",
    )
    parser.add_argument(
        "--show-secrets",
        action="store_true",
        help="also print the homeassistant password and the CA certificate",
    )
    add_log_format_argument(parser)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Flags, with defaults from the environment; pure apart from reading ``os.environ``."""
    args = build_parser().parse_args(argv)
    if args.host is None:
        args.host = []
    return args


def _group_id(value: str | None) -> int:
    if value is None:
        try:
            return grp.getgrnam("mosquitto").gr_gid
        except KeyError:
            return EXAMPLE_GID
    if value.isdigit():
        return int(value)
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise UsageError(f"no group named {value!r}") from None


def _owner(value: str | None) -> Owner:
    if not value:
        return KEEP
    uid, sep, gid = value.partition(":")
    if not (uid.isdigit() and (not sep or gid.isdigit())):
        raise UsageError(f"--service-owner wants UID:GID in numbers, not {value!r}")
    return Owner(int(uid), int(gid) if gid else None)


def _mosquitto_source(value: Path | None) -> Path:
    candidates = (value,) if value else _SOURCE_CANDIDATES
    for candidate in candidates:
        if (candidate / "mosquitto.conf").is_file() and (candidate / "acl").is_file():
            return candidate
    where = value or ", ".join(str(c) for c in _SOURCE_CANDIDATES)
    raise UsageError(f"no mosquitto.conf and acl in {where}; give --mosquitto-source")


def options_from(args: argparse.Namespace) -> Options:
    """Check and resolve the parsed arguments (raises UsageError)."""
    try:
        hosts = parse_hosts(args.host)
    except ValueError as err:
        raise UsageError(str(err)) from err
    return Options(
        root=args.dir.absolute(),
        mosquitto_source=_mosquitto_source(args.mosquitto_source),
        hosts=hosts,
        broker_gid=_group_id(args.broker_group),
        service_owner=_owner(args.service_owner),
        broker_data=args.broker_data,
        websocket_port=args.websocket_port,
    )


def summary(options: Options, report: Report, *, show_secrets: bool) -> str:
    """What was done and what Home Assistant needs; the password only with ``show_secrets``."""
    layout = Layout(options.root)
    lines = [f"aurora_setup: {options.root}"]
    for action in ("created", "updated", "kept"):
        paths = [str(p.relative_to(options.root)) for p, a in report.actions.items() if a == action]
        if paths:
            lines.append(f"  {action:8} {', '.join(paths)}")
    lines.extend(f"  note: {note}" for note in report.notes)
    ca_pem = layout.ca_cert.read_bytes()
    server = certs.load(layout.server_key.read_bytes(), layout.server_cert.read_bytes())
    if server is not None:
        until = server.cert.not_valid_after_utc.astimezone(dt.UTC).date().isoformat()
        lines.append(f"  broker certificate for {', '.join(report.hosts)}, valid until {until}")
    lines.append(f"  CA certificate {layout.ca_cert} (SHA-256 {certs.fingerprint(ca_pem)})")
    extra = [h for h in report.hosts if h not in DEFAULT_HOSTS]
    host = extra[0] if extra else "<this machine's name: add it with --host so the certificate names it>"
    password_path = layout.password("homeassistant")
    if show_secrets:
        password = password_path.read_text(encoding="utf-8").strip()
    else:
        password = f"the content of {password_path} (or run again with --show-secrets)"
    lines += [
        "",
        'Home Assistant: Settings > Devices & services > Add integration > MQTT > "Advanced options"',
        f"  Broker:        {host}",
        f"  Port:          {report.tls_port}"
        + (f" (or WebSockets: {report.websocket_port}, path /mqtt)" if report.websocket_port else ""),
        "  Username:      homeassistant",
        f"  Password:      {password}",
        f"  Broker certificate validation: Custom; upload {layout.ca_cert}",
        "  MQTT protocol: 5",
    ]
    if show_secrets:
        lines += ["", f"CA certificate ({layout.ca_cert}):", ca_pem.decode().rstrip()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(fmt=args.log_format)
    log_deprecated_names()
    try:
        options = options_from(args)
        report = apply(options)
    except UsageError as err:
        log.error("bad_setup_arguments", reason=str(err))
        return 2
    except (OSError, ValueError) as err:
        log.error("setup_failed", error=str(err))
        return 1
    if options.broker_gid is not None and os.geteuid() != 0:
        log.info("files_not_chowned", reason="not root: the files stay owned by the current user")
    print(summary(options, report, show_secrets=args.show_secrets))
    return 0
