"""Polling in tiers through the bus worker: the raw-word cache and reads packed into few transactions.

Each ≤100-register chunk is its own worker job at ``Priority.POLL``, so a write or a ``$modbus``
request waits for at most the one transaction in flight (docs/architecture.md#one-bus-worker); while
requests wait, the worker reads a chunk in pieces between theirs. A chunk the
board refuses or
does not answer costs only its own registers (docs/architecture.md#partial-failure); a lost line or a cycle in
which nothing
answered raises.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Future
from typing import Final, Protocol, TypeVar

from aurora.bus import Bus
from aurora.errors import AuroraError, BusError, ExceptionReply, IllegalAddress
from aurora.logs import get_logger
from aurora.readplan import Chunk, Depth, ReadPlan, Rules, spans_of
from aurora.records import FrozenRecord

from .worker import Priority, merged_read

log = get_logger(__name__)  # structlog imported when it first logs (issue 15)

T = TypeVar("T")


class Submitter(Protocol):
    """What the poller needs from BusWorker."""

    def submit(
        self,
        run: Callable[[Bus], T],
        priority: Priority = ...,
        *,
        key: Hashable | None = ...,
        reads: tuple[tuple[int, int], ...] | None = ...,
    ) -> Future[T]: ...


class WordCache:
    """Raw words by address with the ``time.monotonic()`` they were read; shared across threads."""

    def __init__(self) -> None:
        self._words: dict[int, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def update(self, words: Mapping[int, int], at: float | None = None) -> None:
        """Store words read at ``at`` (now by default), unless a newer reading of the same word is
        already stored: a poll that started before a write must not put back the old value when
        it finishes after the write's read-back."""
        stamp = time.monotonic() if at is None else at
        with self._lock:
            for address, word in words.items():
                known = self._words.get(address)
                if known is None or known[1] <= stamp:
                    self._words[address] = (word, stamp)

    def lookup(self, address: int) -> tuple[int, float] | None:
        """(raw word, monotonic time it was read), or None when never read."""
        with self._lock:
            return self._words.get(address)

    def words(self) -> dict[int, int]:
        """A snapshot of every word, without times."""
        with self._lock:
            return {a: w for a, (w, _) in self._words.items()}

    def __len__(self) -> int:
        with self._lock:
            return len(self._words)


class PollReport(FrozenRecord):
    """What one read produced: the words that answered and why the others did not
    (docs/architecture.md#partial-failure). A record, not a dataclass: detection reads through
    this module before the MQTT stack is imported (issue 15: start to ready)."""

    _fields = ("words", "failed", "transactions", "failed_chunks")
    _unhashed = ("words", "failed")
    __slots__ = _fields
    words: Final[Mapping[int, int]]
    failed: Final[Mapping[int, AuroraError]]
    transactions: Final[int]
    failed_chunks: Final[int]

    def __init__(
        self,
        words: Mapping[int, int],
        failed: Mapping[int, AuroraError] | None = None,
        transactions: int = 0,
        failed_chunks: int = 0,
    ) -> None:
        self.words, self.failed = words, {} if failed is None else failed
        self.transactions, self.failed_chunks = transactions, failed_chunks

    def with_words(self, words: Mapping[int, int]) -> PollReport:
        """The same report with ``words`` instead of its own."""
        return PollReport(words, self.failed, self.transactions, self.failed_chunks)

    @property
    def complete(self) -> bool:
        """Every register answered."""
        return not self.failed


def _wait(future: Future[T], stop: threading.Event | None) -> T:
    """The job's result; a stop request ends the wait with BusError instead of blocking shutdown."""
    while True:
        try:
            return future.result(timeout=0.5)
        except TimeoutError:
            # concurrent.futures.TimeoutError is the builtin TimeoutError since 3.11; BusTimeout is
            # a TimeoutError as well, but a job's own BusTimeout ends up in future.exception().
            if future.done():
                raise
            if stop is not None and stop.is_set():
                future.cancel()
                raise BusError("the bridge is stopping") from None


def _shorter(chunk: Chunk) -> Callable[[Bus], list[int]]:
    """The chunk's transaction in the shorter request, as the worker sends a merged read: FC 65's
    ranges cost 4 bytes an item, FC 66's addresses 2 a register (a chunk of scattered registers
    with a few short runs among them goes as FC 66: ~8 ms less line for the 15 registers of the
    second presence read at 19200 baud; the reply is the same)."""
    if chunk.holding:
        return chunk.read
    return functools.partial(merged_read, items=chunk.items)


# The poll's read policy (docs/protocol.md#fallback): a refused chunk down to the registers the
# board has; a silent or garbled chunk costs its own registers; a silent first chunk ends the read.
POLL_RULES = Rules(depth=Depth.REGISTERS, split_silent=False, silent_limit=None, silent_start_ends=True)


def read_words(
    worker: Submitter,
    addresses: Iterable[int],
    *,
    priority: Priority = Priority.POLL,
    missing: set[int] | None = None,
    stop: threading.Event | None = None,
    on_asked: Callable[[], None] | None = None,
) -> PollReport:
    """Read ``addresses`` as one worker job per request of the read plan (``POLL_RULES``).

    A chunk refused with an exception reply is read again range by range, and a refused range in
    halves down to single addresses (docs/protocol.md#fallback); addresses the board says it does not
    have go into ``missing`` and are not asked for again. A timed-out or garbled chunk costs its
    own registers. Raises BusError when the line is lost, or BusTimeout when the first chunk of
    the read got no answer: then the unit is silent, and waiting for the other chunks would only
    delay the alert. ``on_asked`` is called once the first request is with the worker: what the
    caller does there overlaps the line instead of delaying it.
    """
    skip = missing if missing is not None else set()
    plan = ReadPlan(spans_of(a for a in addresses if a not in skip), POLL_RULES)
    failed_chunks = 0
    while (chunk := plan.next()) is not None:
        first_try = plan.first_try
        try:
            # ``reads``: under a flood of requests the worker reads it in pieces between theirs.
            job = worker.submit(_shorter(chunk), priority, key=("read", chunk.items), reads=chunk.items)
            if on_asked is not None:
                asked = on_asked
                on_asked = None  # once, for the first request
                asked()
            values = _wait(job, stop)
        except AuroraError as err:
            plan.fail(err)
            if first_try:
                failed_chunks += 1
                if not isinstance(err, ExceptionReply) and plan.error is None:
                    log.warning("poll_chunk_failed", registers=str(chunk), error=str(err))
            continue
        plan.answer(values)
    result = plan.result()
    for start, count, why in result.failed.spans():
        if isinstance(why, IllegalAddress):
            skip.update(range(start, start + count))
            log.warning("register_missing", address=start if count == 1 else f"{start}-{start + count - 1}")
    return PollReport(result.values, result.failed, result.transactions, failed_chunks)
