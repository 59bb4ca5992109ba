"""The poll thread: read the tiers the schedule says are due, publish what changed, and read again
what a raw write affected (docs/architecture.md#threads).

A failed poll is logged, counted and retried; nothing here raises out of the loop (unlike the
original, docs/architecture.md#original-bridge R1).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future

import structlog
from aurora import registers
from aurora.errors import AuroraError, BusError, BusTimeout
from aurora.logs import Repeats
from aurora.urls import redact

from .poller import PollReport, read_words
from .schedule import Idle, ReadTiers, Reread
from .spec import Tier
from .state import Shared

log = structlog.get_logger(__name__)


class PollLoop:
    """Owns the poll thread and each tier's last good read; does what the schedule
    (``Shared.schedule``, :mod:`.schedule`) says is due."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.thread: threading.Thread | None = None
        self._tier_read: dict[Tier, float] = {}  # monotonic time of each tier's last good read
        # An outage logs what is wrong once, then a summary a minute (issue 18), not a line a poll.
        self._failures = Repeats("poll_failed")

    # ------------------------------------------------------------ the thread

    def start(self) -> threading.Thread:
        """Start (or restart, after it died) the poll thread."""
        self.thread = threading.Thread(target=self._loop, name="poller", daemon=True)
        self.thread.start()
        return self.thread

    def alive(self) -> bool:
        """The poll thread is running (False before ``start``)."""
        return self.thread is not None and self.thread.is_alive()

    def join(self, timeout_s: float) -> None:
        """Wait for the thread to end (the stop event is set)."""
        self.shared.schedule.wake.set()
        if self.thread is not None:
            self.thread.join(timeout_s)

    def _loop(self) -> None:
        stop, schedule = self.shared.stop, self.shared.schedule
        while not stop.is_set():
            try:
                now = time.monotonic()
                step = schedule.next(now)
                if isinstance(step, Reread):
                    self._do_reread(step.addresses)
                elif isinstance(step, ReadTiers):
                    for tiers in schedule.passes(step.tiers, flooded=self.shared.worker.flooded()):
                        self.poll(list(tiers), now)
                        now = time.monotonic()
                elif isinstance(step, Idle):
                    schedule.wake.wait(step.seconds)
                    schedule.wake.clear()
            except Exception:  # poll never raises; this guards the loop itself (R1)
                log.exception("poll_loop_failed")
                stop.wait(1.0)

    # ------------------------------------------------------------ raw writes

    def absorb_raw_write(self, words: Mapping[int, int]) -> None:
        """Worker thread: a $modbus write changed registers. Publish what that changes now, and
        have the poll loop read again what the write affects (a write-only register shows up
        elsewhere: 12619 → 745); the rest of the poll schedule stays as it is (issue 15)."""
        self.shared.cache.update(words)
        self.shared.publish_values()
        self.shared.schedule.wrote(words)

    def _do_reread(self, addresses: Iterable[int]) -> None:
        """Read what a raw write affected, and publish it."""
        shared = self.shared
        started = time.monotonic()
        try:
            report = read_words(shared.worker, addresses, missing=shared.missing, stop=shared.stop)
        except AuroraError as err:
            log.warning("reread_failed", error=str(err))
            return
        shared.stats.rereads += 1
        shared.stats.transactions += report.transactions
        shared.cache.update(report.words, at=started)
        shared.publish_values()

    # ------------------------------------------------------------ one poll

    def addresses(self, tiers: Iterable[Tier]) -> set[int]:
        """The registers of ``tiers``."""
        unit = self.shared.detected
        addresses: set[int] = set()
        for tier in tiers:
            addresses |= set(unit.registers(tier))
        return addresses

    def start_first(
        self,
        known: Mapping[int, int] | None = None,
        on_read: Callable[[], None] | None = None,
        described: threading.Event | None = None,
    ) -> tuple[Future[PollReport], float]:
        """Read every tier on a thread of its own (while MQTT connects); ``poll`` with
        ``pending`` publishes what it read.

        Registers in ``known`` (detection has just read most of them: the presence checks read
        the sensors) are not read again: their words count as this poll's (issue 15: start to
        ready). ``on_read`` is called once the words are in (a start-up step's time). Once
        ``described`` is set (the description is out), what a breakpoint segment read is
        published while the next one is on the line: less is left to send after the last read."""
        future: Future[PollReport] = Future()
        started = time.monotonic()
        addresses = self.addresses(self.shared.schedule.tiers)
        given = {a: w for a, w in (known or {}).items() if a in addresses}
        addresses -= given.keys()

        def read() -> None:
            try:
                report = self._read_first(addresses, started, described) if addresses else PollReport({})
                if on_read is not None:
                    on_read()
                future.set_result(report.with_words({**given, **report.words}))
            except BaseException as err:  # poll takes it as a failed read
                future.set_exception(err)

        threading.Thread(target=read, name="first-poll", daemon=True).start()
        return future, started

    def _read_first(
        self, addresses: set[int], started: float, described: threading.Event | None
    ) -> PollReport:
        """The first poll's read, one breakpoint segment after the other (a transaction never
        spans two anyway); the words of each but the last go out as soon as they are in, once the
        description is (``described``). A silence at the start fails the read as one read_words
        would; a later segment's silence costs that segment's registers."""
        shared = self.shared
        groups: dict[int, list[int]] = {}
        for address in sorted(addresses):
            groups.setdefault(sum(1 for b in registers.BREAKPOINTS if address >= b), []).append(address)
        if described is None or len(groups) < 2:
            return read_words(shared.worker, addresses, missing=shared.missing, stop=shared.stop)
        words: dict[int, int] = {}
        failed: dict[int, AuroraError] = {}
        transactions = failed_chunks = 0
        publishers: list[threading.Thread] = []
        publish_next = False  # the segment just read goes out once the next one is asked for

        def publish() -> None:
            thread = threading.Thread(target=self._publish_segment, name="first-values", daemon=True)
            thread.start()
            publishers.append(thread)

        for index, group in enumerate(groups.values()):
            # Published beside the next segment's read, not before it is asked for: the publishing
            # takes a few ms, which the line would otherwise wait for.
            asked, publish_next = (publish if publish_next else None), False
            try:
                part = read_words(
                    shared.worker, group, missing=shared.missing, stop=shared.stop, on_asked=asked
                )
            except BusTimeout as err:
                if index == 0 or shared.stop.is_set():
                    raise
                failed.update(dict.fromkeys(group, err))
                failed_chunks += 1
                continue
            words.update(part.words)
            failed.update(part.failed)
            transactions += part.transactions
            failed_chunks += part.failed_chunks
            if index < len(groups) - 1 and part.words and described.is_set():
                shared.cache.update(part.words, at=started)  # as _done will, with the same time
                publish_next = True
        for thread in publishers:
            thread.join()  # out before the poll's own publishing and $state ready
        return PollReport(words, failed, transactions, failed_chunks)

    def _publish_segment(self) -> None:
        try:
            self.shared.publish_values()
        except Exception:  # the poll publishes them again after the last segment (R1)
            log.exception("first_values_failed")

    def poll(self, tiers: list[Tier], started: float, pending: Future[PollReport] | None = None) -> bool:
        """One read of ``tiers`` (or the one ``pending`` is making); publishes changed values.
        Never raises; True when anything answered."""
        shared = self.shared
        shared.stats.cycles += 1
        good = False
        try:
            if pending is not None:
                report = pending.result()
            else:
                addresses = self.addresses(tiers)
                report = read_words(shared.worker, addresses, missing=shared.missing, stop=shared.stop)
        except BusError as err:
            self._failed(str(err))
        except Exception as err:  # bad data, a bug in a decoder: log, count, carry on (R1)
            if not self._failures.failing:
                log.exception("poll_failed_unexpectedly")  # a bug: its traceback, once per outage
            self._failed(f"{type(err).__name__}: {err}")
        else:
            good = self._done(report, set(tiers) == set(Tier), started)
        shared.schedule.done(tiers, started)
        if good:
            now = time.monotonic()
            gaps = shared.stats.longest_gap_s
            for name in tiers:
                last = self._tier_read.get(name)
                if last is not None:
                    gaps[name] = max(gaps.get(name, 0.0), now - last)
                self._tier_read[name] = now
        return good

    def _failed(self, why: str) -> None:
        shared = self.shared
        if shared.stop.is_set():
            return
        shared.stats.failed_cycles += 1
        shared.stats.last_error = why
        self._failures.failed(why, port=redact(shared.config.port))
        if shared.publisher is not None and shared.ready.is_set():
            shared.publisher.set_state("alert")

    def _done(self, report: PollReport, full: bool, started: float) -> bool:
        shared = self.shared
        stats = shared.stats
        stats.transactions += report.transactions
        stats.failed_chunks += report.failed_chunks
        stats.missing_registers = len(shared.missing)
        if not report.words:
            self._failed("no register answered")
            return False
        shared.cache.update(report.words, at=started)  # a write's read-back since then wins
        if shared.energy is not None:
            shared.energy.feed(report.words)  # this poll's own words: a cached value is no sample
        stats.good_cycles += 1
        stats.last_good_wall = time.time()
        stats.last_good_mono = time.monotonic()
        if full:
            stats.last_cycle_s = time.monotonic() - started
        self._failures.recovered("poll_recovered")
        if report.failed:
            stats.last_error = f"{len(report.failed)} registers failed: {next(iter(report.failed.values()))}"
        else:
            stats.last_error = None  # $health tells what is wrong now, not what once was
        shared.publish_values()
        if shared.publisher is not None and shared.ready.is_set():
            shared.publisher.set_state("ready")
        return True
