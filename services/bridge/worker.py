"""The bridge's bus worker: the only thread that talks on the line (docs/architecture.md#one-bus-worker;
the watchdog may only close it from outside, ``force_close``, when one job has held it for a minute).

Jobs are single transactions (or a few), so a write or an interactive request waits for at most
the transaction in flight. The line is shared fairly (issue 15):

* writes go first, always: a ``/set`` waits for at most the one transaction in flight;
* interactive requests (``$modbus``, virtual ports), the later transactions of long queries
  (``BULK``) and the poller's transactions take turns, one transaction each, so no flood of
  requests can stop polling (nor a poll hold up the requests) for more than a transaction at a time;
* distinct interactive reads queued together are merged into one transaction when they fit in one
  (at most 100 registers, all on one side of a breakpoint: ``aurora.query``; FC 66 past the 63
  items an FC 65 request holds), oldest first, and
  each job gets exactly its own words back; a merged read the board refuses is read again job by
  job, so a client's bad register costs only that client its answer;
* a merge keeps cohorts together: the reads queued between the ends of two request transactions
  (the clients one transaction answered, asking again) go in one transaction with the older
  ones, and a younger cohort joins only whole. Clients reading back to back then come round
  once per cycle of the same few transactions, each waiting the same time: a merge that took
  whatever fitted cut cohorts at arbitrary points, and the clients cut off waited a whole
  transaction more (0.12 s for 50 registers; issue 15's p99 at 200 clients);
* while reads that may share a transaction wait, a poll job goes in pieces of
  ``POLL_PIECE_REGISTERS`` instead of a whole 100-register transaction, which would hold up
  every waiting request by 0.24 s at 19200 baud (a virtual port's FC 3 read, which shares none,
  does not cut the poll: see ``_requests_waiting``); a request waits for at most one poll
  transaction besides the one on the line when it came (the poll reads once per cycle of the
  cohorts), and the poll for at most ``POLL_HOLD_TRANSACTIONS`` request transactions between two
  of its own, so a flood cannot stop it;
* jobs of one class are taken round-robin by their ``owner`` (a ``$modbus`` account), oldest first
  within one: an account's many requests cost another account's at most one turn each, however
  many it has queued;
* identical reads queued or in flight at the same time share one transaction.

A lost line is reopened with backoff whatever the failure looks like: an open that fails, and an
open that succeeds but whose first transaction loses the line again (ser2net listening while it
cannot open its device, a peer that accepts and hangs up) count alike, so an outage costs at most
one attempt every ``max_backoff_s`` after the first few, and a log line a minute
(``aurora.logs.Repeats``). The line counts as up only once the unit has answered.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future
from enum import IntEnum
from typing import Any, TypeVar

from aurora import registers, rtu
from aurora.bus import Bus, BusStats
from aurora.errors import BusError, BusTimeout, ExceptionReply, FrameError, IllegalAddress
from aurora.logs import Repeats, get_logger
from aurora.query import MAX_PAIRS

log = get_logger(__name__)  # structlog imported when it first logs (issue 15)

T = TypeVar("T")

Items = tuple[tuple[int, int], ...]


class Priority(IntEnum):
    WRITE = 0  # a user changed a set point: always next
    INTERACTIVE = 1  # $modbus requests, virtual-port clients, web
    BULK = 2  # a long query's later transactions (a `valid` is 42 reads)
    POLL = 3  # the poller's tiers


# The classes that take turns after writes, in the order of the turn.
_TURNS = (Priority.INTERACTIVE, Priority.BULK, Priority.POLL)
_MERGE_SCAN = 256  # queued jobs looked at for one merged read: bounded work per transaction
# While requests wait, a poll job is read in pieces of at most this many registers: a whole
# 100-register poll transaction would add 0.24 s to every request waiting behind it, a piece of 15
# 30-45 ms (FC 65 for ranges, FC 66 for scattered registers). Under a flood of 200 clients a piece
# goes once per cycle of their cohorts (~0.55 s at 19200 baud): some 27 registers a second, 1.6 x
# what the bench's fast 5 s / medium 10 s / slow 15 s tiers need (its fast tier's longest gap was
# 7.6 s then; 20-register pieces cost every round that holds one 10 ms more, 10-register ones
# could not keep up). With no request waiting a poll job goes whole.
POLL_PIECE_REGISTERS = 15
# A poll transaction waits for the requests that waited through the last one, but for no more than
# this many request transactions: reads that cannot merge (100 registers each) from one account
# would otherwise hold up the poll for as long as the account keeps them coming.
POLL_HOLD_TRANSACTIONS = 3
_SOLO_MEMORY = 256  # reads the board refused lately: run alone, not merged (they would fail a merge)


class _Job:
    """One queued job (a plain class with slots, not a dataclass: the bridge imports this module
    before its first request goes out, issue 15)."""

    __slots__ = (
        "cohort",
        "expires_at",
        "key",
        "owner",
        "piece",
        "polls_at_submit",
        "priority",
        "reads",
        "rest",
        "result",
        "run",
        "seq",
        "started_at_submit",
        "words",
    )

    def __init__(  # noqa: PLR0917 - one argument per field, as the dataclass had
        self,
        priority: int,
        seq: int,
        run: Callable[[Bus], Any],
        result: Future[Any],
        key: Hashable | None = None,
        polls_at_submit: int = 0,
        expires_at: float | None = None,
        reads: Items | None = None,
        started_at_submit: int = 0,
        owner: Hashable | None = None,
        cohort: int = 0,
    ) -> None:
        self.priority, self.seq, self.run, self.result = priority, seq, run, result
        self.key, self.polls_at_submit, self.expires_at = key, polls_at_submit, expires_at
        self.reads: Items | None = reads  # what the job reads, when it may share a merged transaction
        self.started_at_submit = started_at_submit  # transactions started before it was queued
        self.owner = owner  # whose job it is: jobs of one class are taken round-robin by owner
        # Request transactions that had ended when it was queued: the clients who came back together.
        self.cohort = cohort
        self.rest: Items | None = None  # a poll job read in pieces: the items not read yet
        self.piece: Items = ()  # ... the items of the piece being read
        self.words: list[int] = []  # ... and the words of the pieces read so far


class _FairQueue:
    """One class's queued jobs: round-robin by owner, oldest first within an owner. Bounded by
    what callers queue (the pass-through's in-flight limits); an owner with nothing queued is
    forgotten."""

    def __init__(self) -> None:
        self._owners: OrderedDict[Hashable | None, deque[_Job]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def append(self, job: _Job) -> None:
        """Queue ``job`` behind its owner's other jobs."""
        queue = self._owners.get(job.owner)
        if queue is None:
            queue = self._owners[job.owner] = deque()
        queue.append(job)
        self._count += 1

    def peek(self) -> _Job:
        """The job ``popleft`` would return."""
        return next(iter(self._owners.values()))[0]

    def popleft(self) -> _Job:
        """The next owner's oldest job; that owner goes to the back of the turn."""
        owner, queue = next(iter(self._owners.items()))
        job = queue.popleft()
        self._count -= 1
        if queue:
            self._owners.move_to_end(owner)
        else:
            del self._owners[owner]
        return job

    def __iter__(self) -> Iterator[_Job]:
        """In the order of the turns: each owner's oldest, then each one's second..."""
        for round_ in itertools.zip_longest(*self._owners.values()):
            yield from (job for job in round_ if job is not None)

    def remove(self, job: _Job) -> None:
        """Take ``job`` out (it is queued)."""
        queue = self._owners[job.owner]
        queue.remove(job)
        self._count -= 1
        if not queue:
            del self._owners[job.owner]

    def clear(self) -> list[_Job]:
        """Empty the queue; the jobs it held."""
        jobs = [job for queue in self._owners.values() for job in queue]
        self._owners.clear()
        self._count = 0
        return jobs


FIRST_BACKOFF_S = 0.25  # then doubled per failed attempt, up to max_backoff_s
# A write not started by then (the line went down meanwhile, or the queue was long) is not made: a
# raw write that old is no longer what its sender meant. /set, RPC and the virtual ports use it.
WRITE_EXPIRES_S = 10.0
MAX_BACKOFF_S = 2.0  # an outage costs one attempt in this long; the line is back this soon after


def reopen_delay(failures: int, max_backoff_s: float = MAX_BACKOFF_S) -> float:
    """Seconds to wait before the next open after ``failures`` failed attempts in a row."""
    if failures <= 0:
        return 0.0
    return float(min(max_backoff_s, FIRST_BACKOFF_S * 2 ** min(failures - 1, 16)))


def _segment(items: Items) -> int | None:
    """The breakpoint segment all of ``items`` lie in, or None when they straddle one."""
    first = sum(1 for b in registers.BREAKPOINTS if items[0][0] >= b)
    for start, count in items:
        low = sum(1 for b in registers.BREAKPOINTS if start >= b)
        high = sum(1 for b in registers.BREAKPOINTS if start + count - 1 >= b)
        if low != first or high != first:
            return None
    return first


def _registers(job: _Job) -> int:
    return sum(n for _, n in job.reads or ())


def merged_read(bus: Bus, items: Items) -> list[int]:
    """One transaction for the items of several reads, in the shorter request: FC 65 ranges (4
    bytes an item, at most 63 items) or FC 66 addresses (2 bytes a register). The reply's words
    come in the items' order either way."""
    count = sum(n for _, n in items)
    if any(n > 1 for _, n in items) and len(items) <= MAX_PAIRS and 2 * len(items) < count:
        return bus.read_ranges(items)
    return bus.read_registers([a for start, n in items for a in range(start, start + n)])


class _Replay:
    """A Bus that answers one job's read from its share of a merged transaction."""

    def __init__(self, items: Items, values: list[int], stats: BusStats) -> None:
        self._items = items
        self._values = values
        self.stats = stats

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[int]:
        if tuple(tuple(r) for r in ranges) != self._items:
            raise RuntimeError("a merged job read other registers than it declared")
        return list(self._values)

    def read_registers(self, addresses: Sequence[int]) -> list[int]:
        # FC 66 addresses: a job's read of ranges may go so too, when that request is shorter
        if list(addresses) != [a for start, n in self._items for a in range(start, start + n)]:
            raise RuntimeError("a merged job read other registers than it declared")
        return list(self._values)

    def read_holding(self, start: int, count: int) -> list[int]:
        raise RuntimeError("a merged job read with FC 3")

    def write_register(self, address: int, value: int) -> None:
        raise RuntimeError("a merged job wrote")

    def close(self) -> None:
        """Nothing to release: the real bus stays with the worker."""


class BusWorker:
    """Runs jobs against a Bus on one thread; opens and reopens the bus with ``opener``."""

    def __init__(
        self,
        opener: Callable[[], Bus],
        *,
        on_line_state: Callable[[bool, str | None], None] | None = None,
        max_backoff_s: float = MAX_BACKOFF_S,
        merge: bool = True,
    ) -> None:
        self._opener = opener
        self._on_line_state = on_line_state or (lambda up, why: None)
        self._max_backoff_s = max_backoff_s
        self._merge = merge
        self._queues: dict[int, _FairQueue] = {int(p): _FairQueue() for p in Priority}
        self._turn = 0  # index into _TURNS of the class that goes first next time
        self._ready = threading.Condition(threading.Lock())
        self._seq = itertools.count()
        self._inflight: dict[Hashable, Future[Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bus: Bus | None = None
        self._thread = threading.Thread(target=self._run, name="bus-worker", daemon=True)
        self._solo: OrderedDict[Items, None] = OrderedDict()
        self.stats = BusStats()  # carried across reconnects
        self.line_up = False
        # Since when no transaction on the open line got any answer (a timeout), None while the
        # unit answers: the line may be up and the unit silent (a cable, a network cut).
        self.quiet_since: float | None = None
        # Called (worker thread) when the unit answers again after the line was down or quiet.
        self.on_answering: Callable[[], None] | None = None
        self.busy_since: float | None = None
        self.longest_wait_s = 0.0
        # The longest any job of each class waited for its turn: the bench flags these against
        # the goals (a write: one transaction; a poll: well within its tier's interval).
        self.longest_waits_s: dict[str, float] = {p.name.lower(): 0.0 for p in Priority}
        self.coalesced = 0
        self.merged_transactions = 0  # transactions that carried the reads of two jobs or more
        self.merged_jobs = 0  # jobs answered by such a transaction
        self.merge_fallbacks = 0  # merged reads the board refused, then read job by job
        self.poll_pieces = 0  # transactions that read a piece of a poll job while requests waited
        self._served_requests = False  # the last transaction was a request's mergeable read
        self._request_transactions = 0  # transactions of interactive or bulk jobs ended: the cohorts
        self._last_poll = -1  # `started` of the last poll transaction: requests queued until then saw it
        self._since_poll = 0  # request transactions since the last poll transaction
        self.started = 0  # transactions (jobs or merged reads) started
        # Poll transactions a write ever had to wait for: the design promises at most the one in
        # flight when it arrived (issue 8's "one transaction" goal).
        self.polls_finished = 0
        self.last_success: float | None = None  # monotonic time of the last job that got its answers
        self.most_polls_waited = 0
        self.most_transactions_waited = 0  # by a write, of any kind
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
        with self._ready:
            self._ready.notify_all()
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
        reads: Items | None = None,
        owner: Hashable | None = None,
    ) -> Future[T]:
        """Queue ``run(bus)``; with ``key``, an identical job already queued or running is shared.

        With ``reads`` (the (start, count) items ``run`` reads with FC 65/66 and nothing else), the
        job may share one transaction with other queued reads; ``run`` then gets a bus that answers
        exactly those items from the merged reply.

        A job with ``expires_s`` (a write) fails with BusError instead of running when it has not
        started within that time, or when the line is down when its turn comes: a write must not
        be made whenever the line returns, maybe hours after the user gave up on it.

        Jobs of one priority are taken round-robin by ``owner`` (the pass-through's account), so
        one owner's many jobs cannot hold up another's.
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
        if reads is not None:
            reads = tuple((int(s), int(n)) for s, n in reads)
            if not reads or _segment(reads) is None or sum(n for _, n in reads) > rtu.MAX_READ_REGISTERS:
                reads = None  # a read that cannot share: it runs as it is
        job = _Job(
            int(priority),
            next(self._seq),
            run,
            future,
            key,
            self.polls_finished,
            expires_at,
            reads,
            self.started,
            owner,
            cohort=self._request_transactions,
        )
        with self._ready:
            self._queues[int(priority)].append(job)
            self._ready.notify()
        return future

    def flooded(self) -> bool:
        """Whether reads that may share a transaction are queued: a poll now goes in pieces."""
        with self._ready:
            return any(
                job.reads is not None
                for q in (Priority.INTERACTIVE, Priority.BULK)
                for job in self._queues[q]
            )

    def pending(self) -> int:
        """Jobs waiting (not counting the one in flight)."""
        with self._ready:
            return sum(len(q) for q in self._queues.values())

    # ------------------------------------------------------------ the worker thread

    def _next_jobs(self) -> list[_Job] | None:
        """The next job, with the reads merged into its transaction; None once stopping. A poll
        job read in pieces comes alone, with its ``piece`` set (lock taken here)."""
        with self._ready:
            while True:
                if self._stop.is_set():
                    return None
                if self._queues[Priority.WRITE]:
                    return [self._queues[Priority.WRITE].popleft()]
                for step in range(len(_TURNS)):
                    index = (self._turn + step) % len(_TURNS)
                    queue = self._queues[_TURNS[index]]
                    if queue:
                        if _TURNS[index] == Priority.POLL and self._hold_poll():
                            continue  # the requests that waited through the last poll read go first
                        self._turn = (index + 1) % len(_TURNS)
                        if _TURNS[index] == Priority.POLL and self._in_pieces(queue.peek()):
                            return [self._piece(queue)]
                        first = queue.popleft()
                        return [first, *self._mergeable(first, queue)]
                self._ready.wait()

    def _requests_waiting(self) -> bool:
        """Reads that may share a transaction are queued, or the last transaction served some:
        clients reading back to back ask again a few milliseconds after their answer, while the
        next job is on the line. Only those count: a merged transaction lets many waiting clients
        in at once, but a request that cannot share one (a virtual port's FC 3 read) gets the
        line for its own transaction either way, and cutting the poll into pieces for it costs
        the line more than it saves (`make bench`'s virtual-port scenario: 19 % fewer requests a
        second and its p99 doubled, tests/perf/bench_vports.py)."""
        return self._served_requests or any(
            job.reads is not None for q in (Priority.INTERACTIVE, Priority.BULK) for job in self._queues[q]
        )

    def _hold_poll(self) -> bool:
        """Whether the poll's next transaction (a piece, or a small job whole) waits (lock held):
        a queued read that may share a transaction was queued before the last poll transaction
        ended, so it has waited for one already (besides the one on the line when it came), and
        the poll has not waited POLL_HOLD_TRANSACTIONS request transactions yet. Under a flood
        the poll then reads once per cycle of the cohorts, and every client's wait holds one
        poll transaction, not several."""
        if self._since_poll >= POLL_HOLD_TRANSACTIONS:
            return False
        return any(
            job.reads is not None and job.started_at_submit <= self._last_poll
            for q in (Priority.INTERACTIVE, Priority.BULK)
            for job in self._queues[q]
        )

    def _in_pieces(self, job: _Job) -> bool:
        """Whether this poll job goes in pieces (lock held): it has begun so, or requests wait."""
        if job.rest is not None:
            return True
        if not self._merge or job.reads is None or job.reads in self._solo:
            return False
        return sum(n for _, n in job.reads) > POLL_PIECE_REGISTERS and self._requests_waiting()

    def _piece(self, queue: _FairQueue) -> _Job:
        """Cut the next piece off the poll job at the head of ``queue`` into its ``piece``: at
        most POLL_PIECE_REGISTERS while requests wait, else all that is left, and then the job
        leaves the queue (lock held)."""
        job = queue.peek()
        rest = job.rest if job.rest is not None else job.reads or ()
        room = POLL_PIECE_REGISTERS if self._requests_waiting() else rtu.MAX_READ_REGISTERS
        piece: list[tuple[int, int]] = []
        left = list(rest)
        while left and room > 0:
            start, count = left.pop(0)
            take = min(count, room)
            piece.append((start, take))
            if take < count:
                left.insert(0, (start + take, count - take))
            room -= take
        job.rest = tuple(left)
        job.piece = tuple(piece)
        if not left:
            queue.popleft()  # its last piece
        return job

    def _mergeable(self, first: _Job, queue: _FairQueue) -> list[_Job]:
        """Queued jobs whose reads fit in one transaction with ``first``'s (lock held): those of
        its cohort and older ones, oldest first (in the owners' turns), then younger cohorts
        while one fits whole. Past 63 items a merge goes as FC 66."""
        if not self._merge or first.reads is None or first.reads in self._solo:
            return []
        segment = _segment(first.reads)
        room = rtu.MAX_READ_REGISTERS - _registers(first)
        taken: list[_Job] = []
        younger: dict[int, list[_Job]] = {}
        left_out = False
        for job in itertools.islice(queue, _MERGE_SCAN):
            if (
                job.reads is None
                or job.expires_at is not None
                or job.reads in self._solo
                or _segment(job.reads) != segment
            ):
                continue
            if job.cohort > first.cohort:
                younger.setdefault(job.cohort, []).append(job)
            elif _registers(job) <= room:
                taken.append(job)
                room -= _registers(job)
            else:
                left_out = True
        # A younger cohort cut in two would leave its rest a whole transaction behind the clients
        # it came with; and none goes before an older read that did not fit.
        for cohort in sorted(younger) if not left_out else ():
            size = sum(_registers(job) for job in younger[cohort])
            if size > room:
                break
            taken += younger[cohort]
            room -= size
        for job in taken:
            queue.remove(job)
        return taken

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
        again = self.quiet_since is not None or not self.line_up
        self.quiet_since = None
        self._line(True, None)
        if again and self.on_answering is not None:
            try:
                self.on_answering()
            except Exception:  # a listener's bug must not stop the bus
                log.exception("answering_listener_failed")

    def _unanswered(self, err: BaseException) -> None:
        """A transaction failed: a timeout leaves the line open and marks the unit quiet; another
        bus error drops the line (the next job reopens it); anything else is the job's own."""
        if isinstance(err, BusTimeout):
            if self.quiet_since is None:
                self.quiet_since = time.monotonic()
        elif isinstance(err, BusError):
            self._drop_bus(str(err))

    @property
    def answering(self) -> bool:
        """Whether the line is up and its last transaction got an answer."""
        return self.line_up and self.quiet_since is None

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

    def _starting(self, job: _Job) -> bool:
        """Book-keeping as a job leaves the queue; False when it was cancelled meanwhile."""
        if not job.result.set_running_or_notify_cancel():
            self._forget(job)
            return False
        waited = time.monotonic() - getattr(job.result, "enqueued_at", time.monotonic())
        self.longest_wait_s = max(self.longest_wait_s, waited)
        name = Priority(job.priority).name.lower()
        self.longest_waits_s[name] = max(self.longest_waits_s[name], waited)
        if job.priority == Priority.WRITE:
            self.most_polls_waited = max(self.most_polls_waited, self.polls_finished - job.polls_at_submit)
            self.most_transactions_waited = max(
                self.most_transactions_waited, self.started - job.started_at_submit
            )
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            picked = self._next_jobs()
            if picked is None:
                break
            self._served_requests = (
                picked[0].priority in (Priority.INTERACTIVE, Priority.BULK) and picked[0].reads is not None
            )
            if picked[0].priority == Priority.POLL:
                self._last_poll = self.started + 1  # the number _begin gives it
                self._since_poll = 0
            if picked[0].rest is not None:
                self._run_piece(picked[0])
                continue
            jobs = [job for job in picked if self._starting(job)]
            if not jobs:
                continue
            if len(jobs) == 1:
                self._run_one(jobs[0])
            else:
                self._run_merged(jobs)
            if picked[0].priority in (Priority.INTERACTIVE, Priority.BULK):
                self._since_poll += 1
        with self._ready:
            left = [job for queue in self._queues.values() for job in queue.clear()]
        for job in left:
            # a poll job read in pieces is running already
            if job.result.running() or job.result.set_running_or_notify_cancel():
                job.result.set_exception(BusError("the bridge is stopping"))

    def _begin(self) -> Bus:
        """A transaction starts: counted, on the line (opened, with backoff, when it is not)."""
        self.started += 1
        if self._bus is None:
            self._bus = self._open()
        self.busy_since = time.monotonic()
        return self._bus

    def _ended(self, job: _Job) -> None:
        """A transaction of ``job``'s ended; before its answers go out, so that whatever its
        clients queue next (at once, from a done-callback, or a broker round trip later) belongs
        to the next cohort."""
        if job.priority in (Priority.INTERACTIVE, Priority.BULK):
            self._request_transactions += 1

    def _run_one(self, job: _Job) -> None:
        refused = self._expired(job)
        if refused is not None:
            job.result.set_exception(BusError(refused))
            self._forget(job)
            return
        try:
            try:
                result = job.run(self._begin())
            finally:
                self._ended(job)
            if self._bus is not None:  # a reset job drops the line: no answer in that
                self._answered_now()
            job.result.set_result(result)
        except (ExceptionReply, FrameError) as err:
            self._answered_now()  # a refusal or a garbled reply: the unit is there
            if isinstance(err, IllegalAddress) and job.reads is not None:
                self._remember_solo(job.reads)
            job.result.set_exception(err)
        except BusError as err:
            self._unanswered(err)
            job.result.set_exception(err)
        except Exception as err:  # the caller decides; the worker never dies
            job.result.set_exception(err)
        finally:
            self.busy_since = None
            if job.priority == Priority.POLL:
                self.polls_finished += 1
            self._forget(job)

    def _run_merged(self, jobs: list[_Job]) -> None:
        """One transaction for the reads of every job; each gets its own share of the reply."""
        items = tuple(item for job in jobs for item in job.reads or ())
        try:
            try:
                values = merged_read(self._begin(), items)
            finally:
                self._ended(jobs[0])
        except (ExceptionReply, FrameError):
            # Someone's register is missing, or the reply was garbled: each job alone, so only
            # the job that asked for a bad register gets the board's refusal.
            self._answered_now()
            self.merge_fallbacks += 1
            self.busy_since = None
            for job in jobs:
                self._run_one(job)
            return
        except BaseException as err:
            self._unanswered(err)
            self.busy_since = None
            for job in jobs:
                job.result.set_exception(err)
                self._forget(job)
            return
        self._answered_now()
        self.busy_since = None
        self.merged_transactions += 1
        self.merged_jobs += len(jobs)
        offset = 0
        for job in jobs:
            reads = job.reads or ()
            count = sum(n for _, n in reads)
            share = values[offset : offset + count]
            offset += count
            try:
                job.result.set_result(job.run(_Replay(reads, share, self.stats)))
            except Exception as err:  # a job's own bug fails only that job
                job.result.set_exception(err)
            finally:
                if job.priority == Priority.POLL:
                    self.polls_finished += 1
                self._forget(job)

    def _run_piece(self, job: _Job) -> None:
        """One piece of a poll job; after its last, the job gets all its words. A piece that
        fails ends the pieces: the job runs as it is, and its own policy decides (the poller's
        fallback reads)."""
        first = len(job.words) == 0
        if first and not self._starting(job):
            self._dequeue(job)
            return
        try:
            values = merged_read(self._begin(), job.piece)
        except (ExceptionReply, FrameError):
            self._answered_now()  # a refusal or a garbled reply: the unit is there
            self.busy_since = None
            self._dequeue(job)
            self._run_one(job)  # the whole read again, as if it had never gone in pieces
            return
        except BaseException as err:
            self._unanswered(err)
            self.busy_since = None
            self._dequeue(job)
            job.result.set_exception(err)
            self.polls_finished += 1
            self._forget(job)
            return
        self._answered_now()
        self.busy_since = None
        self.poll_pieces += 1
        job.words.extend(values)
        if job.rest:
            return
        try:
            job.result.set_result(job.run(_Replay(job.reads or (), job.words, self.stats)))
        except Exception as err:  # a job's own bug fails only that job
            job.result.set_exception(err)
        finally:
            self.polls_finished += 1
            self._forget(job)

    def _dequeue(self, job: _Job) -> None:
        """A poll job read in pieces leaves the queue before its last piece (or after it: no-op)."""
        job.rest = None
        with self._ready:
            queue = self._queues[job.priority]
            if job in list(queue):
                queue.remove(job)

    def _remember_solo(self, reads: Items) -> None:
        self._solo[reads] = None
        self._solo.move_to_end(reads)
        while len(self._solo) > _SOLO_MEMORY:
            self._solo.popitem(last=False)

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
