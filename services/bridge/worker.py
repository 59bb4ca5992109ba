"""The bridge's bus worker: the only thread that touches the line (STYLE §6).

Jobs are single transactions (or a few), so a write or an interactive request waits for at most
the transaction in flight. Interactive jobs go before poll jobs; identical reads queued or in
flight at the same time share one transaction.

A lost line is reopened with backoff whatever the failure looks like: an open that fails, and an
open that succeeds but whose first transaction loses the line again (ser2net listening while it
cannot open its device, a peer that accepts and hangs up) count alike, so an outage costs at most
one attempt every ``max_backoff_s`` after the first few, and a log line a minute
(``aurora.logs.Repeats``). The line counts as up only once the unit has answered.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

import structlog
from aurora.bus import Bus, BusStats
from aurora.errors import BusError, BusTimeout, ExceptionReply, FrameError
from aurora.logs import Repeats

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Priority(IntEnum):
    WRITE = 0  # a user changed a set point
    INTERACTIVE = 1  # $modbus requests, web
    POLL = 2


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    run: Callable[[Bus], Any] = field(compare=False)
    result: Future[Any] = field(compare=False)
    key: Hashable | None = field(compare=False, default=None)
    polls_at_submit: int = field(compare=False, default=0)
    expires_at: float | None = field(compare=False, default=None)


FIRST_BACKOFF_S = 0.25  # then doubled per failed attempt, up to max_backoff_s
MAX_BACKOFF_S = 2.0  # an outage costs one attempt in this long; the line is back this soon after


def reopen_delay(failures: int, max_backoff_s: float = MAX_BACKOFF_S) -> float:
    """Seconds to wait before the next open after ``failures`` failed attempts in a row."""
    if failures <= 0:
        return 0.0
    return float(min(max_backoff_s, FIRST_BACKOFF_S * 2 ** min(failures - 1, 16)))


class BusWorker:
    """Runs jobs against a Bus on one thread; opens and reopens the bus with ``opener``."""

    def __init__(
        self,
        opener: Callable[[], Bus],
        *,
        on_line_state: Callable[[bool, str | None], None] | None = None,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self._opener = opener
        self._on_line_state = on_line_state or (lambda up, why: None)
        self._max_backoff_s = max_backoff_s
        self._jobs: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._inflight: dict[Hashable, Future[Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bus: Bus | None = None
        self._thread = threading.Thread(target=self._run, name="bus-worker", daemon=True)
        self.stats = BusStats()  # carried across reconnects
        self.line_up = False
        self.busy_since: float | None = None
        self.longest_wait_s = 0.0
        self.coalesced = 0
        # How many poll transactions a write or interactive request ever had to wait for: the design
        # promises at most the one in flight when it arrived (issue 8's "one transaction" goal).
        self.polls_finished = 0
        self.last_success: float | None = None  # monotonic time of the last job that got its answers
        self.most_polls_waited = 0
        self._failures = 0  # failed attempts in a row: opens, and opens whose line failed at once
        self._next_open = 0.0  # monotonic time before which the line is not opened again
        self._answered = False  # the unit answered since the line was last opened
        self._repeats = Repeats("bus_reopen_failed")

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the job in flight; queued jobs fail with BusError."""
        self._stop.set()
        self._jobs.put(_Job(-1, -1, lambda bus: None, Future()))
        self._thread.join(timeout_s)
        if self._bus is not None:
            self._bus.close()

    def submit(
        self,
        run: Callable[[Bus], T],
        priority: Priority = Priority.INTERACTIVE,
        *,
        key: Hashable | None = None,
        expires_s: float | None = None,
    ) -> Future[T]:
        """Queue ``run(bus)``; with ``key``, an identical job already queued or running is shared.

        A job with ``expires_s`` (a write) fails with BusError instead of running when it has not
        started within that time, or when the line is down when its turn comes: a write must not
        be made whenever the line returns, maybe hours after the user gave up on it.
        """
        with self._lock:
            if key is not None and (shared := self._inflight.get(key)) is not None:
                self.coalesced += 1
                return shared
            future: Future[T] = Future()
            future.enqueued_at = time.monotonic()  # type: ignore[attr-defined]
            if key is not None:
                self._inflight[key] = future
        if self._stop.is_set():
            future.set_exception(BusError("the bridge is stopping"))
            return future
        expires_at = None if expires_s is None else time.monotonic() + expires_s
        self._jobs.put(
            _Job(int(priority), next(self._seq), run, future, key, self.polls_finished, expires_at)
        )
        return future

    def pending(self) -> int:
        """Jobs waiting (not counting the one in flight)."""
        return self._jobs.qsize()

    # ------------------------------------------------------------ the worker thread

    def _open(self) -> Bus:
        """Open the line, waiting out the backoff first; only stop() ends the attempts."""
        while True:
            self._stop.wait(max(0.0, self._next_open - time.monotonic()))
            if self._stop.is_set():
                raise BusError("the bridge is stopping")
            try:
                bus = self._opener()
            except BusError as err:
                self._attempt_failed(str(err))
                continue
            bus.stats = self.stats  # one set of counters for the bridge's life, across reconnects
            self.stats.reconnects += 1
            self._answered = False
            return bus

    def _attempt_failed(self, why: str) -> None:
        self._failures += 1
        delay = reopen_delay(self._failures, self._max_backoff_s)
        self._next_open = time.monotonic() + delay
        self._repeats.failed(why, retry_in_s=delay)

    def _answered_now(self) -> None:
        self.last_success = time.monotonic()  # the unit answered, whoever asked
        self._answered = True
        self._failures = 0
        self._line(True, None)

    def _line(self, up: bool, why: str | None) -> None:
        if up != self.line_up:
            self.line_up = up
            if up:
                if not self._repeats.recovered("bus_up"):
                    log.info("bus_up")
            else:
                log.warning("bus_down", reason=why)
            try:
                self._on_line_state(up, why)
            except Exception:  # a listener's bug must not stop the bus
                log.exception("line_state_listener_failed")

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self._jobs.get()
            if self._stop.is_set():
                break
            if not job.result.set_running_or_notify_cancel():
                self._forget(job)
                continue
            waited = time.monotonic() - getattr(job.result, "enqueued_at", time.monotonic())
            self.longest_wait_s = max(self.longest_wait_s, waited)
            if job.priority < Priority.POLL:
                polls_waited = self.polls_finished - job.polls_at_submit
                self.most_polls_waited = max(self.most_polls_waited, polls_waited)
            refused = self._expired(job)
            if refused is not None:
                job.result.set_exception(BusError(refused))
                self._forget(job)
                continue
            try:
                if self._bus is None:
                    self._bus = self._open()
                self.busy_since = time.monotonic()
                result = job.run(self._bus)
                if self._bus is not None:  # a reset job drops the line: no answer in that
                    self._answered_now()
                job.result.set_result(result)
            except (ExceptionReply, FrameError) as err:
                self._answered_now()  # a refusal or a garbled reply: the unit is there
                job.result.set_exception(err)
            except BusError as err:
                if not isinstance(err, BusTimeout):
                    self._drop_bus(str(err))
                job.result.set_exception(err)
            except Exception as err:  # the caller decides; the worker never dies
                job.result.set_exception(err)
            finally:
                self.busy_since = None
                if job.priority == Priority.POLL:
                    self.polls_finished += 1
                self._forget(job)
        while not self._jobs.empty():
            job = self._jobs.get_nowait()
            if job.result.set_running_or_notify_cancel():
                job.result.set_exception(BusError("the bridge is stopping"))

    def _expired(self, job: _Job) -> str | None:
        """Why an expiring job (a write) must not run now, or None."""
        if job.expires_at is None:
            return None
        if self._bus is None or not self.line_up:
            return "the line to the heat pump is down: nothing was written"
        if time.monotonic() > job.expires_at:
            return "the write waited too long for the line: nothing was written"
        return None

    def reset(self, why: str) -> Future[None]:
        """Drop the bus before the next poll job (the watchdog's cure); the next job reopens it."""
        log.warning("bus_reset", reason=why)

        def drop(bus: Bus) -> None:
            self._drop_bus(why)

        return self.submit(drop, Priority.WRITE)

    def force_close(self, why: str) -> None:
        """Close the bus from another thread: a transaction stuck in the worker then fails fast.

        Only for the watchdog, when a job has run far longer than any transaction can.
        """
        bus = self._bus
        log.error(
            "bus_stuck", reason=why, busy_s=round(time.monotonic() - (self.busy_since or time.monotonic()), 1)
        )
        if bus is not None:
            try:
                bus.close()
            except Exception:  # closing a broken port may fail; the worker reopens it anyway
                log.debug("bus_close_failed", exc_info=True)

    def alive(self) -> bool:
        """Whether the worker thread is running."""
        return self._thread.is_alive()

    def mark_line_down(self, why: str) -> None:
        """Called (from the worker's own jobs) when the unit stopped answering though the line is open."""
        self._line(False, why)

    def mark_line_up(self) -> None:
        """A job got an answer."""
        self._answered_now()

    def _drop_bus(self, why: str) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None
            if not self._answered:
                # Opened, then lost before the unit said a word: as good as a failed open.
                self._attempt_failed(why)
        self._line(False, why)

    def _forget(self, job: _Job) -> None:
        if job.key is not None:
            with self._lock:
                if self._inflight.get(job.key) is job.result:
                    del self._inflight[job.key]
