"""The AWL's CGI protocol (docs/protocol.md#awl-cgi): parsing ``regs`` and writing ``key=value&…`` bodies.

Pure functions, no I/O. Fixed from the original (docs/protocol.md#bugs-web): values keep request order with
duplicates (positional clients stay aligned), reads are chunked to ≤100 registers, echoed parameters are
URL-escaped, failures are reported in ``err``, and ``/config.cgi`` never shows the port argument.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from aurora.errors import UsageError

AWL_VERSION: Final = "1.6.4"  # what the original reports; the AWL page only displays it
LOCAL_WEB_VERSION: Final = "1.08"

# docs/protocol.md#awl-cgi: aliases that overwrite any regs the client sent.
ALIASES: Final[Mapping[str, str]] = {
    "abcinfo": "2;8;88,4",  # ABC program version, revision, 4-word program name
    "devices": "800;803;806,3;812;815;818;824",  # install status of thermostat … EEV2
}
READ_COMMANDS: Final = frozenset({"getregs", *ALIASES})
ECHOED: Final = ("cmd", "id", "set", "addr")  # echoed in this order when present (docs/protocol.md#awl-cgi)
# one getregs; the original had no limit (docs/protocol.md#bugs-web) and tied up the bus
MAX_REGISTERS: Final = 1000

_SAFE = " .,:;-_()'/"  # readable in messages; &, =, %, + and # are escaped
_NUMBER = re.compile(r"^\s*(\d+|0x[0-9a-fA-F]+)\s*$")


def _number(text: str, what: str, limit: int = 0xFFFF) -> int:
    match = _NUMBER.match(text)
    if not match:
        raise UsageError(f"{what} {text!r} is not a number")
    value = int(match.group(1), 0)
    if value > limit:
        raise UsageError(f"{what} {value} is beyond {limit}")
    return value


def parse_read_regs(regs: str) -> list[int]:
    """``a;b,len;…`` → every address in request order, duplicates kept (docs/protocol.md#awl-cgi getregs)."""
    if not regs.strip():
        raise UsageError("regs is empty: give addresses like 745,3;813")
    addresses: list[int] = []
    for item in regs.split(";"):
        start_text, _, count_text = item.partition(",")
        start = _number(start_text, "register")
        count = _number(count_text, "length") if count_text else 1
        if count < 1:
            raise UsageError(f"length in {item!r} must be at least 1")
        if start + count - 1 > 0xFFFF:
            raise UsageError(f"{item!r} runs beyond register 65535")
        addresses.extend(range(start, start + count))
        if len(addresses) > MAX_REGISTERS:
            raise UsageError(f"at most {MAX_REGISTERS} registers per request")
    return addresses


def parse_write_regs(regs: str) -> dict[int, int]:
    """``addr,value;addr,value`` → ordered writes; a repeated address keeps its first place and
    last value, as the original's Ruby hash does (docs/protocol.md#awl-cgi putregs)."""
    if not regs.strip():
        raise UsageError("regs is empty: give pairs like 340,3;341,5")
    writes: dict[int, int] = {}
    for item in regs.split(";"):
        parts = item.split(",")
        if len(parts) != 2:
            raise UsageError(f"{item!r} is not an address,value pair")
        writes[_number(parts[0], "register")] = _number(parts[1], "value")
    return writes


@dataclass(frozen=True, slots=True)
class Request:
    """One ``/request.cgi`` call: the command, the echo, and what to read or write."""

    cmd: str
    echo: tuple[tuple[str, str], ...]
    reads: tuple[int, ...] = ()
    writes: tuple[tuple[int, int], ...] = ()

    @property
    def is_write(self) -> bool:
        return self.cmd == "putregs"


def parse_request(params: Mapping[str, str]) -> Request | None:
    """The request described by the (last-value-wins) query parameters; None for an unknown cmd,
    which the original answers with an empty body. Raises UsageError on malformed ``regs``."""
    cmd = params.get("cmd", "")
    echo = tuple((key, params[key]) for key in ECHOED if key in params)
    if cmd in READ_COMMANDS:
        regs = ALIASES.get(cmd, params.get("regs", ""))
        return Request(cmd, echo, reads=tuple(parse_read_regs(regs)))
    if cmd == "putregs":
        return Request(cmd, echo, writes=tuple(parse_write_regs(params.get("regs", "")).items()))
    return None


def encode(pairs: Iterable[tuple[str, str]]) -> str:
    """``k=v&k=v`` with every value URL-escaped, so an echoed ``&`` cannot forge a key
    (docs/protocol.md#bugs-web).

    Keys are the protocol's own constants and stay literal (``AWL Version`` has a space).
    """
    return "&".join(f"{key}={quote(value, safe=_SAFE)}" for key, value in pairs)


def echo_with_error(params: Mapping[str, str], error: str = "") -> str:
    """The echo of ``cmd``, ``id``, ``set``, ``addr`` then ``err=``: the body of a failure or a write."""
    return encode([*((k, params[k]) for k in ECHOED if k in params), ("err", error)])


def read_body(request: Request, values: Sequence[int]) -> str:
    """The body of a successful read: echo, empty ``err``, ``values=`` in request order."""
    return encode([*request.echo, ("err", ""), ("values", ",".join(str(v) for v in values))])


def write_body(request: Request) -> str:
    """The body of a successful putregs: the echo and an empty ``err``."""
    return encode([*request.echo, ("err", "")])


def config_body(units: int, awl_id: str) -> str:
    """``/config.cgi``: AWL ID is the unit's serial number, never the port argument
    (docs/protocol.md#bugs-web)."""
    return encode(
        [
            ("AWL Version", AWL_VERSION),
            ("Local Web Version", LOCAL_WEB_VERSION),
            ("SSID", ""),
            ("Units", str(units)),
            ("AWL ID", awl_id),
            ("AWL ID CRC", ""),
        ]
    )


def parse_units(text: str | None) -> int:
    """The ``units`` parameter of ``/setunits.cgi``: 0 (°F) or 1 (°C)."""
    if text is None:
        raise UsageError("units is missing")
    value = _number(text, "units", limit=1)
    return value
