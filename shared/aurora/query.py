"""The query grammar of ``aurora_fetch`` and ``$modbus`` ("745-747,813", known, valid, all) and
how a set of registers is packed into bus transactions (docs/protocol.md#chunking).

Fixed from the original (docs/protocol.md#bugs-queries): at most 100 registers per request (never 101),
requests split at the breakpoints 12100 and 12500, ``valid``/``all`` combine with the other items, and a
malformed
item is an error instead of register 0.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import registers, rtu
from .bus import Bus
from .errors import (
    AuroraError,
    BusError,
    BusTimeout,
    ExceptionReply,
    IllegalAddress,
    MissingRegisters,
    UsageError,
)
from .logs import get_logger

log = get_logger(__name__)  # structlog only once something logs (issue 15)

MAX_PAIRS = 63  # an RTU frame of 256 bytes holds 63 (start, count) pairs
_RANGE = re.compile(r"^(\d+|0x[0-9a-f]+)\s*(?:\.\.|-)\s*(\d+|0x[0-9a-f]+)$", re.IGNORECASE)
_NUMBER = re.compile(r"^(\d+|0x[0-9a-f]+)$", re.IGNORECASE)
KEYWORDS = ("known", "valid", "all")


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: the sorted, unique addresses it names, and whether a keyword was used."""

    addresses: tuple[int, ...]
    implicit: bool  # known/valid/all: the user asked for "whatever is there"


def _number(text: str, item: str) -> int:
    digits = text[2:] if text.lower().startswith("0x") else text
    # Checked before int(): a 5,000-digit number would cost CPU (and trip Python's digit limit).
    if len(digits.lstrip("0")) > 5:
        raise UsageError(f"register {text[:16]}… in {item[:32]!r} is beyond 65535")
    value = int(digits, 16) if digits is not text else int(text)
    if value > 0xFFFF:
        raise UsageError(f"register {value} in {item!r} is beyond 65535")
    return value


def parse_query(text: str) -> Query:
    """Parse ``N``, ``a-b``, ``a..b``, comma lists and the keywords; UsageError when malformed.

    Ranges are merged as intervals before any address is listed, so the cost is one pass over
    the text plus the addresses named, however often a range repeats (``0-65535,`` × 511).
    """
    if not text or not text.strip():
        raise UsageError("empty query: give registers like 745-747,813 or known, valid, all")
    spans: list[tuple[int, int]] = []
    known = False
    implicit = False
    for raw_item in text.split(","):
        item = raw_item.strip()
        lowered = item.lower()
        if lowered == "known":
            known = implicit = True
        elif lowered == "valid":
            spans.extend(registers.REGISTER_RANGES)
            implicit = True
        elif lowered == "all":
            spans.append((0, 0xFFFF))
            implicit = True
        elif m := _RANGE.match(item):
            start, end = _number(m.group(1), item), _number(m.group(2), item)
            if start > end:
                raise UsageError(f"range {item!r} runs backwards")
            spans.append((start, end))
        elif _NUMBER.match(item):
            address = _number(item, item)
            spans.append((address, address))
        else:
            raise UsageError(
                f"{item[:64]!r} is not a register: use N, A-B, A..B, comma lists, known, valid or all"
            )
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if not known:
        return Query(tuple(a for start, end in merged for a in range(start, end + 1)), implicit)
    addresses = set(registers.KNOWN_ADDRESSES)
    for start, end in merged:
        addresses.update(range(start, end + 1))
    return Query(tuple(sorted(addresses)), implicit)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One read transaction: (start, count) items, at most 100 registers and 63 items."""

    items: tuple[tuple[int, int], ...]

    @property
    def uses_ranges(self) -> bool:
        """FC 65 when any item is a range, else FC 66 (as the original chooses)."""
        return any(n > 1 for _, n in self.items)

    @property
    def count(self) -> int:
        return sum(n for _, n in self.items)

    @property
    def addresses(self) -> list[int]:
        return [a for s, n in self.items for a in range(s, s + n)]

    def read(self, bus: Bus) -> list[int]:
        """Send this chunk as one transaction."""
        if self.uses_ranges:
            return bus.read_ranges(self.items)
        return bus.read_registers([s for s, _ in self.items])

    def __str__(self) -> str:
        return ", ".join(str(s) if n == 1 else f"{s}..{s + n - 1}" for s, n in self.items)


def _runs(addresses: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted unique addresses, never crossing a breakpoint."""
    runs: list[tuple[int, int]] = []
    for a in addresses:
        if runs:
            start, count = runs[-1]
            if a == start + count and a not in registers.BREAKPOINTS:
                runs[-1] = (start, count + 1)
                continue
        runs.append((a, 1))
    return runs


