"""What every tool needs to know about MQTT before it imports paho: which URLs are MQTT, and the
command-line options they share (``aurora_fetch tcp://…`` never loads paho).

On an ``aurora.options.ToolParser`` each option also reads its ``AURORA_MQTT_*`` variable (and
``--homie-root`` ``AURORA_HOMIE_ROOT``), the same in every tool."""

from __future__ import annotations

import argparse
import re
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_ROOT",
    "MQTT_SCHEMES",
    "add_mqtt_arguments",
    "is_mqtt_url",
    "topic_level",
]

# scheme -> (TLS, WebSocket): the one table every "is this MQTT?" question is answered from
MQTT_SCHEMES: dict[str, tuple[bool, bool]] = {
    "mqtt": (False, False),
    "mqtts": (True, False),
    "ws": (False, True),
    "wss": (True, True),
}
DEFAULT_ROOT = "homie"
_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9_-]+$")


def is_mqtt_url(url: str) -> bool:
    """Whether ``url`` names a broker: ``mqtt://``, ``mqtts://``, ``ws://`` or ``wss://``."""
    return "://" in url and urlsplit(url).scheme.lower() in MQTT_SCHEMES


def topic_level(text: str) -> str:
    """An argparse type: one topic level of letters, digits, ``-`` or ``_``."""
    if not _TOPIC_LEVEL.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} must be one topic level of letters, digits, - or _")
    return text


def add_mqtt_arguments(parser: argparse.ArgumentParser, *, tool: bool = False) -> None:
    """The MQTT options every tool shares; ``tool``: also ``--mqtt-topic`` (the device to use)."""
    group = parser.add_argument_group("MQTT")
    group.add_argument(
        "--mqtt-password-file",
        metavar="FILE",
        default=None,
        help="file holding the MQTT password; or set AURORA_MQTT_PASSWORD (never in the URL: ps shows it)",
    )
    group.add_argument(
        "--mqtt-ca-file",
        metavar="FILE",
        default=None,
        help="CA certificate for mqtts:// and wss:// when the broker's is not publicly trusted",
    )
    group.add_argument(
        "--homie-root",
        type=topic_level,
        metavar="ROOT",
        default=None,  # None: the tool's topic's, else DEFAULT_ROOT
        help="first topic level of the Homie tree: where the bridge publishes, and where the other "
        f"tools look for it (default {DEFAULT_ROOT})",
    )
    if tool:
        group.add_argument(
            "--mqtt-topic",
            metavar="TOPIC",
            default=None,
            help="the device to use, e.g. homie/aurora-2611000042/$modbus; an mqtt(s):// URL may "
            "give it as its path instead (a ws(s):// URL's path is the WebSocket's); without it the "
            "broker's only aurora device is used",
        )
