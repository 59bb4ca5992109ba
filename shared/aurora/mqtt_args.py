"""The MQTT command-line options every tool shares, apart from ``aurora.mqtt`` so that a tool's
command line can be built without importing paho (``aurora_fetch tcp://…`` never needs it)."""

from __future__ import annotations

import argparse


def add_mqtt_arguments(parser: argparse.ArgumentParser) -> None:
    """The MQTT options every tool shares."""
    group = parser.add_argument_group("MQTT")
    group.add_argument(
        "--mqtt-password-file",
        metavar="FILE",
        default=None,
        help="file holding the MQTT password [MQTT_PASSWORD_FILE]; or set MQTT_PASSWORD",
    )
    group.add_argument(
        "--mqtt-ca-file",
        metavar="FILE",
        default=None,
        help="CA certificate for mqtts:// when the broker's is not publicly trusted [MQTT_CA_FILE]",
    )
