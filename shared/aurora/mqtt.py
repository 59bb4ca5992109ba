"""MQTT connection settings and the paho client factory every service uses (no serial here).

A URL names the broker and, for tools, the topic: ``mqtts://user@host:8883/homie/aurora-1/$modbus``.
The password comes from a file or the environment so it never shows in ``ps``; a password written
in the URL still works but is never logged (``redact``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from .errors import BusError, UsageError
from .logs import get_logger
from .mqtt_args import add_mqtt_arguments  # re-exported: where the tools used to find it
from .options import env_value
from .urls import redact

__all__ = [
    "MqttSettings",
    "add_mqtt_arguments",
    "bridge_client_id",
    "client_id",
    "closed_before_connack",
    "connect_failure",
    "login_refused",
    "make_client",
    "redact",
    "shown_client_id",
]

log = get_logger(__name__)  # structlog only once something logs (issue 15)

# The variables of aurora.options' scheme (their old names MQTT_* still work, with a warning)
PASSWORD_FILE_VAR = "AURORA_MQTT_PASSWORD_FILE"
PASSWORD_VAR = "AURORA_MQTT_PASSWORD"
CA_FILE_VAR = "AURORA_MQTT_CA_FILE"


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
            path=unquote(parts.path).lstrip("/"),
            url=redact(url),
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
    Nagle and delayed ACK instead of ~1 ms on loopback (docs/architecture.md#broker)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --- what went wrong, in one line a user can act on ----------------------------------------------

_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
_PROBE_S = 2.0


def _where(settings: MqttSettings) -> str:
    return f"{settings.host}:{settings.port}"


def connect_failure(settings: MqttSettings, err: BaseException) -> BusError:
    """The error for an exception from connecting (TCP or the TLS handshake)."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return BusError(f"{settings.url}: TLS: {_certificate_advice(settings, err)}")
    if settings.tls and isinstance(err, ssl.SSLError | ConnectionResetError):
        # A plain listener resets (or answers garbage to) a TLS ClientHello.
        reason = err.reason if isinstance(err, ssl.SSLError) else "connection reset"
        return BusError(
            f"{settings.url}: the TLS handshake with {_where(settings)} failed ({reason or err}): if that "
            "port is a plain MQTT listener, use mqtt://"
        )
    if isinstance(err, ConnectionRefusedError):
        return BusError(
            f"{settings.url}: cannot reach the broker at {_where(settings)}: connection refused "
            "(is mosquitto running and listening on that port?)"
        )
    if isinstance(err, socket.gaierror):
        return BusError(
            f"{settings.url}: cannot resolve the broker's host name {settings.host}: {err.strerror}"
        )
    if isinstance(err, TimeoutError | socket.timeout):
        return BusError(
            f"{settings.url}: cannot reach the broker at {_where(settings)}: connection timed out"
        )
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return BusError(f"{settings.url}: cannot reach the broker at {_where(settings)}: {reason}")


def _certificate_advice(settings: MqttSettings, err: ssl.SSLCertVerificationError) -> str:
    message = str(getattr(err, "verify_message", "") or err.reason or err)
    if getattr(err, "verify_code", None) == _HOSTNAME_MISMATCH:
        # A CA does not help here: the certificate is trusted but made for other names.
        names = _certificate_names(settings.host, settings.port)
        holds = (
            f"names {', '.join(names)}, not {settings.host}" if names else f"does not name {settings.host}"
        )
        return (
            f"the broker's certificate {holds}: use a name it holds in the URL, or add this one to it "
            f"(aurora_setup --host {settings.host})"
        )
    if settings.ca_file:
        return (
            f"the broker's certificate is not signed by the CA in {settings.ca_file} ({message}): "
            "give this broker's own CA (ca.crt of its aurora_setup directory)"
        )
    return f"{message} (give the broker's CA with --mqtt-ca-file or AURORA_MQTT_CA_FILE)"


def _certificate_names(host: str, port: int) -> list[str]:
    """The DNS names and addresses the broker's certificate holds (empty when they cannot be had)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only to read the names for the message
    try:
        from cryptography import x509

        with (
            socket.create_connection((host, port), timeout=_PROBE_S) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        if der is None:
            return []
        names = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        return [str(v) for v in names.value.get_values_for_type(x509.DNSName)] + [
            str(v) for v in names.value.get_values_for_type(x509.IPAddress)
        ]
    except (ImportError, OSError, ValueError, x509.ExtensionNotFound):
        return []


def login_refused(settings: MqttSettings, reason: object) -> BusError:
    """The error for a CONNACK that refuses the login, saying what to give or check."""
    if not settings.username:
        return BusError(
            f"{settings.url}: the broker refused a login without a user name ({reason}): put the user in "
            f"the URL, e.g. {settings.url.split('://', 1)[0]}://USER@{_where(settings)}/"
        )
    if settings.password is None:
        return BusError(
            f"{settings.url}: the broker refused the login as {settings.username} ({reason}): no password "
            "was given (--mqtt-password-file, AURORA_MQTT_PASSWORD_FILE or AURORA_MQTT_PASSWORD)"
        )
    return BusError(
        f"{settings.url}: the broker refused the login as {settings.username} ({reason}): check the "
        "user name and its password (--mqtt-password-file, AURORA_MQTT_PASSWORD_FILE or AURORA_MQTT_PASSWORD)"
    )


def closed_before_connack(settings: MqttSettings, reason: object) -> BusError:
    """The error for a connection the broker closed before it answered CONNECT. Over mqtt://
    that is what a TLS listener does, so the port is probed for TLS to say so."""
    if not settings.tls and _speaks_tls(settings.host, settings.port):
        secure = "mqtts://" + settings.url.split("://", 1)[1]
        return BusError(
            f"{settings.url}: the broker at {_where(settings)} expects TLS; use mqtts:// ({secure})"
        )
    return BusError(
        f"{settings.url}: the broker at {_where(settings)} closed the connection before answering ({reason})"
    )


def _speaks_tls(host: str, port: int) -> bool:
    """Whether a TLS handshake succeeds on host:port; nothing is sent after it, nothing trusted."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # a probe only: no data is exchanged over it
    try:
        with (
            socket.create_connection((host, port), timeout=_PROBE_S) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False
