"""The raw byte stream a port argument names, from pyserial's ``serial_for_url``: a device path
(19200 8E1), ``tcp://host:port/`` (ser2net raw), ``telnet://``/``rfc2217://`` (RFC 2217 sets
19200 8E1 itself). The network schemes open through this suite's handlers in
``aurora.urlhandler``, registered here (docs/protocol.md#ports)."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import serial

from .. import urlhandler
from ..errors import BusError
from ..urlhandler import protocol_tcp
from .port_urls import READ_SLICE_S, for_pyserial, open_error
from .rfc2217 import open_rfc2217

# First in pyserial's search list: tcp:// is ours alone, and rfc2217:// must find the hardened
# client before pyserial's own.
if urlhandler.__name__ not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.insert(0, urlhandler.__name__)


try:
    import termios

    # tcflush on a tty whose other end is gone (a pty whose simulator died, an unplugged adapter
    # behind some drivers) raises termios.error, which is no OSError: it must count as a lost line.
    LINE_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError, termios.error)
except ImportError:  # not POSIX
    LINE_ERRORS = (serial.SerialException, OSError)


def open_stream(url: str) -> serial.SerialBase:
    """The raw byte stream a device path, tcp://, telnet:// or rfc2217:// port names.

    ``read(n)`` waits at most 0.05 s; errors are BusError with the user's document's wording.
    For a passive listener (``aurora_monitor``) as much as for ``SerialBus``.
    """
    pyserial_url, settings = for_pyserial(url)
    try:
        return connect(url, pyserial_url, settings)
    except BusError:
        raise
    except (serial.SerialException, OSError, ValueError) as err:
        raise open_error(url, err) from err


def connect(url: str, pyserial_url: str, settings: dict[str, object]) -> serial.SerialBase:
    if urlsplit(pyserial_url).scheme == "rfc2217":
        return open_rfc2217(url, pyserial_url, settings)
    return serial.serial_for_url(pyserial_url, timeout=READ_SLICE_S, **settings)


def is_network(port: object) -> bool:
    if isinstance(port, protocol_tcp.Serial):
        return True
    # pyserial imports our RFC 2217 handler when a URL needs it: not imported, not one of its ports.
    rfc2217 = sys.modules.get(f"{urlhandler.__name__}.protocol_rfc2217")
    return rfc2217 is not None and isinstance(port, rfc2217.Serial)


def pending_bytes(port: object) -> bytes:
    """Bytes a network stream received before it failed (empty for other ports)."""
    pending = getattr(port, "pending", None)
    if not callable(pending):
        return b""
    try:
        out = pending()
    except (OSError, serial.SerialException):
        return b""
    return out if isinstance(out, bytes) else b""
