"""The read policy as one sans-io object: which request to make next, what each answer means, and
what came of it (docs/protocol.md#chunking, docs/protocol.md#fallback).

A :class:`ReadPlan` does no I/O. Its drivers (``aurora.query.read_query`` on a bus, the bridge's
poller and its ``$modbus`` pass-through on the bus worker, the bridge's detection) loop::

    plan = ReadPlan(spans, rules)
    while (request := plan.next()) is not None:
        try:
            plan.answer(request.read(bus))
        except AuroraError as err:
            plan.fail(err)
    result = plan.result()  # raises the error that ended the read, if one did

Memory follows what is read, not what was asked: the plan holds the chunks still to send (a few
hundred for all of 0-65535), the words that answered, and failures as (start, count) spans.
"""

from __future__ import annotations

import bisect
import enum
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Final

from . import registers, rtu
from .bus import Bus
from .errors import AuroraError, BusError, BusTimeout, ExceptionReply, FrameError, UsageError
from .records import FrozenRecord, Record

__all__ = [
    "MAX_PAIRS",
    "Chunk",
    "Depth",
    "Failures",
    "ReadPlan",
    "ReadResult",
    "Rules",
    "merge_spans",
    "plan_chunks",
    "plan_spans",
    "run",
    "spans_of",
    "without",
]

MAX_PAIRS = 63  # an RTU frame of 256 bytes holds 63 (start, count) pairs
Span = tuple[int, int]  # (start, count)


class Chunk(FrozenRecord):
    """One read transaction: (start, count) items, at most 100 registers and 63 items.

    FC 65 when any item is a range, else FC 66 (as the original chooses); FC 3 with ``holding``
    (one item: the register-by-register fallback of ``aurora_fetch``).
    """

    _fields = ("items", "holding")
    __slots__ = _fields
    items: Final[tuple[Span, ...]]
    holding: Final[bool]

    def __init__(self, items: tuple[Span, ...], holding: bool = False) -> None:
        self.items, self.holding = items, holding

    @property
    def uses_ranges(self) -> bool:
        """FC 65 when any item is a range, else FC 66."""
        return any(n > 1 for _, n in self.items)

    @property
    def count(self) -> int:
        """Registers this transaction reads."""
        return sum(n for _, n in self.items)

    @property
    def addresses(self) -> list[int]:
        """The addresses read, in request order."""
        return [a for s, n in self.items for a in range(s, s + n)]

    def read(self, bus: Bus) -> list[int]:
        """Send this chunk as one transaction."""
        if self.holding:
            ((start, count),) = self.items
            return bus.read_holding(start, count)
        if self.uses_ranges:
            return bus.read_ranges(self.items)
        return bus.read_registers([s for s, _ in self.items])

    def __str__(self) -> str:
        return ", ".join(str(s) if n == 1 else f"{s}..{s + n - 1}" for s, n in self.items)


