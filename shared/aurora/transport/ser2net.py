"""ser2net's ways of saying no (docs/protocol.md#ser2net): the text it writes into the data
stream before it hangs up, turned into errors a user can act on, and how long a busy device
takes to come free."""

from __future__ import annotations

import re

from ..errors import BusError

SER2NET_BUSY = b"already in use"  # "Port already in use", "Port's device already in use"
SER2NET_OPEN_FAIL = b"Device open failure"


class PortBusy(BusError):
    """ser2net said its device is in use (another client, or one that has just left)."""


BUSY_RETRIES = 3
BUSY_BACKOFF_S = 0.2


def _ser2net_line(text: bytes, marker: bytes) -> str:
    """ser2net's sentence around ``marker`` ("Port's device already in use"), telnet bytes left out."""
    at = text.find(marker)
    start, end = at, at + len(marker)
    while start > 0 and 0x20 <= text[start - 1] < 0x7F:
        start -= 1
    while end < len(text) and 0x20 <= text[end] < 0x7F:
        end += 1
    line = text[start:end].decode("ascii")
    first_capital = re.search(r"[A-Z]", line)  # a telnet option byte such as ',' may lead the run
    return line[first_capital.start() if first_capital else 0 :].strip()


def raise_for_ser2net_text(name: str, text: bytes) -> None:
    """Turn ser2net's in-band error text into a BusError a user can act on."""
    if SER2NET_BUSY in text:
        raise PortBusy(
            f"Serial port busy - {name}: ser2net answered '{_ser2net_line(text, SER2NET_BUSY)}' "
            "(another client holds the port; stop it, or set kickolduser: true in ser2net's config)"
        )
    if SER2NET_OPEN_FAIL in text:
        raise BusError(
            f"{name}: ser2net cannot open its serial device: '{_ser2net_line(text, SER2NET_OPEN_FAIL)}' "
            "(check the connector's device path in ser2net's config, and write a define as *(dev))"
        )


def lost_error(name: str, err: Exception) -> BusError:
    text = str(err)
    if not isinstance(err, OSError) and len(err.args) == 2 and isinstance(err.args[1], str):
        text = f"the device is gone: {err.args[1]}"  # termios.error(errno, text)
    if "closed by the server" in text or "reader thread died" in text or "disconnected" in text:
        return BusError(
            f"{name}: connection closed by the server (another client may have taken the port over: "
            "ser2net kickolduser)"
        )
    return BusError(f"{name}: {text}")
