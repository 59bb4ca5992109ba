"""The query grammar of ``aurora_fetch`` and ``$modbus`` ("745-747,813", known, valid, all), and
``read_query``: the read plan (``aurora.readplan``) driven on a bus.

Fixed from the original (docs/protocol.md#bugs-queries): at most 100 registers per request (never 101),
requests split at the breakpoints 12100 and 12500, ``valid``/``all`` combine with the other items, and a
malformed item is an error instead of register 0.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol, runtime_checkable

from . import registers
from .bus import Bus
from .errors import AuroraError, IllegalAddress, MissingRegisters, UsageError
from .logs import get_logger
from .readplan import (
    MAX_PAIRS,
    Chunk,
    Depth,
    Failures,
    ReadPlan,
    ReadResult,
    Rules,
    Span,
    merge_spans,
    plan_chunks,
    plan_spans,
    run,
    spans_of,
)
from .records import FrozenRecord

__all__ = [
    "KEYWORDS",
    "MAX_PAIRS",
    "MAX_QUERY_CHARS",
    "Chunk",
    "ProgressLog",
    "Query",
    "QueryResult",
    "describe_addresses",
    "parse_query",
    "plan_chunks",
    "read_query",
    "with_continuations",
]

log = get_logger(__name__)  # structlog only once something logs (issue 15)

MAX_QUERY_CHARS = 4096  # the longest query text a bridge takes (aurora.rpc)

_RANGE = re.compile(r"^(\d+|0x[0-9a-f]+)\s*(?:\.\.|-)\s*(\d+|0x[0-9a-f]+)$", re.IGNORECASE)
_NUMBER = re.compile(r"^(\d+|0x[0-9a-f]+)$", re.IGNORECASE)
KEYWORDS = ("known", "valid", "all")


class Query(FrozenRecord):
    """A parsed query: the registers it names as sorted, merged (start, count) spans (``all`` is
    one span, not 65,536 addresses), and whether a keyword was used."""

    _fields = ("spans", "implicit")
    __slots__ = _fields
    spans: Final[tuple[Span, ...]]
    implicit: Final[bool]  # known/valid/all: the user asked for "whatever is there"

    def __init__(self, spans: tuple[Span, ...], implicit: bool) -> None:
        self.spans, self.implicit = spans, implicit

    @classmethod
    def of(cls, addresses: Iterable[int], implicit: bool = False) -> Query:
        """The query for these addresses."""
        return cls(tuple(spans_of(addresses)), implicit)

    @property
    def addresses(self) -> tuple[int, ...]:
        """Every address, ascending (built on each call: prefer ``spans``)."""
        return tuple(a for start, count in self.spans for a in range(start, start + count))

    @property
    def count(self) -> int:
        """How many registers the query names."""
        return sum(n for _, n in self.spans)

    def __str__(self) -> str:
        """The query in the grammar (``0-65535``, ``745-747,813``): what a bridge is asked."""
        return ",".join(str(s) if n == 1 else f"{s}-{s + n - 1}" for s, n in self.spans)


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
    merged = merge_spans((start, end - start + 1) for start, end in spans)
    if known:
        merged = merge_spans([*merged, *((a, 1) for a in registers.KNOWN_ADDRESSES)])
    return Query(tuple(merged), implicit)


QueryResult = ReadResult  # raw words by address, failures as spans, transactions

ProgressFn = Callable[[int, int, Chunk], None]

# Through the bridge a query waits for every transaction it takes: the plan's chunks, and in the
# register-by-register fallback one transaction per register at worst (~10 ms each at 19200 baud).
PER_CHUNK_S = 0.3
PER_FALLBACK_REGISTER_S = 0.015


def remote_timeout_s(base_s: float, spans: Sequence[Span], *, fallback: bool) -> float:
    """How long a query through the bridge may take: ``base_s`` plus its chunks, and with the
    bridge's register-by-register ``fallback`` one transaction for each register at worst."""
    registers = sum(n for _, n in spans) if fallback else 0
    return base_s + PER_CHUNK_S * len(plan_spans(spans)) + PER_FALLBACK_REGISTER_S * registers


@runtime_checkable
class QueryBus(Protocol):
    """A bus that runs a whole query where the line is (``aurora.rpc_client.MqttBus``: the bridge
    drives the read plan on its own bus worker, one request instead of one per transaction)."""

    def query(
        self, text: str, *, skip_missing: bool = ..., timeout_s: float | None = ...
    ) -> Any: ...  # rpc.QueryAnswer (not imported: it would load the MQTT side)


