"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``): how the bridge tells its service
manager that it is ready, alive, what it is doing, and that it is stopping."""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger(__name__)


def sd_notify(message: str) -> bool:
    """Tell systemd how the bridge is; a no-op elsewhere.

    Returns whether a message was sent. ``NOTIFY_SOCKET`` may name an abstract socket (``@…``).
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), target)
    except OSError as err:
        log.warning("sd_notify_failed", error=str(err))
        return False
    return True