# ------------------------------------------------------------------------------------------ packing


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sorted (start, count) spans with overlapping and adjacent ones joined."""
    merged: list[list[int]] = []
    for start, count in sorted(s for s in spans if s[1] > 0):
        end = start + count
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e - s) for s, e in merged]


def without(spans: Iterable[Span], addresses: Iterable[int]) -> list[Span]:
    """The spans with ``addresses`` taken out (cost: the spans plus the addresses, never the
    registers the spans cover)."""
    out: list[Span] = []
    holes = sorted(set(addresses))
    for first, count in merge_spans(spans):
        start, end = first, first + count
        i = bisect.bisect_left(holes, start)
        while i < len(holes) and holes[i] < end:
            if holes[i] > start:
                out.append((start, holes[i] - start))
            start = holes[i] + 1
            i += 1
        if start < end:
            out.append((start, end - start))
    return out


def spans_of(addresses: Iterable[int]) -> list[Span]:
    """Consecutive runs of the (unsorted, repeated) addresses as (start, count) spans."""
    return merge_spans((a, 1) for a in set(addresses))


def _cut_at_breakpoints(spans: Iterable[Span]) -> Iterator[Span]:
    for first, count in spans:
        start, end = first, first + count
        for point in registers.BREAKPOINTS:
            if start < point < end:
                yield start, point - start
                start = point
        yield start, end - start


def _segment(address: int) -> int:
    return sum(1 for b in registers.BREAKPOINTS if address >= b)


def plan_spans(
    spans: Iterable[Span], max_registers: int = rtu.MAX_READ_REGISTERS, max_items: int = MAX_PAIRS
) -> list[Chunk]:
    """Pack (start, count) spans into the fewest requests of at most ``max_registers`` each.

    A run is split where a request fills up, so every request but the last of a segment is full;
    requests never mix registers from both sides of a breakpoint (docs/protocol.md#chunking).
    """
    chunks: list[Chunk] = []
    items: list[Span] = []
    used = 0
    segment = None
    for run_start, run_count in _cut_at_breakpoints(merge_spans(spans)):
        if segment is not None and _segment(run_start) != segment and items:
            chunks.append(Chunk(tuple(items)))
            items, used = [], 0
        segment = _segment(run_start)
        start, count = run_start, run_count
        while count:
            if used == max_registers or len(items) == max_items:
                chunks.append(Chunk(tuple(items)))
                items, used = [], 0
            take = min(count, max_registers - used)
            items.append((start, take))
            used += take
            start, count = start + take, count - take
    if items:
        chunks.append(Chunk(tuple(items)))
    return chunks


def plan_chunks(addresses: Iterable[int], max_registers: int = rtu.MAX_READ_REGISTERS) -> list[Chunk]:
    """Pack addresses (any order, repeats allowed) into the fewest requests; see :func:`plan_spans`."""
    return plan_spans(spans_of(addresses), max_registers)


# ------------------------------------------------------------------------------------------ results


class Failures(Mapping[int, AuroraError]):
    """Why registers were not read, kept as (start, count, error) spans: an ``all`` query's 62,000
    missing registers are a few hundred spans, not 62,000 entries. Reads as a mapping of address
    to error (sorted by address)."""

    __slots__ = ("_ends", "_errors", "_starts")

    def __init__(self, spans: Iterable[tuple[int, int, AuroraError]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._errors: list[AuroraError] = []
        for start, count, err in sorted(spans, key=lambda s: s[0]):
            self._add(start, count, err)

    def _add(self, start: int, count: int, err: AuroraError) -> None:
        if self._ends and start == self._ends[-1] and _same(self._errors[-1], err):
            self._ends[-1] = start + count  # the next span of the same refusal
            return
        self._starts.append(start)
        self._ends.append(start + count)
        self._errors.append(err)

    def spans(self) -> Iterator[tuple[int, int, AuroraError]]:
        """(start, count, error) in address order, neighbours with the same error joined."""
        counts = [e - s for s, e in zip(self._starts, self._ends, strict=True)]
        return zip(self._starts, counts, self._errors, strict=True)

    def __getitem__(self, address: int) -> AuroraError:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._ends[i]:
            return self._errors[i]
        raise KeyError(address)

    def __contains__(self, address: object) -> bool:
        try:
            self[address]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[int]:
        for start, end in zip(self._starts, self._ends, strict=True):
            yield from range(start, end)

    def __len__(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def __repr__(self) -> str:
        return f"Failures({list(self.spans())!r})"


def _same(a: AuroraError, b: AuroraError) -> bool:
    return a is b or (type(a) is type(b) and str(a) == str(b))


class ReadResult(Record):
    """What a read produced: raw words by address (ascending), why the others are missing, and how
    many transactions it took."""

    _fields = ("values", "failed", "transactions")
    __slots__ = _fields

    def __init__(
        self, values: dict[int, int] | None = None, failed: Failures | None = None, transactions: int = 0
    ) -> None:
        self.values: dict[int, int] = {} if values is None else values
        self.failed: Failures = Failures() if failed is None else failed
        self.transactions = transactions


# ------------------------------------------------------------------------------------------ the plan


class Depth(enum.Enum):
    """How far a refused request is taken apart (docs/protocol.md#fallback)."""

    NONE = "none"  # the first refusal or silence ends the read: the caller gets the board's answer
    ITEMS = "items"  # a refused request's items one by one; a refused item fails as a whole
    REGISTERS = "registers"  # ... and a refused range down to the registers the board has


class Rules(FrozenRecord):
    """The board's limits and what a failure costs: one policy, a few knobs for what each caller
    needs (the defaults are a keyword query's)."""

    _fields = (
        "depth",
        "holding_singles",
        "split_silent",
        "silent_limit",
        "silent_start_ends",
        "max_registers",
        "max_items",
    )
    __slots__ = _fields
    depth: Final[Depth]
    # A register on its own is read with FC 3 (aurora_fetch, docs/protocol.md#fallback) or FC 66
    # (the bridge: its worker can merge FC 65/66 reads of several clients into one transaction).
    holding_singles: Final[bool]
    # A silent request read again in pieces (so one silent register costs only itself), or
    # failing as a whole (the poller: a silence is not an answer about registers).
    split_silent: Final[bool]
    # This many silent requests in a row end the read: the line is gone, not the registers.
    silent_limit: Final[int | None]
    # A silent first request ends the read (the poller: the unit is silent, alert at once).
    silent_start_ends: Final[bool]
    max_registers: Final[int]
    max_items: Final[int]

    def __init__(
        self,
        *,
        depth: Depth = Depth.REGISTERS,
        holding_singles: bool = False,
        split_silent: bool = True,
        silent_limit: int | None = 2,
        silent_start_ends: bool = False,
        max_registers: int = rtu.MAX_READ_REGISTERS,
        max_items: int = MAX_PAIRS,
    ) -> None:
        self.depth, self.holding_singles, self.split_silent = depth, holding_singles, split_silent
        self.silent_limit, self.silent_start_ends = silent_limit, silent_start_ends
        self.max_registers, self.max_items = max_registers, max_items


_CHUNK, _ITEM, _HALF, _SINGLE = range(4)


class _Pair:
    """The two halves of a refused range; both refused means the range is mostly absent, so they
    are read register by register instead of being halved again."""

    __slots__ = ("deferred", "first_refused")

    def __init__(self) -> None:
        self.first_refused = False
        self.deferred: _Piece | None = None  # the refused first half, waiting for its sibling's answer


class _Piece:
    __slots__ = ("chunk", "level", "pair", "second")

    def __init__(self, chunk: Chunk, level: int, pair: _Pair | None = None, second: bool = False) -> None:
        self.chunk, self.level, self.pair, self.second = chunk, level, pair, second


class ReadPlan:
    """Chunks → fallbacks → result for one read; see the module docstring for the loop.

    ``next()`` gives the request to make (None once the read is over); each request gets exactly
    one ``answer(values)`` or ``fail(error)``. ``result()`` gives the :class:`ReadResult`, or raises
    the error that ended the read (a lost line, the first refusal without fallback, two silences
    in a row). ``values`` and ``failed`` may be read at any time (what came so far).
    """

    def __init__(self, spans: Iterable[Span], rules: Rules | None = None) -> None:
        self.rules = rules or Rules()
        chunks = plan_spans(spans, self.rules.max_registers, self.rules.max_items)
        self.chunks_total = len(chunks)
        self.chunks_started = 0  # chunks of the plan sent so far (their fallbacks not counted)
        self._chunks: deque[Chunk] = deque(chunks)
        self._pieces: deque[_Piece] = deque()
        self._current: _Piece | None = None
        self.values: dict[int, int] = {}
        self._failed: list[tuple[int, int, AuroraError]] = []
        self.transactions = 0
        self._silent_run = 0
        self._answered = False
        self.error: BaseException | None = None
        self._ended_by: Chunk | None = None

    # ------------------------------------------------------------ driving

    def next(self) -> Chunk | None:
        """The next request to make, or None when the read is over."""
        if self._current is not None:
            raise RuntimeError("answer() or fail() the previous request first")
        if self.error is not None:
            return None
        if self._pieces:
            self._current = self._pieces.popleft()
        elif self._chunks:
            self.chunks_started += 1
            self._current = _Piece(self._chunks.popleft(), _CHUNK)
        else:
            return None
        self.transactions += 1
        return self._current.chunk

    def answer(self, values: Sequence[int] | Mapping[int, int]) -> None:
        """The words the board answered the last request with, in request order; or, from a
        reader that does its own fallback, the words it found by address (the ones it left out
        are absent, not failed)."""
        piece = self._take()
        chunk = piece.chunk
        if isinstance(values, Mapping):
            self.values.update((a, values[a]) for a in chunk.addresses if a in values)
        elif len(values) != chunk.count:
            self._settle(piece, FrameError(f"{len(values)} words for {chunk.count} registers"))
            self._sibling_settled(piece, refused=False)
            return
        else:
            self.values.update(zip(chunk.addresses, values, strict=True))
        self._silent_run = 0
        self._answered = True
        self._sibling_settled(piece, refused=False)

    def fail(self, err: BaseException) -> None:
        """Why the last request got no words."""
        piece = self._take()
        if isinstance(err, AuroraError):
            err = err.with_traceback(None)  # thousands of failures must not each keep frames alive
        if isinstance(err, BusTimeout):
            self._silent_run += 1
            limit = self.rules.silent_limit
            if (
                self.rules.depth is Depth.NONE
                or (limit is not None and self._silent_run >= limit)
                or (self.rules.silent_start_ends and not self._answered)
            ):
                self._end(err, piece)
            elif self.rules.split_silent:
                self._split_silent(piece, err)
            else:
                self._settle(piece, err)
                self._sibling_settled(piece, refused=False)
            return
        if isinstance(err, (BusError, UsageError)) or not isinstance(err, AuroraError):
            self._end(err, piece)  # the line is gone or the port itself is wrong: nothing else will answer
            return
        if self.rules.depth is Depth.NONE:
            self._end(err, piece)
            return
        if isinstance(err, ExceptionReply):
            self._silent_run = 0
            self._answered = True
            self._refused(piece, err)
            return
        self._settle(piece, err)  # garbled: the transport retried already; it costs its registers
        self._sibling_settled(piece, refused=False)

    def result(self) -> ReadResult:
        """The words read and the failures as a value; raises the error that ended the read."""
        if self.error is not None:
            raise self.error
        return ReadResult(dict(sorted(self.values.items())), self.failed, self.transactions)

    @property
    def failed(self) -> Failures:
        """The failures so far."""
        return Failures(self._failed)

    @property
    def outstanding(self) -> bool:
        """A request was given out and not yet answered or failed."""
        return self._current is not None

    @property
    def first_try(self) -> bool:
        """The outstanding request is one of the plan's chunks, not a fallback piece."""
        return self._current is not None and self._current.level == _CHUNK

    @property
    def ended_by(self) -> Chunk | None:
        """The request whose failure ended the read (None while it goes on or when it did not)."""
        return self._ended_by

    @property
    def done(self) -> bool:
        """Nothing left to ask (or an error ended the read)."""
        return self._current is None and (self.error is not None or not (self._pieces or self._chunks))

    # ------------------------------------------------------------ the policy

    def _take(self) -> _Piece:
        piece = self._current
        if piece is None:
            raise RuntimeError("no request is outstanding")
        self._current = None
        return piece

    def _end(self, err: BaseException, piece: _Piece) -> None:
        self.error = err
        self._ended_by = piece.chunk
        self._pieces.clear()
        self._chunks.clear()

    def _settle(self, piece: _Piece, err: AuroraError) -> None:
        """The piece's registers failed with ``err``."""
        failed = self._failed
        for start, count in piece.chunk.items:
            if failed and failed[-1][0] + failed[-1][1] == start and _same(failed[-1][2], err):
                # The next register of the same refusal: one span, and this error object is freed
                # (an `all` query settles some 62,000 registers this way).
                failed[-1] = (failed[-1][0], failed[-1][1] + count, failed[-1][2])
            else:
                failed.append((start, count, err))

    def _sibling_settled(self, piece: _Piece, *, refused: bool) -> None:
        """A second half's outcome decides its refused first half: halved again when this one
        answered (the missing registers are few), register by register when both were refused."""
        pair = piece.pair
        if pair is None:
            return
        if not piece.second:
            pair.first_refused = refused
            return
        deferred, pair.deferred = pair.deferred, None
        if deferred is not None:
            if refused:
                self._singles(deferred)
            else:
                self._halve(deferred)

    def _queue(self, chunk: Chunk, level: int, pair: _Pair | None = None, second: bool = False) -> None:
        self._pieces.append(_Piece(chunk, level, pair, second))

    def _single(self, address: int) -> Chunk:
        return Chunk(((address, 1),), holding=self.rules.holding_singles)

    def _items(self, piece: _Piece) -> None:
        for item in piece.chunk.items:
            self._queue(self._single(item[0]) if item[1] == 1 else Chunk((item,)), _ITEM)

    def _singles(self, piece: _Piece) -> None:
        for start, count in piece.chunk.items:
            for address in range(start, start + count):
                self._queue(self._single(address), _SINGLE)

    def _halve(self, piece: _Piece) -> None:
        ((start, count),) = piece.chunk.items
        half = count // 2
        pair = _Pair()
        for i, (s, n) in enumerate(((start, half), (start + half, count - half))):
            self._queue(self._single(s) if n == 1 else Chunk(((s, n),)), _HALF, pair, second=i == 1)

    def _refused(self, piece: _Piece, err: ExceptionReply) -> None:
        chunk = piece.chunk
        if len(chunk.items) > 1:
            self._items(piece)
            return
        pair = piece.pair
        if chunk.count == 1 or self.rules.depth is Depth.ITEMS:
            self._settle(piece, err)
        elif pair is None:
            self._halve(piece)
        elif not piece.second:
            pair.deferred = piece  # halved or read register by register once its sibling is known
        elif pair.first_refused:
            # Both halves refused: mostly absent; halving again would cost more reads than it saves.
            self._singles(piece)
        else:
            self._halve(piece)
        self._sibling_settled(piece, refused=True)

    def _split_silent(self, piece: _Piece, err: BusTimeout) -> None:
        """A silent request read again in pieces, register by register for a range (halving a
        silence only multiplies the waits)."""
        chunk = piece.chunk
        if len(chunk.items) > 1:
            self._items(piece)
        elif chunk.count > 1 and self.rules.depth is Depth.REGISTERS:
            self._singles(piece)
        else:
            self._settle(piece, err)
        self._sibling_settled(piece, refused=False)


def run(
    plan: ReadPlan,
    send: Callable[[Chunk], Sequence[int] | Mapping[int, int]],
    progress: Callable[[ReadPlan, Chunk], None] | None = None,
) -> ReadResult:
    """Drive ``plan`` to its end with ``send`` (one transaction, blocking) and return its result.

    ``progress(plan, request)`` is called before each request of the plan's own chunks (not its
    fallbacks). Only AuroraError is an answer; anything else (a bug) propagates.
    """
    while (request := plan.next()) is not None:
        if progress is not None and plan.first_try:
            progress(plan, request)
        try:
            values = send(request)
        except AuroraError as err:
            plan.fail(err)
            continue
        plan.answer(values)
    return plan.result()
