"""Opening an RFC 2217 (``rfc2217://``, ``telnet://``) port: ser2net refuses a busy device during
the option negotiation, so the open is retried a few times and a refusal is told apart from a
server that does not speak RFC 2217 (docs/protocol.md#ser2net). The client itself is
``aurora.urlhandler.protocol_rfc2217``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import serial

from ..errors import BusError
from ..logs import get_logger
from ..urls import redact
from .port_urls import READ_SLICE_S, open_error
from .ser2net import BUSY_BACKOFF_S, BUSY_RETRIES, PortBusy, raise_for_ser2net_text

if TYPE_CHECKING:
    from ..urlhandler import protocol_rfc2217

log = get_logger(__name__)  # structlog only once something logs (issue 15)


def open_rfc2217(url: str, pyserial_url: str, settings: dict[str, object]) -> protocol_rfc2217.Serial:
    shown = redact(url)
    said: BusError | None = None  # the last refusal ser2net managed to get across
    for attempt in range(BUSY_RETRIES + 1):
        port: protocol_rfc2217.Serial = serial.serial_for_url(
            pyserial_url, timeout=READ_SLICE_S, do_not_open=True, **settings
        )
        tried_at = time.monotonic()
        try:
            port.open()
            return port
        except (serial.SerialException, OSError) as err:
            # ser2net refuses in band, then hangs up mid-negotiation (docs/protocol.md#ser2net). Our
            # option replies may then draw a TCP reset that discards its text, so an attempt can
            # end without the reason: remember the last one that came through.
            text = port.pending_after_hangup()
            port.close()
            # pyserial's SerialException is an OSError too; "Could not open port" is the TCP connect.
            if "Could not open port" in str(err):
                raise open_error(url, err) from err
            # Plain telnet without COM-port control: the options are refused or never answered.
            plain_telnet = any(m in str(err) for m in ("not seem to support RFC2217", "not accept parameter"))
            if plain_telnet and not text:
                raise BusError(
                    f"{shown}: the server does not speak RFC 2217 (ser2net: accepter telnet(rfc2217),PORT "
                    "in ser2net.yaml, or remctl on a legacy ser2net.conf telnet line; a raw port is tcp://)"
                ) from err
            try:
                raise_for_ser2net_text(shown, text)
            except PortBusy as busy:
                said = busy
            except BusError as refused:
                raise refused from err  # a missing device does not come back by retrying
            # ser2net refuses within milliseconds; a slow failure is something else: do not repeat it.
            if attempt == BUSY_RETRIES or (said is None and time.monotonic() - tried_at > 1.0):
                raise said or BusError(
                    f"{shown}: the server hung up during RFC 2217 negotiation (ser2net: device busy "
                    "or missing? its log says which; tcp:// shows its message)"
                ) from err
            log.warning("port_busy_reconnect", port=shown, after_s=BUSY_BACKOFF_S)
            time.sleep(BUSY_BACKOFF_S)  # ser2net frees the device a moment after a client leaves
    raise AssertionError("unreachable")
