"""``aurora_mqtt_bridge PORT MQTT_URL``: the heat pump as a Homie 4 device with Home Assistant discovery.

Every option also comes from its environment variable, ``AURORA_BRIDGE_<OPTION>`` or for the MQTT
options ``AURORA_MQTT_<OPTION>`` (command line > environment > default; aurora.options), and the MQTT
password from ``AURORA_MQTT_PASSWORD_FILE`` so it never shows in ``ps``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aurora.errors import UsageError
from aurora.logs import add_log_format_argument, configure_logging_on_first_use, configure_pending, get_logger
from aurora.mqtt_args import add_mqtt_arguments, is_mqtt_url, topic_level
from aurora.options import ToolParser, bounded, log_deprecated_names
from aurora.transport import DEFAULT_LATENCY_S
from aurora.urls import redact

from .state_file import default_state_path
from .vport_config import IDLE_TIMEOUT_S, MAX_CLIENTS, VportConfig, parse_listen

# Only what reading the command line needs is imported here: the line is opened and detection
# started before the MQTT stack and the rest of the bridge are imported (main, issue 15).
if TYPE_CHECKING:
    from .app import BridgeConfig

log = get_logger("aurora.bridge")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


_seconds = bounded(float, 0.5, 86400.0, what="a number of seconds", unit=" s")
_idle_seconds = bounded(float, 5.0, 86400.0, what="a number of seconds", unit=" s")
_clients = bounded(int, 1, 1000, what="a number of clients")


def _listen(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_vport_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "virtual ports",
        "ModBus tools share the heat pump's line through the bridge, while it polls. Off unless a port is "
        "given; HOST defaults to 127.0.0.1. No authentication, like ser2net: see the README's security "
        "notes.",
    )
    g.add_argument(
        "--vport-rtu",
        type=_listen,
        default=None,
        metavar="[HOST:]PORT",
        help="serve raw ModBus RTU over TCP, as ser2net's raw mode does (tcp://HOST:PORT/ for aurora_fetch, "
        "RTU-over-TCP clients)",
    )
    g.add_argument(
        "--vport-modbus-tcp",
        type=_listen,
        default=None,
        metavar="[HOST:]PORT",
        help="serve Modbus/TCP (MBAP; unit id 1 or 255) for Home Assistant's ModBus integration, mbpoll, "
        "Node-RED...",
    )
    g.add_argument(
        "--vport-read-only",
        action="store_true",
        default=False,
        help="refuse every write on the virtual ports with exception 1",
    )
    g.add_argument(
        "--vport-max-clients",
        type=_clients,
        default=str(MAX_CLIENTS),
        metavar="N",
        help="clients connected at once, both ports together; more are disconnected (default %(default)s)",
    )
    g.add_argument(
        "--vport-idle-timeout",
        type=_idle_seconds,
        default=str(int(IDLE_TIMEOUT_S)),
        metavar="S",
        help="close a connection that sent no complete request for S seconds (default %(default)s)",
    )


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it ($COLUMNS, else the tty's,
    else 80), without importing shutil (with zlib, bz2 and lzma: ~3 ms before the line opens)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout; only its width is found without shutil (issue 15: start to ready,
    argparse makes a formatter for every option it adds)."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


class _Version(argparse.Action):
    """``--version``; the version (importlib.metadata) is looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from aurora import __version__

        sys.stdout.write(f"aurora_mqtt_bridge {__version__}\n")
        parser.exit()


