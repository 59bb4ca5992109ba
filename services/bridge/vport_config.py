"""The virtual ports' settings as the command line gives them (cli.py's --vport-* options).

Apart from :mod:`.vport` (which imports asyncio), and a record rather than a dataclass, so that the
command line can be read before the bridge's heavier modules are imported (issue 15: start to
ready).
"""

from __future__ import annotations

from typing import Final

from aurora.records import FrozenRecord

DEFAULT_HOST = "127.0.0.1"
MAX_CLIENTS = 16
IDLE_TIMEOUT_S = 300.0  # no complete request for this long: the connection is closed


def parse_listen(text: str) -> tuple[str, int]:
    """``2000``, ``0.0.0.0:2000`` or ``[::1]:2000`` -> (host, port); the host defaults to 127.0.0.1.

    Raises ValueError with a message for the command line.
    """
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_HOST, text
    host = host.strip("[]") or DEFAULT_HOST
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: give [HOST:]PORT with a port of 1..65535")
    return host, int(port_text)


class VportConfig(FrozenRecord):
    """Where the virtual ports listen and what they allow (cli.py's --vport-* options)."""

    _fields = ("rtu", "modbus_tcp", "read_only", "allow_raw_writes", "max_clients", "idle_timeout_s")
    __slots__ = _fields
    rtu: Final[tuple[str, int] | None]
    modbus_tcp: Final[tuple[str, int] | None]
    read_only: Final[bool]
    allow_raw_writes: Final[bool]
    max_clients: Final[int]
    idle_timeout_s: Final[float]

    def __init__(  # noqa: PLR0917 - the dataclass it replaces took them positionally too
        self,
        rtu: tuple[str, int] | None = None,
        modbus_tcp: tuple[str, int] | None = None,
        read_only: bool = False,
        allow_raw_writes: bool = False,
        max_clients: int = MAX_CLIENTS,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.rtu, self.modbus_tcp, self.read_only = rtu, modbus_tcp, read_only
        self.allow_raw_writes = allow_raw_writes
        self.max_clients, self.idle_timeout_s = max_clients, idle_timeout_s

    @property
    def enabled(self) -> bool:
        """Whether any port is configured (both are off by default)."""
        return self.rtu is not None or self.modbus_tcp is not None
