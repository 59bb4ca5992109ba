"""A port argument as pyserial opens it: which URL, which line settings, and what a failed open
means in words a user can act on (docs/protocol.md#ports)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import serial

from ..errors import BusError, UsageError
from ..urls import redact

SERIAL_SETTINGS = {"baudrate": 19200, "bytesize": 8, "parity": serial.PARITY_EVEN, "stopbits": 1}
READ_SLICE_S = 0.05  # fixed read timeout: changing it re-applies termios, which fails on a pty


def for_pyserial(url: str) -> tuple[str, dict[str, object]]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        parts.port  # noqa: B018 -- urllib checks the port only when asked
    except ValueError as err:
        raise UsageError(f"{redact(url)}: {err}") from None
    if scheme == "tcp":
        if not parts.hostname or not parts.port:
            raise UsageError(
                f"{url}: a tcp:// port needs a host and a port, e.g. tcp://raspberrypi.local:2000/"
            )
        return url, {}
    if scheme in ("telnet", "rfc2217"):
        if not parts.hostname:
            raise UsageError(f"{url}: needs a host, e.g. rfc2217://raspberrypi.local:2217/")
        # ign_set_control: ser2net on a pty cannot change modem lines; the line settings still apply.
        query = "ign_set_control" + (f"&{parts.query}" if parts.query else "")
        return f"rfc2217://{parts.hostname}:{parts.port or 23}?{query}", dict(SERIAL_SETTINGS)
    if scheme in ("socket", "loop", "spy"):
        return url, {}
    settings: dict[str, object] = {**SERIAL_SETTINGS, "exclusive": True}
    if os.path.realpath(url).startswith("/dev/pts/"):
        # A pseudo-terminal carries no parity; asking for it fails when the pty is opened again.
        settings["parity"] = serial.PARITY_NONE
    return url, settings


def open_error(url: str, err: Exception) -> BusError | UsageError:
    text = str(err)
    shown = redact(url)
    if "Connection refused" in text or isinstance(err.__cause__, ConnectionRefusedError):
        return BusError(f"Connection refused - {shown}")
    if "timed out" in text or isinstance(err.__cause__, TimeoutError):
        return BusError(f"Timeout connecting to {shown}")
    if "exclusively lock" in text or "Resource busy" in text or "Device or resource busy" in text:
        return BusError(f"Serial port busy - {shown}")
    unresolved = err if isinstance(err, socket.gaierror) else err.__cause__
    if isinstance(unresolved, socket.gaierror):
        return BusError(f"Cannot resolve host name - {shown} ({unresolved.strerror or text})")
    if "protocol" in text and "not known" in text:
        return UsageError(
            f"{shown}: not a port; give a serial device (/dev/ttyUSB0), tcp://HOST:PORT/, "
            "rfc2217://HOST:PORT/, a YAML dump file or mqtts://USER@BROKER/"
        )
    cause = err.__cause__ if isinstance(err.__cause__, OSError) else err
    errno_ = cause.errno if isinstance(cause, OSError) else None
    if errno_ == errno.ENOENT or "No such file" in text:
        if Path(url).suffix.lower() in (".yml", ".yaml"):
            return UsageError(f"{shown}: no such dump file")
        return BusError(
            f"Cannot open {shown}: no such device (is the adapter plugged in? ls /dev/serial/by-id/)"
        )
    if errno_ == errno.EACCES or "Permission denied" in text:
        return BusError(f"Cannot open {shown}: permission denied (is this user in the dialout group?)")
    if errno_ == errno.EISDIR or "Is a directory" in text:
        return BusError(f"Cannot open {shown}: a directory, not a serial device or dump file")
    if "Inappropriate ioctl" in text:
        return BusError(f"Cannot open {shown}: not a serial device (it takes no serial settings)")
    if "could not open port" in text.lower():
        return BusError(f"Cannot open {shown}: {text}")
    return BusError(f"{shown}: {text}")