def build_parser() -> ToolParser:
    """The command line. Defaults come from the environment variable named in each help text."""
    p = ToolParser(
        tool="bridge",
        prog="aurora_mqtt_bridge",
        formatter_class=_Formatter,
        description="Publish a WaterFurnace Aurora heat pump on MQTT as a Homie 4 device with Home Assistant "
        "discovery, accept writes to its settable properties, and keep doing so unattended: the bridge "
        "reconnects to the heat pump and the broker by itself and never exits on bad data.",
        epilog="PORT: /dev/ttyUSB0 (19200 8E1), tcp://host:2000/ (ser2net raw), rfc2217://host:2217/ or a "
        "YAML dump file. MQTT_URL: mqtt://user@broker/, mqtts://user@broker:8883/ or, over WebSockets, "
        "wss://user@broker:8884/ (the path is the WebSocket's, default /mqtt); give the password "
        "with AURORA_MQTT_PASSWORD_FILE (or --mqtt-password-file), not in the URL, where `ps` would show it. "
        "Topics: <root>/aurora-<serial>/... with $state init, ready, alert (heat pump not answering), "
        "lost (will), disconnected (stopped); a retained JSON $health document; "
        "<root>/aurora-<serial>/<node>/<property>/set for writes. "
        "Exit status: 0 stopped by SIGTERM/SIGINT, 1 failure, 2 usage error.",
    )
    p.add_argument("port", nargs="?", default=None, help="the heat pump's line")
    p.add_argument(
        "mqtt_url",
        nargs="?",
        default=None,
        metavar="MQTT_URL",
        help="the broker: mqtt://, mqtts://, or MQTT over WebSockets ws://, wss://",
    )
    p.add_argument(
        "--device-name",
        default="WaterFurnace",
        help="Homie $name and Home Assistant device name (default %(default)s)",
    )
    p.add_argument(
        "--homie",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="publish the Homie attribute topics ($homie, $name, $nodes, $properties, $datatype...); "
        "with --no-homie only $state, $health and the values are published and /set still works "
        "(default on)",
    )
    p.add_argument(
        "--home-assistant",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="publish Home Assistant discovery; --no-home-assistant also removes discovery topics "
        "an earlier run left for this device (default on)",
    )
    p.add_argument(
        "--fast-interval",
        type=_seconds,
        default="5",
        metavar="S",
        help="seconds between reads of fast-changing values: temperatures, power, "
        "modes (default %(default)s)",
    )
    p.add_argument(
        "--medium-interval",
        type=_seconds,
        default="30",
        metavar="S",
        help="seconds between reads of set points and settings (default %(default)s)",
    )
    p.add_argument(
        "--slow-interval",
        type=_seconds,
        default="300",
        metavar="S",
        help="seconds between reads of rarely changing values: fault history, versions (default %(default)s)",
    )
    p.add_argument(
        "--watchdog-cycles",
        type=int,
        default="6",
        metavar="N",
        help="reopen the line when no poll succeeded for N fast intervals (at least 5 s; "
        "default %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=str(DEFAULT_LATENCY_S),
        metavar="S",
        help="time allowed beyond the line time of each reply (default %(default)s)",
    )
    p.add_argument(
        "--allow-raw-writes",
        action="store_true",
        default=False,
        help="let $modbus/<register>/set and the virtual ports write registers outside the known "
        "writable ones (default off)",
    )
    p.add_argument(
        "--mqtt-protocol",
        choices=("3.1.1", "5"),
        default="5",
        help="MQTT protocol version; the $modbus request/response topics want 5 (default %(default)s)",
    )
    p.add_argument(
        "--ha-prefix",
        type=topic_level,
        default="homeassistant",
        help="Home Assistant discovery prefix (default %(default)s)",
    )
    p.add_argument(
        "--energy-state",
        metavar="FILE",
        default=str(default_state_path("{device}")),
        help="where the energy counters are saved (every 2 minutes and on stop), so a restart carries "
        "on where they were even if the broker lost its retained values; {device} stands for the "
        "device id; '-' keeps them on the broker only (default %(default)s)",
    )
    p.add_argument(
        "--energy-max-gap",
        type=_seconds,
        default=None,
        metavar="S",
        help="longest time between two power readings that is still counted; a longer outage adds "
        "nothing to the energy counters (default: 5 fast intervals, at least 3 s)",
    )
    p.add_argument(
        "--debug-modbus",
        action="store_true",
        default=False,
        help="log every frame, from the start-up detection on",
    )
    add_log_format_argument(p)
    p.add_argument(
        "--status-file",
        metavar="FILE",
        default=None,
        help="where the bridge keeps its state for the container healthcheck "
        "(default aurora-bridge.status in the temporary directory)",
    )
    p.add_argument("-v", "--version", action=_Version, help="show the version and exit")
    add_mqtt_arguments(p)
    _add_vport_arguments(p)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line and the environment (pure apart from reading it)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # a malformed variable ends it here, naming the variable
    if not args.port or not args.mqtt_url:
        parser.error("PORT and MQTT_URL are required (or AURORA_BRIDGE_PORT and AURORA_BRIDGE_MQTT_URL)")
    if not is_mqtt_url(args.mqtt_url):
        parser.error(f"{redact(args.mqtt_url)}: MQTT_URL starts with mqtt://, mqtts://, ws:// or wss://")
    if not args.fast_interval <= args.medium_interval <= args.slow_interval:
        parser.error("intervals must grow: --fast-interval <= --medium-interval <= --slow-interval")
    if args.energy_max_gap is not None and args.energy_max_gap < 2 * args.fast_interval:
        parser.error("--energy-max-gap must be at least two fast intervals, or no reading would ever count")
    if args.watchdog_cycles < 2:
        parser.error("--watchdog-cycles must be at least 2")
    return args