def _segment(address: int) -> int:
    return sum(1 for b in registers.BREAKPOINTS if address >= b)


def plan_chunks(addresses: Iterable[int], max_registers: int = rtu.MAX_READ_REGISTERS) -> list[Chunk]:
    """Pack sorted addresses into the fewest requests of at most ``max_registers`` each.

    A run is split where a request fills up, so every request but the last of a segment is full;
    requests never mix registers from both sides of a breakpoint.
    """
    chunks: list[Chunk] = []
    items: list[tuple[int, int]] = []
    used = 0
    segment = None
    for run_start, run_count in _runs(sorted(set(addresses))):
        if segment is not None and _segment(run_start) != segment and items:
            chunks.append(Chunk(tuple(items)))
            items, used = [], 0
        segment = _segment(run_start)
        start, count = run_start, run_count
        while count:
            if used == max_registers or len(items) == MAX_PAIRS:
                chunks.append(Chunk(tuple(items)))
                items, used = [], 0
            take = min(count, max_registers - used)
            items.append((start, take))
            used += take
            start, count = start + take, count - take
    if items:
        chunks.append(Chunk(tuple(items)))
    return chunks


@dataclass(slots=True)
class QueryResult:
    """Raw words read, by address in ascending order, and why any address is missing."""

    values: dict[int, int] = field(default_factory=dict)
    failed: dict[int, AuroraError] = field(default_factory=dict)
    transactions: int = 0


ProgressFn = Callable[[int, int, Chunk], None]


def read_query(
    bus: Bus,
    query: Query | str,
    *,
    try_individual: bool | None = None,
    skip_missing: bool = False,
    progress: ProgressFn | None = None,
    name_missing: bool = False,
) -> QueryResult:
    """Read every register of ``query`` in as few transactions as the board allows.

    On a chunk the board refuses (illegal address or function) or does not answer, queries with a
    keyword, ``try_individual`` or ``skip_missing`` read the chunk's items one by one, and then
    with ``try_individual`` each address with FC 3 (docs/protocol.md#fallback). Addresses that still
    fail are in ``failed``; without fallback the first error is raised. A lost line always raises.
    With ``name_missing``, an illegal-address reply without fallback is narrowed down (the chunk
    read again item by item) and raised as MissingRegisters naming the registers the unit lacks.
    """
    parsed = parse_query(query) if isinstance(query, str) else query
    individual = parsed.implicit if try_individual is None else try_individual
    fallback = parsed.implicit or individual or skip_missing
    result = QueryResult()
    chunks = plan_chunks(with_continuations(parsed.addresses))
    for done, chunk in enumerate(chunks):
        if progress:
            progress(done, len(chunks), chunk)
        try:
            _read_chunk(bus, chunk, result, fallback=fallback, individual=individual or skip_missing)
        except IllegalAddress as err:
            if not name_missing:
                raise
            raise _narrowed(bus, chunk, err) from err
    if progress:
        progress(len(chunks), len(chunks), Chunk(()))
    result.values = dict(sorted(result.values.items()))
    return result


