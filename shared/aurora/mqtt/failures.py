"""What went wrong with the broker, in one line a user can act on (aurora's error tree)."""

from __future__ import annotations

import socket
import ssl

from ..errors import BrokerError, LoginRefused
from .settings import MqttSettings

__all__ = ["closed_before_connack", "connect_failure", "login_refused"]

_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
_PROBE_S = 2.0


def _other(settings: MqttSettings, scheme: str) -> str:
    return f"{scheme}://" + settings.url.split("://", 1)[1]


def connect_failure(settings: MqttSettings, err: BaseException | None) -> BrokerError:
    """The error for an exception from connecting (TCP, the TLS handshake, the WebSocket's)."""
    where = settings.where
    if err is None:
        return BrokerError(f"{settings.url}: cannot reach the broker at {where}")
    if isinstance(err, ssl.SSLCertVerificationError):
        return BrokerError(f"{settings.url}: TLS: {_certificate_advice(settings, err)}")
    if settings.tls and isinstance(err, ssl.SSLError | ConnectionResetError):
        # A plain listener resets (or answers garbage to) a TLS ClientHello.
        reason = err.reason if isinstance(err, ssl.SSLError) else "connection reset"
        plain = (
            "WebSocket listener, use ws://"
            if settings.transport == "websockets"
            else "MQTT listener, use mqtt://"
        )
        return BrokerError(
            f"{settings.url}: the TLS handshake with {where} failed ({reason or err}): if that "
            f"port is a plain {plain}"
        )
    if settings.transport == "websockets" and _websocket_refused(err):
        return _not_a_websocket(settings, err)
    if isinstance(err, ConnectionRefusedError):
        return BrokerError(
            f"{settings.url}: cannot reach the broker at {where}: connection refused "
            "(is mosquitto running and listening on that port?)"
        )
    if isinstance(err, socket.gaierror):
        return BrokerError(
            f"{settings.url}: cannot resolve the broker's host name {settings.host}: {err.strerror}"
        )
    if isinstance(err, TimeoutError | socket.timeout):
        return BrokerError(f"{settings.url}: cannot reach the broker at {where}: connection timed out")
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return BrokerError(f"{settings.url}: cannot reach the broker at {where}: {reason}")


def _websocket_refused(err: BaseException) -> bool:
    # paho's WebsocketConnectionError (a ConnectionError): the upgrade was not answered as one
    return type(err).__name__ == "WebsocketConnectionError" or (
        isinstance(err, ConnectionResetError | BrokenPipeError | EOFError)
    )


def _not_a_websocket(settings: MqttSettings, err: BaseException) -> BrokerError:
    if not settings.tls and _speaks_tls(settings.host, settings.port):
        return BrokerError(
            f"{settings.url}: the broker at {settings.where} expects TLS; use wss:// "
            f"({_other(settings, 'wss')})"
        )
    return BrokerError(
        f"{settings.url}: {settings.where} did not accept a WebSocket on {settings.ws_path} ({err}): "
        f"is it the broker's WebSocket listener? A plain MQTT listener takes "
        f"{'mqtts' if settings.tls else 'mqtt'}://"
    )


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


def login_refused(settings: MqttSettings, reason: object) -> LoginRefused:
    """The error for a CONNACK that refuses the login, saying what to give or check."""
    if not settings.username:
        return LoginRefused(
            f"{settings.url}: the broker refused a login without a user name ({reason}): put the user in "
            f"the URL, e.g. {settings.scheme}://USER@{settings.where}/"
        )
    if settings.password is None:
        return LoginRefused(
            f"{settings.url}: the broker refused the login as {settings.username} ({reason}): no password "
            "was given (--mqtt-password-file, AURORA_MQTT_PASSWORD_FILE or AURORA_MQTT_PASSWORD)"
        )
    return LoginRefused(
        f"{settings.url}: the broker refused the login as {settings.username} ({reason}): check the "
        "user name and its password (--mqtt-password-file, AURORA_MQTT_PASSWORD_FILE or AURORA_MQTT_PASSWORD)"
    )


def closed_before_connack(settings: MqttSettings, reason: object) -> BrokerError:
    """The error for a connection the broker closed before it answered CONNECT. Over mqtt://
    that is what a TLS listener does, so the port is probed for TLS to say so."""
    if not settings.tls and _speaks_tls(settings.host, settings.port):
        secure = "wss" if settings.transport == "websockets" else "mqtts"
        return BrokerError(
            f"{settings.url}: the broker at {settings.where} expects TLS; use {secure}:// "
            f"({_other(settings, secure)})"
        )
    hint = ""
    if settings.transport == "tcp":
        hint = ": if that port is a WebSocket listener, use ws:// or wss://"
    return BrokerError(
        f"{settings.url}: the broker at {settings.where} closed the connection before answering "
        f"({reason}){hint}"
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
