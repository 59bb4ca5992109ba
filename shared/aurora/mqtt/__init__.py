"""The MQTT edge: settings from a URL (``settings``), one adapter over paho (``connection``) and
errors a user can act on (``failures``). Nothing here knows of serial ports.

``aurora.mqtt_args`` answers "is this MQTT?" and builds the shared options without paho.
"""

from __future__ import annotations

from ..mqtt_args import add_mqtt_arguments, is_mqtt_url
from ..urls import redact
from .connection import KEEPALIVE_S, MqttConnection, choose_device, make_client, set_no_delay
from .failures import closed_before_connack, connect_failure, login_refused
from .settings import (
    DEVICE_PREFIX,
    MqttSettings,
    bridge_client_id,
    client_id,
    resolve_topic,
    shown_client_id,
)

__all__ = [
    "DEVICE_PREFIX",
    "KEEPALIVE_S",
    "MqttConnection",
    "MqttSettings",
    "add_mqtt_arguments",
    "bridge_client_id",
    "choose_device",
    "client_id",
    "closed_before_connack",
    "connect_failure",
    "is_mqtt_url",
    "login_refused",
    "make_client",
    "redact",
    "resolve_topic",
    "set_no_delay",
    "shown_client_id",
]