def _narrowed(bus: Bus, chunk: Chunk, err: IllegalAddress) -> IllegalAddress:
    """The chunk read again item by item, and a refused run address by address, to name the
    registers the board refuses; the original error when the probe finds none or fails."""
    missing: list[int] = []
    try:
        for start, count in chunk.items:
            try:
                Chunk(((start, count),)).read(bus)
                continue
            except IllegalAddress:
                if count == 1:
                    missing.append(start)
                    continue
            for address in range(start, start + count):
                try:
                    Chunk(((address, 1),)).read(bus)
                except IllegalAddress:
                    missing.append(address)
    except AuroraError:
        return err  # the line failed while probing: the board's first answer stands
    if not missing:
        return err
    return MissingRegisters(err.function, missing, describe_addresses(missing))


def describe_addresses(addresses: Iterable[int], limit: int = 8) -> str:
    """``register 748 (Name)`` or ``registers 748, 750-752`` (runs joined, at most ``limit`` shown)."""
    ordered = sorted(set(addresses))
    if len(ordered) == 1:
        name = registers.name_of(ordered[0])
        return f"register {ordered[0]}" + (f" ({name})" if name else "")
    runs = [f"{s}" if n == 1 else f"{s}-{s + n - 1}" for s, n in _runs(ordered)]
    shown = ", ".join(runs[:limit]) + (f" and {len(runs) - limit} more" if len(runs) > limit else "")
    return f"registers {shown}"


def with_continuations(addresses: Iterable[int]) -> list[int]:
    """The addresses plus the other words of any 32-bit or string register they start.

    `1146` alone decodes to the compressor's watts only with 1147 beside it (the original crashed,
    docs/protocol.md#bugs-decoding).
    """
    wanted = set(addresses)
    for address in list(wanted):
        register = registers.REGISTERS.get(address)
        if register is not None and register.length > 1:
            wanted.update(range(address, min(address + register.length, 0x10000)))
    return sorted(wanted)


def _read_chunk(bus: Bus, chunk: Chunk, result: QueryResult, *, fallback: bool, individual: bool) -> None:
    try:
        result.transactions += 1
        result.values.update(zip(chunk.addresses, chunk.read(bus), strict=True))
        return
    except BusTimeout:
        if not fallback:
            raise
    except ExceptionReply:
        if not fallback:
            raise
    except BusError:
        raise
    consecutive_timeouts = 0
    for start, count in chunk.items:
        item = Chunk(((start, count),))
        try:
            result.transactions += 1
            result.values.update(zip(item.addresses, item.read(bus), strict=True))
            consecutive_timeouts = 0
            continue
        except BusTimeout as err:
            consecutive_timeouts += 1
            if consecutive_timeouts >= 2:
                raise  # two silent items in a row: the line is gone, not the registers
            failure: AuroraError = err
        except ExceptionReply as err:
            failure = err
        if not individual:
            result.failed.update(dict.fromkeys(item.addresses, failure))
            continue
        for address in item.addresses:
            try:
                result.transactions += 1
                (result.values[address],) = bus.read_holding(address, 1)
                consecutive_timeouts = 0
            except IllegalAddress as err:
                result.failed[address] = err
                log.debug("missing_register", address=address)  # callers summarise result.failed
            except ExceptionReply as err:
                result.failed[address] = err
            except BusTimeout as err:
                # One silent register costs only itself (the original aborted the whole query,
                # docs/protocol.md#bugs-queries).
                consecutive_timeouts += 1
                if consecutive_timeouts >= 2:
                    raise
                result.failed[address] = err


class ProgressLog:
    """Logs "fetching" lines at most every ``every_s`` seconds, the first one included."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self._last = -1e9

    def __call__(self, done: int, total: int, chunk: Chunk) -> None:
        now = time.monotonic()
        if total > 1 and done < total and now - self._last >= self.every_s:
            self._last = now
            log.info("fetching", registers=str(chunk), request=done + 1, of=total)
