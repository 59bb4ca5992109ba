"""The MQTT command-line options every tool shares, apart from ``aurora.mqtt`` so that a tool's
command line can be built without importing paho (``aurora_fetch tcp://…`` never needs it).

On an ``aurora.options.ToolParser`` each option also reads its ``AURORA_MQTT_*`` variable, the same
in every tool."""

from __future__ import annotations

import argparse


def add_mqtt_arguments(parser: argparse.ArgumentParser) -> None:
    """The MQTT options every tool shares."""
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
        help="CA certificate for mqtts:// when the broker's is not publicly trusted",
    )
