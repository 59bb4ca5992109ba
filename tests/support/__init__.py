"""Shared helpers for integration tests: processes with deadlines, and a broker with the
project's own TLS, passwords and ACL (``Broker``, ``Collector``)."""

from __future__ import annotations

from .broker import Broker, Collector, MqttRefused, MQTTv5, MQTTv311, RestartableBroker, local_config, publish
from .processes import free_port, running, wait_for, wait_for_port

__all__ = [
    "Broker",
    "Collector",
    "MQTTv5",
    "MQTTv311",
    "MqttRefused",
    "RestartableBroker",
    "free_port",
    "local_config",
    "publish",
    "running",
    "wait_for",
    "wait_for_port",
]
