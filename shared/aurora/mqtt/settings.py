"""Where the broker is, how to reach it and log in, and which topics a tool uses.

A URL names the broker: ``mqtts://user@host:8883/`` (TCP, TLS), ``mqtt://`` (TCP), ``wss://`` and
``ws://`` (MQTT over WebSockets, the URL's path is the WebSocket's, default ``/mqtt``). A tool's
own topic (``homie/aurora-1/$modbus``) is kept apart from the URL: it comes from ``--mqtt-topic``,
or, for ``mqtt(s)://`` only, from the URL's path as the original toolkit wrote it. The password
comes from a file or the environment so it never shows in ``ps``; a password written in the URL
still works but is never logged (``redact``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

from ..errors import UsageError
from ..mqtt_args import DEFAULT_ROOT, MQTT_SCHEMES
from ..options import env_value
from ..records import FrozenRecord
from ..urls import redact

__all__ = [
    "DEVICE_PREFIX",
    "MODBUS",
    "MqttSettings",
    "bridge_client_id",
    "client_id",
    "resolve_topic",
    "shown_client_id",
]

# The variables of aurora.options' scheme (their old names MQTT_* still work, with a warning)
PASSWORD_FILE_VAR = "AURORA_MQTT_PASSWORD_FILE"
PASSWORD_VAR = "AURORA_MQTT_PASSWORD"
CA_FILE_VAR = "AURORA_MQTT_CA_FILE"
DEVICE_PREFIX = "aurora-"
MODBUS = "$modbus"  # aurora.rpc.MODBUS, without importing the RPC layer here
WS_PATH = "/mqtt"  # what paho and most brokers' WebSocket endpoints use
# mqtt(s):// as MQTT registers them; ws(s):// as HTTP does (a WebSocket listener behind a proxy)
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}

Transport = Literal["tcp", "websockets"]


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise UsageError(f"cannot read the MQTT password file {path}: {err.strerror}") from err


def resolve_topic(topic: str) -> tuple[str | None, str | None]:
    """A tool's topic → (Homie root or None, device or None to discover).

    ``homie/aurora-1/$modbus`` and ``homie/aurora-1`` name a device; ``homie`` only the root;
    ``/`` and ``''`` neither.
    """
    parts = [p for p in topic.split("/") if p]
    if parts and parts[-1] == MODBUS:
        parts.pop()
    if any(c in p for p in parts for c in "+#"):
        raise UsageError(f"{topic!r}: a topic path cannot hold + or #")
    if not parts:
        return None, None
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 2:
        return parts[0], parts[1]
    raise UsageError(f"{topic!r}: give the device's topic, e.g. homie/aurora-2611000042/$modbus")


class MqttSettings(FrozenRecord):
    """Where the broker is, how to log in, and the Homie root and device a tool uses."""

    _fields = (
        "host",
        "port",
        "tls",
        "username",
        "password",
        "ca_file",
        "transport",
        "ws_path",
        "root",
        "device",
        "url",
    )
    __slots__ = _fields
    host: Final[str]
    port: Final[int]
    tls: Final[bool]
    username: Final[str | None]
    password: Final[str | None]  # never in repr
    ca_file: Final[str | None]
    transport: Final[Transport]
    ws_path: Final[str]  # the WebSocket's HTTP path (transport "websockets" only)
    root: Final[str]  # the Homie tree's first level
    device: Final[str | None]  # the device a tool uses; None: the broker's only one
    url: Final[str]  # redacted, for messages

    def __init__(
        self,
        host: str,
        port: int,
        tls: bool,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        transport: Transport = "tcp",
        ws_path: str = WS_PATH,
        root: str = DEFAULT_ROOT,
        device: str | None = None,
        url: str = "",
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.username, self.password, self.ca_file = username, password, ca_file
        self.transport, self.ws_path, self.root = transport, ws_path, root
        self.device, self.url = device, url

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields if n != "password")
        return f"MqttSettings({shown})"

    def replace(self, **changes: Any) -> MqttSettings:
        """A copy with ``changes`` (field=value), as ``dataclasses.replace`` made one."""
        values = {name: getattr(self, name) for name in self._fields}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"MqttSettings has no field {sorted(unknown)[0]!r}")
        values.update(changes)
        host, port, tls = values.pop("host"), values.pop("port"), values.pop("tls")
        return MqttSettings(host, port, tls, **values)

    @property
    def scheme(self) -> str:
        """The URL scheme these settings stand for (``mqtts``, ``wss``, …)."""
        base = "ws" if self.transport == "websockets" else "mqtt"
        return base + ("s" if self.tls else "")

    @property
    def where(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    def topic(self) -> str:
        """The tool's device topic ``<root>/<device>/$modbus`` (a device must be known)."""
        if self.device is None:
            raise UsageError("no device named: give --mqtt-topic ROOT/DEVICE/$modbus")
        return f"{self.root}/{self.device}/{MODBUS}"

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        password_file: str | None = None,
        ca_file: str | None = None,
        topic: str | None = None,
        root: str | None = None,
        path_is_topic: bool = True,
    ) -> MqttSettings:
        """Parse an MQTT URL; password: URL, then file (flag, env), then env value.

        ``topic`` (``--mqtt-topic``) names the tool's device; an ``mqtt(s)://`` URL's path may
        name it instead (``path_is_topic`` False: the bridge, which has no such topic, ignores
        the path). ``root`` (``--homie-root``) is the Homie root when the topic names none.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in MQTT_SCHEMES:
            raise UsageError(f"{redact(url)}: an MQTT URL starts with mqtt://, mqtts://, ws:// or wss://")
        if not parts.hostname:
            raise UsageError(f"{redact(url)}: no broker host")
        tls, websockets = MQTT_SCHEMES[scheme]
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError as err:
            raise UsageError(f"{redact(url)}: {err}") from err
        path = unquote(parts.path)
        ws_path = WS_PATH
        if websockets:
            ws_path = path if path.strip("/") else WS_PATH
        elif path.strip("/") and path_is_topic:
            if topic is not None and topic.strip("/") != path.strip("/"):
                raise UsageError(
                    f"{redact(url)}: the URL's path names the topic {path.strip('/')!r} and "
                    f"--mqtt-topic {topic!r}: give it once"
                )
            topic = path
        topic_root, device = resolve_topic(topic or "")
        if root is not None and topic_root is not None and topic_root != root:
            raise UsageError(
                f"the topic {(topic or '').strip('/')!r} is under {topic_root}/, --homie-root says "
                f"{root}: give one of them"
            )
        password = unquote(parts.password) if parts.password is not None else None
        if password is None:
            secret_file = password_file or env_value(PASSWORD_FILE_VAR)
            password = _read_secret(secret_file) if secret_file else env_value(PASSWORD_VAR)
        ca = ca_file or env_value(CA_FILE_VAR)
        if ca and not Path(ca).is_file():
            raise UsageError(f"CA file {ca} does not exist")
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=password,
            ca_file=ca,
            transport="websockets" if websockets else "tcp",
            ws_path=ws_path,
            root=topic_root or root or DEFAULT_ROOT,
            device=device,
            url=redact(url),
        )


def client_id(prefix: str) -> str:
    """A tool's client id ``<prefix>-<random>``: new on every run, known to no other account."""
    return f"{prefix}-{os.urandom(6).hex()}"  # 48 random bits, as uuid4().hex[:12] had


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
    import hashlib  # the bridge's only: a tool need not import it (issue 15)
    import hmac

    message = f"aurora bridge client id\0{username or ''}\0{serial}".encode()
    digest = hmac.new(password.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"bridge-{serial}-{digest[:BRIDGE_ID_DIGITS]}"


def shown_client_id(cid: str) -> str:
    """A bridge's client id as logs may show it: its secret part left out."""
    head, sep, tail = cid.rpartition("-")
    if cid.startswith("bridge-") and head.count("-") >= 1 and len(tail) == BRIDGE_ID_DIGITS:
        return f"{head}{sep}…"
    return cid
