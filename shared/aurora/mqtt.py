"""MQTT connection settings and the paho client factory every service uses (no serial here).

A URL names the broker and, for tools, the topic: ``mqtts://user@host:8883/homie/aurora-1/$modbus``.
The password comes from a file or the environment so it never shows in ``ps``; a password written
in the URL still works but is never logged (``redact``).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from .errors import UsageError
from .transport import redact

__all__ = [
    "MqttSettings",
    "add_mqtt_arguments",
    "bridge_client_id",
    "client_id",
    "make_client",
    "redact",
    "shown_client_id",
]

log = structlog.get_logger(__name__)

PASSWORD_FILE_VARS = ("MQTT_PASSWORD_FILE", "AURORA_MQTT_PASSWORD_FILE")
PASSWORD_VARS = ("MQTT_PASSWORD", "AURORA_MQTT_PASSWORD")
CA_FILE_VARS = ("MQTT_CA_FILE", "AURORA_MQTT_CA_FILE")


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise UsageError(f"cannot read the MQTT password file {path}: {err.strerror}") from err


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where the broker is and how to log in."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    path: str = ""  # the URL's path without its leading slash: a topic for tools
    url: str = ""  # redacted, for messages

    @classmethod
    def from_url(
        cls, url: str, *, password_file: str | None = None, ca_file: str | None = None
    ) -> MqttSettings:
        """Parse ``mqtt://`` or ``mqtts://``; password: URL, then file (flag, env), then env value."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("mqtt", "mqtts"):
            raise UsageError(f"{redact(url)}: an MQTT URL starts with mqtt:// or mqtts://")
        if not parts.hostname:
            raise UsageError(f"{redact(url)}: no broker host")
        tls = scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as err:
            raise UsageError(f"{redact(url)}: {err}") from err
        password = unquote(parts.password) if parts.password is not None else None
        if password is None:
            secret_file = password_file or _first_env(PASSWORD_FILE_VARS)
            password = _read_secret(secret_file) if secret_file else _first_env(PASSWORD_VARS)
        ca = ca_file or _first_env(CA_FILE_VARS)
        if ca and not Path(ca).is_file():
            raise UsageError(f"CA file {ca} does not exist")
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=password,
            ca_file=ca,
            path=unquote(parts.path).lstrip("/"),
            url=redact(url),
        )


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


def client_id(prefix: str) -> str:
    """A tool's client id ``<prefix>-<random>``: new on every run, known to no other account."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


BRIDGE_ID_DIGITS = 24  # 96 bits: no one guesses it, as no one guesses the password it comes from


def bridge_client_id(serial: str, username: str | None, password: str | None) -> str:
    """The bridge's client id: ``bridge-<serial>-<24 hex digits>``, an HMAC of its own password.

    mosquitto lets any logged-in account connect with any client id and then closes the older
    connection of that id (which would publish the bridge's ``lost`` will), and nothing in its
    password file or ACL can tie an id to a user (mosquitto/README.md). So the id is one no other
    account can know: it derives from the bridge's password, never appears in a topic, and is the
    same on every start (the broker keeps the bridge's session under it) until the password
    changes. Without a password the broker tells no one apart anyway: ``bridge-<serial>``.
    """
    if not password:
        return f"bridge-{serial}"
    message = f"aurora bridge client id\0{username or ''}\0{serial}".encode()
    digest = hmac.new(password.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"bridge-{serial}-{digest[:BRIDGE_ID_DIGITS]}"


def shown_client_id(cid: str) -> str:
    """A bridge's client id as logs may show it: its secret part left out."""
    head, sep, tail = cid.rpartition("-")
    if cid.startswith("bridge-") and head.count("-") >= 1 and len(tail) == BRIDGE_ID_DIGITS:
        return f"{head}{sep}…"
    return cid


def make_client(
    settings: MqttSettings,
    client_id: str,
    *,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
) -> mqtt.Client:
    """A paho 2.x client (VERSION2 callbacks), credentials and TLS set; not connected yet."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        reconnect_on_failure=True,
    )
    client.suppress_exceptions = True  # a bug in one callback must not kill the network thread
    client.enable_logger(logging.getLogger("paho"))
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        context = ssl.create_default_context(cafile=settings.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        client.tls_set_context(context)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.on_socket_open = _no_delay
    return client


def _no_delay(client: mqtt.Client, userdata: object, sock: object) -> None:
    """TCP_NODELAY on every (re)connect: without it a QoS 1 request/response costs 44-88 ms of
    Nagle and delayed ACK instead of ~1 ms on loopback (shared/spec/infra.md §1.6)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