def config_from_args(args: argparse.Namespace) -> BridgeConfig:
    """The bridge's configuration; UsageError for an unreadable password or CA file."""
    from aurora.mqtt import MqttSettings
    from paho.mqtt.enums import MQTTProtocolVersion

    from .app import BridgeConfig
    from .spec import Tier

    settings = MqttSettings.from_url(
        args.mqtt_url,
        password_file=args.mqtt_password_file,
        ca_file=args.mqtt_ca_file,
        root=args.homie_root,
        path_is_topic=False,
    )
    return BridgeConfig(
        port=args.port,
        mqtt=settings,
        device_name=args.device_name,
        homie=args.homie,
        home_assistant=args.home_assistant,
        intervals_s={
            Tier.FAST: args.fast_interval,
            Tier.MEDIUM: args.medium_interval,
            Tier.SLOW: args.slow_interval,
        },
        debug_modbus=args.debug_modbus,
        allow_raw_writes=args.allow_raw_writes,
        protocol=MQTTProtocolVersion.MQTTv5 if args.mqtt_protocol == "5" else MQTTProtocolVersion.MQTTv311,
        homie_root=settings.root,
        ha_prefix=args.ha_prefix,
        latency_s=args.timeout,
        watchdog_cycles=args.watchdog_cycles,
        vports=VportConfig(
            rtu=args.vport_rtu,
            modbus_tcp=args.vport_modbus_tcp,
            read_only=args.vport_read_only,
            allow_raw_writes=args.allow_raw_writes,
            max_clients=args.vport_max_clients,
            idle_timeout_s=args.vport_idle_timeout,
        ),
        energy_state=None if args.energy_state in ("", "-") else args.energy_state,
        energy_max_gap_s=args.energy_max_gap,
        status_file=args.status_file,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``aurora_mqtt_bridge``; runs until SIGTERM or SIGINT."""
    args = parse_args(argv)
    configure_logging_on_first_use(debug=args.debug_modbus, fmt=args.log_format)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # The line first: detection waits on it while this thread imports the rest (issue 15).
    from . import early

    started = early.start(
        args.port,
        latency_s=args.timeout,
        debug=args.debug_modbus,
        device_name=args.device_name,
        stop=stop,
    )
    # What detection needs after its first read first (the node modules, which decide what it
    # reads next), then structlog and the MQTT stack, while the first request is on the line.
    from . import properties  # noqa: F401

    configure_pending()
    log_deprecated_names()
    try:
        config = config_from_args(args)
    except UsageError as err:
        log.error("bad_configuration", error=str(err))
        stop.set()
        started.worker.stop()
        return EXIT_USAGE
    if urlsplit(args.mqtt_url).password:
        log.warning("password_in_url", hint="ps shows it; use AURORA_MQTT_PASSWORD_FILE instead")
    from aurora import __version__

    log.info(
        "bridge_starting",
        port=redact(args.port),
        broker=config.mqtt.url,
        version=__version__,
        intervals_s={tier.value: s for tier, s in config.intervals_s.items()},
    )
    from .app import Bridge

    try:
        return Bridge(config, early=started).run(stop)
    except UsageError as err:
        log.error("bad_configuration", error=str(err))
        return EXIT_USAGE