def rules_for(query: Query, *, try_individual: bool | None = None, skip_missing: bool = False) -> Rules:
    """The read plan's rules for ``aurora_fetch``'s options (docs/protocol.md#fallback): keywords,
    ``--try-individual`` and ``--ignore-missing-registers`` read a refused request's items one by
    one and then (unless ``--no-try-individual``) its registers one by one with FC 3."""
    individual = query.implicit if try_individual is None else try_individual
    if not (query.implicit or individual or skip_missing):
        return Rules(depth=Depth.NONE)
    depth = Depth.REGISTERS if individual or skip_missing else Depth.ITEMS
    return Rules(depth=depth, holding_singles=True)


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

    The fallback follows :func:`rules_for` (docs/protocol.md#fallback): addresses that still fail
    are in ``failed``; without fallback the first error is raised. A lost line always raises. With
    ``name_missing``, an illegal-address reply without fallback is narrowed down (the refused
    request read again register by register) and raised as MissingRegisters naming the registers
    the unit lacks. A bus that runs queries itself (:class:`QueryBus`) gets a query with fallback
    as one request.
    """
    parsed = parse_query(query) if isinstance(query, str) else query
    rules = rules_for(parsed, try_individual=try_individual, skip_missing=skip_missing)
    spans = continued_spans(parsed.spans)
    if rules.depth is not Depth.NONE and isinstance(bus, QueryBus) and len(str(parsed)) <= MAX_QUERY_CHARS:
        return _remote_query(bus, parsed, spans, progress)
    plan = ReadPlan(spans, rules)

    def started(plan: ReadPlan, chunk: Chunk) -> None:
        if progress is not None:
            progress(plan.chunks_started - 1, plan.chunks_total, chunk)

    try:
        result = run(plan, lambda chunk: chunk.read(bus), started)
    except IllegalAddress as err:
        if not name_missing or plan.ended_by is None:
            raise
        raise _narrowed(bus, plan.ended_by, err) from err
    if progress:
        progress(plan.chunks_total, plan.chunks_total, Chunk(()))
    return result


def _remote_query(
    bus: QueryBus, query: Query, spans: Sequence[Span], progress: ProgressFn | None
) -> QueryResult:
    chunks = plan_spans(spans)
    if progress:  # one request: shown as started, then as done
        progress(0, len(chunks), chunks[0] if chunks else Chunk(()))
    answer = bus.query(
        str(query),
        skip_missing=True,  # the keyword is not in the text: ask the bridge for the fallback itself
        timeout_s=remote_timeout_s(getattr(bus, "timeout_s", 10.0), spans, fallback=True),
    )
    if progress:
        progress(len(chunks), len(chunks), Chunk(()))
    failed = (
        answer.failed
        if isinstance(answer.failed, Failures)
        else Failures((a, 1, err) for a, err in answer.failed.items())
    )
    return QueryResult(dict(sorted(answer.values.items())), failed, answer.transactions)


def _narrowed(bus: Bus, chunk: Chunk, err: IllegalAddress) -> IllegalAddress:
    """The refused request read again register by register, to name the registers the board
    refuses; the original error when the probe finds none or the line fails meanwhile."""
    plan = ReadPlan(chunk.items, Rules(depth=Depth.REGISTERS, holding_singles=False, silent_limit=1))
    try:
        probe = run(plan, lambda c: c.read(bus))
    except AuroraError:
        return err  # the line failed while probing: the board's first answer stands
    missing = [
        a
        for start, count, e in probe.failed.spans()
        if isinstance(e, IllegalAddress)
        for a in range(start, start + count)
    ]
    if not missing:
        return err
    return MissingRegisters(err.function, missing, describe_addresses(missing))


def describe_addresses(addresses: Iterable[int], limit: int = 8) -> str:
    """``register 748 (Name)`` or ``registers 748, 750-752`` (runs joined, at most ``limit`` shown)."""
    ordered = sorted(set(addresses))
    if len(ordered) == 1:
        name = registers.name_of(ordered[0])
        return f"register {ordered[0]}" + (f" ({name})" if name else "")
    runs = [f"{s}" if n == 1 else f"{s}-{s + n - 1}" for s, n in spans_of(ordered)]
    shown = ", ".join(runs[:limit]) + (f" and {len(runs) - limit} more" if len(runs) > limit else "")
    return f"registers {shown}"


def continued_spans(spans: Iterable[Span]) -> list[Span]:
    """The spans plus the other words of any 32-bit or string register they start, merged.

    `1146` alone decodes to the compressor's watts only with 1147 beside it (the original crashed,
    docs/protocol.md#bugs-decoding).
    """
    merged = merge_spans(spans)
    extra = [
        (address, min(length, 0x10000 - address))
        for address, length in registers.MULTIWORD
        if any(start <= address < start + count for start, count in merged)
    ]
    return merge_spans([*merged, *extra]) if extra else merged


def with_continuations(addresses: Iterable[int]) -> list[int]:
    """The addresses plus the other words of any multi-word register they start (sorted)."""
    return [a for start, count in continued_spans(spans_of(addresses)) for a in range(start, start + count)]


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
