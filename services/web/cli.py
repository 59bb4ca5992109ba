"""``web_aid_tool TARGET``: the AWL's web AID endpoints and a built-in UI, behind a login."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import structlog
from aiohttp import web
from aurora import __version__
from aurora.bus import Bus
from aurora.errors import AuroraError, BusError, UsageError
from aurora.logs import add_log_format_argument, configure_logging
from aurora.mqtt import MqttSettings
from aurora.mqtt_args import add_mqtt_arguments, is_mqtt_url
from aurora.options import ToolParser, bounded, log_deprecated_names
from aurora.ports import DEFAULT_LATENCY_S, open_bus
from aurora.urls import redact

from .app import build_app
from .auth import Authenticator, read_password
from .context import WebState, apply_homie
from .feed import HomieFeed
from .guard import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    MAX_CONNECTIONS,
    AllowedHosts,
    ConnectionGuard,
    quiet_aiohttp_logs,
)
from .homie import HomieMirror

log = structlog.get_logger("aurora.web")

EXIT_OK, EXIT_DEVICE, EXIT_USAGE = 0, 1, 2
DEFAULT_PORT = 4567
CONNECT_S = 10.0


_port = bounded(int, 0, 65535, what="a port number", hint="(0 picks a free one)")
_count = bounded(int, 1, what="a whole number")
_seconds = bounded(float, 0.0, 3600.0, what="a number of seconds", unit=" s", low_exclusive=True)


def build_parser() -> ToolParser:
    """The command line; each option also reads the environment variable in brackets."""
    p = ToolParser(
        tool="web",
        prog="web_aid_tool",
        description=(
            "Serve the WaterFurnace AWL's web AID endpoints (/getunits.cgi, /setunits.cgi, /config.cgi, "
            "/request.cgi) and a built-in web UI, behind a password."
        ),
        epilog=(
            "TARGET: mqtts://web@broker:8883/homie/aurora-SERIAL/$modbus goes through the bridge "
            "(without the topic the broker's only aurora device under --homie-root is used; over "
            "WebSockets wss://web@broker:8884/ with --mqtt-topic): the UI then has the live "
            "dashboard, trend charts, settings page, register browser and fault history. "
            "A serial device (/dev/ttyUSB0), tcp://host:2000/, rfc2217://host:2217/ or a YAML dump "
            "talks to the unit directly: the UI then has the register browser and fault history only, "
            "because the dashboard and settings are the bridge's Homie tree (do not run both on one line). "
            "The AWL's own page is served from --html DIR when you copied its files there "
            "(DIR/index.htm, css/, js/, images/). "
            "Log in with the password in --password-file (aurora_setup writes DIR/web/ui-password). "
            "Exit status: 0 stopped, 1 device or broker error, 2 usage error."
        ),
    )
    p.add_argument(
        "target",
        nargs="?",
        default=None,
        help="mqtt(s)://…/$modbus, serial device, tcp://, rfc2217:// or dump file",
    )
    p.add_argument(
        "--port",
        type=_port,
        default=str(DEFAULT_PORT),
        help="HTTP port (default %(default)s; 0 picks a free one)",
    )
    p.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address to listen on (default %(default)s; 0.0.0.0 for the whole LAN)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="a host name browsers may use for this server, besides localhost, this machine's name "
        "(NAME and NAME.local), the --bind address and IP addresses; repeat it or separate names "
        "with commas; .example.lan allows a domain, * any name (requests for other names get 421, "
        "which stops DNS rebinding)",
    )
    p.add_argument(
        "--max-connections",
        type=_count,
        default=str(MAX_CONNECTIONS),
        metavar="N",
        help="open connections at most; beyond it the oldest one still waiting for its request is "
        "closed (default %(default)s)",
    )
    p.add_argument(
        "--header-timeout",
        type=_seconds,
        default=str(HEADER_TIMEOUT_S),
        metavar="SECONDS",
        help="time a connection has to send a request's headers, from connecting or from the "
        "previous response (default %(default)s)",
    )
    p.add_argument(
        "--body-timeout",
        type=_seconds,
        default=str(BODY_TIMEOUT_S),
        metavar="SECONDS",
        help="time a request has to send its body; then 408 (default %(default)s)",
    )
    p.add_argument(
        "--html",
        metavar="DIR",
        default=None,
        help="directory holding the AWL page's own files, served at /",
    )
    p.add_argument(
        "--password-file",
        metavar="FILE",
        default=None,
        help="file holding the login password (required)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=str(DEFAULT_LATENCY_S),
        metavar="SECONDS",
        help="time allowed beyond the line time of each reply, direct targets (default %(default)s)",
    )
    p.add_argument("--debug-modbus", action="store_true", help="log every frame sent and received")
    add_log_format_argument(p)
    p.add_argument("-v", "--version", action="version", version=__version__)
    add_mqtt_arguments(p, tool=True)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line and the environment (pure: no file is opened)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.target:
        parser.error("TARGET is required (or set AURORA_WEB_TARGET)")
    if args.allowed_host is None:
        args.allowed_host = []
    if not args.password_file:
        parser.error(
            "--password-file is required: the web UI always asks for a password "
            "(aurora_setup writes DIR/web/ui-password; or set AURORA_WEB_PASSWORD_FILE)"
        )
    return args


def _open_direct(args: argparse.Namespace) -> Bus:
    return open_bus(args.target, latency_s=args.timeout, debug=args.debug_modbus)


def _open_mqtt_bus(settings: MqttSettings, device: str) -> Bus:
    if not device:
        raise BusError("no heat pump on the broker yet: is the bridge running?")
    settings = settings.replace(device=device)
    try:
        from aurora.rpc_client import MqttBus  # only the MQTT path needs it
    except ImportError as err:
        raise BusError("registers through the broker need aurora.rpc_client, which is not installed") from err
    return MqttBus.connect(settings, timeout_s=CONNECT_S, client_prefix="web")


def _no_bus() -> Bus:
    raise BusError("not connected yet")


async def serve(args: argparse.Namespace, password: str) -> int:
    """Open the target, start the feed (MQTT), serve until SIGTERM/SIGINT."""
    from .gate import BusGate

    loop = asyncio.get_running_loop()
    html_dir = Path(args.html) if args.html else None
    if html_dir is not None and not html_dir.is_dir():
        raise UsageError(f"--html {html_dir}: not a directory")
    feed = None
    mirror = None
    if is_mqtt_url(args.target):
        settings = MqttSettings.from_url(
            args.target,
            password_file=args.mqtt_password_file,
            ca_file=args.mqtt_ca_file,
            topic=args.mqtt_topic,
            root=args.homie_root,
        )
        # The mirror exists before the feed subscribes: retained messages arrive at once.
        mirror = HomieMirror(settings.device or "", root=settings.root)
        state = WebState(
            auth=Authenticator(password), gate=BusGate(_no_bus), html_dir=html_dir, mirror=mirror
        )

        def found(device: str) -> None:
            mirror.device = device

        def link(up: bool) -> None:
            if mirror.link != up:
                mirror.set_link(up, time.time())
                state.hub.publish(("meta", None))  # a fresh snapshot tells every page

        feed = HomieFeed(
            settings,
            loop,
            lambda topic, payload: apply_homie(state, topic, payload),
            on_device=found,
            on_link=link,
        )
        await loop.run_in_executor(None, feed.start, mirror.device or None, CONNECT_S)
        # The $modbus client is opened on the first register request, for the device the feed
        # found: the live pages need only the feed, and the client has nothing to discover.
        state.gate = BusGate(lambda: _open_mqtt_bus(settings, mirror.device))
        state.feed = feed
    else:
        bus = await loop.run_in_executor(None, _open_direct, args)
        state = WebState(
            auth=Authenticator(password), gate=BusGate(lambda: _open_direct(args), bus), html_dir=html_dir
        )
    allowed = AllowedHosts.build(args.bind, args.allowed_host)
    app = build_app(state, allowed, body_timeout=args.body_timeout)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    guard: ConnectionGuard | None = None
    try:
        guard = ConnectionGuard(
            runner, max_connections=args.max_connections, header_timeout=args.header_timeout
        )
        try:
            addresses = guard.listen(args.bind, args.port)
        except OSError as err:
            raise UsageError(f"cannot listen on {args.bind}:{args.port}: {err.strerror}") from err
        host, port = addresses[0]
        host = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
        print(f"listening: http://{host}:{port}/", flush=True)
        log.info(
            "listening",
            url=f"http://{host}:{port}/",
            mode=state.mode,
            target=redact(args.target),
            device=(mirror.device or None) if mirror else None,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
    finally:
        if guard is not None:
            guard.close()
        await runner.cleanup()
        if feed is not None:
            feed.stop()
        state.gate.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``web_aid_tool``."""
    args = parse_args(argv)
    configure_logging(debug=args.debug_modbus, fmt=args.log_format)
    log_deprecated_names()
    quiet_aiohttp_logs()
    try:
        password = read_password(args.password_file)
        return asyncio.run(serve(args, password))
    except UsageError as err:
        print(f"web_aid_tool: {err}", file=sys.stderr)
        return EXIT_USAGE
    except AuroraError as err:
        print(f"web_aid_tool: {err}", file=sys.stderr)
        return EXIT_DEVICE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
