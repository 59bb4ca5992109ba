"""Serial-line transports: open what a port argument names and run RTU transactions over it
(docs/protocol.md#ports, docs/protocol.md#timing). Nothing of MQTT here: a port argument that
may also be a dump or an ``mqtt(s)://`` bridge is opened by :mod:`aurora.ports`.

By job: :mod:`.port_urls` (a port argument as pyserial opens it, and what a failed open means),
:mod:`.streams` (the byte streams: device, ``tcp://``, RFC 2217), :mod:`.rfc2217` (opening RFC
2217 ports past a busy ser2net), :mod:`.ser2net` (ser2net's in-band refusals),
:mod:`.serial_bus` (RTU transactions: timing, retries, confirmed writes).
"""

from __future__ import annotations

from ..rtu import DEFAULT_LATENCY_S
from .port_urls import READ_SLICE_S, SERIAL_SETTINGS
from .ser2net import BUSY_BACKOFF_S, BUSY_RETRIES, PortBusy
from .serial_bus import (
    DEFAULT_ATTEMPTS,
    GARBLED_EXTRA,
    GARBLED_QUIET_S,
    SerialBus,
    open_serial,
    preload_retries,
)
from .streams import LINE_ERRORS, open_stream

__all__ = [
    "BUSY_BACKOFF_S",
    "BUSY_RETRIES",
    "DEFAULT_ATTEMPTS",
    "DEFAULT_LATENCY_S",
    "GARBLED_EXTRA",
    "GARBLED_QUIET_S",
    "LINE_ERRORS",
    "READ_SLICE_S",
    "SERIAL_SETTINGS",
    "PortBusy",
    "SerialBus",
    "open_serial",
    "open_stream",
    "preload_retries",
]
