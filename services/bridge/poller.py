"""Polling in tiers through the bus worker: the raw-word cache and reads packed into few transactions.

Each ≤100-register chunk is its own worker job at ``Priority.POLL``, so a write or a ``$modbus``
request waits for at most the one transaction in flight (docs/architecture.md#one-bus-worker). A chunk the
board refuses or
does not answer costs only its own registers (docs/architecture.md#partial-failure); a lost line or a cycle in
which nothing
answered raises.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import structlog
from aurora.bus import Bus
from aurora.errors import (
    AuroraError,
    BusError,
    BusTimeout,
    ExceptionReply,
    FrameError,
    IllegalAddress,
    UsageError,
)
from aurora.query import Chunk, plan_chunks

from .worker import Priority

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Submitter(Protocol):
    """What the poller needs from BusWorker."""

    def submit(
        self, run: Callable[[Bus], T], priority: Priority = ..., *, key: Hashable | None = ...
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


@dataclass(frozen=True, slots=True)
class PollReport:
    """What one read produced: the words that answered and why the others did not
    (docs/architecture.md#partial-failure)."""

    words: Mapping[int, int]
    failed: Mapping[int, AuroraError] = field(default_factory=dict)
    transactions: int = 0
    failed_chunks: int = 0

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


def read_words(
    worker: Submitter,
    addresses: Iterable[int],
    *,
    priority: Priority = Priority.POLL,
    missing: set[int] | None = None,
    stop: threading.Event | None = None,
) -> PollReport:
    """Read ``addresses`` as one worker job per chunk.

    A chunk refused with an exception reply is read again range by range, and a refused range in
    halves down to single addresses (docs/protocol.md#fallback); addresses the board says it does not
    have go into ``missing`` and are not asked for again. A timed-out or garbled chunk costs its
    own registers. Raises BusError when the line is lost, or BusTimeout when the first chunk of
    the read got no answer: then the unit is silent, and waiting for the other chunks would only
    delay the alert.
    """
    skip = missing if missing is not None else set()
    words: dict[int, int] = {}
    failed: dict[int, AuroraError] = {}
    transactions = 0
    failed_chunks = 0
    answered = False

    def run(chunk: Chunk) -> list[int]:
        nonlocal transactions
        transactions += 1
        return _wait(worker.submit(chunk.read, priority, key=("read", chunk.items)), stop)

    for chunk in plan_chunks(a for a in addresses if a not in skip):
        try:
            words.update(zip(chunk.addresses, run(chunk), strict=True))
            answered = True
            continue
        except BusTimeout as err:
            if not answered:
                raise
            failure: AuroraError = err
        except (BusError, UsageError):
            raise  # the line is gone, or the port itself is wrong: nothing else will answer either
        except (FrameError, ExceptionReply) as err:
            failure = err
        except AuroraError as err:
            failure = err
        failed_chunks += 1
        if not isinstance(failure, ExceptionReply):
            failed.update(dict.fromkeys(chunk.addresses, failure))
            log.warning("poll_chunk_failed", registers=str(chunk), error=str(failure))
            continue
        answered = True  # the board answered, only not with data
        pending = _split(chunk)
        while pending:
            item = pending.pop(0)
            try:
                words.update(zip(item.addresses, run(item), strict=True))
            except IllegalAddress as err:
                if item.count > 1:
                    pending[:0] = _split(item)  # bisect: a few reads find the one missing register
                    continue
                failed[item.addresses[0]] = err
                skip.add(item.addresses[0])
                log.warning("register_missing", address=item.addresses[0])
            except (ExceptionReply, FrameError, BusTimeout) as err:
                failed.update(dict.fromkeys(item.addresses, err))
    return PollReport(words, failed, transactions, failed_chunks)


def _split(chunk: Chunk) -> list[Chunk]:
    """A refused chunk's items one by one; a refused range in two halves."""
    if len(chunk.items) > 1:
        return [Chunk((item,)) for item in chunk.items]
    start, count = chunk.items[0]
    half = count // 2
    return [Chunk(((start, half),)), Chunk(((start + half, count - half),))]
