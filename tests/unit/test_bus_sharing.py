"""The bus worker shares the line fairly and merges distinct reads (issue 15), against a DumpBus.

Counts and orders of transactions are asserted, not timings: these hold on a loaded machine.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from aurora.bridge.app import Bridge, BridgeConfig
from aurora.bridge.effects import WriteEffects
from aurora.bridge.poller import read_words
from aurora.bridge.schedule import PollSchedule
from aurora.bridge.spec import Tier
from aurora.bridge.worker import POLL_HOLD_TRANSACTIONS, POLL_PIECE_REGISTERS, BusWorker, Priority
from aurora.bus import Bus
from aurora.dump import DumpBus
from aurora.errors import IllegalAddress
from aurora.mqtt import MqttSettings
from aurora.query import Chunk

from tests.support import wait_for

TRANSACTION_S = 0.004


class LineBus(DumpBus):
    """A DumpBus whose transactions take a little time and are recorded in order."""

    def __init__(self, registers: Mapping[int, int]) -> None:
        super().__init__(registers)
        self.calls: list[tuple[int, ...]] = []
        self.lock = threading.Lock()

    def _values(self, function: int, addresses: Sequence[int]) -> list[int]:
        with self.lock:
            self.calls.append(tuple(addresses))
        time.sleep(TRANSACTION_S)
        return super()._values(function, addresses)


WORDS = {a: (a * 7) % 65536 for a in [*range(0, 2000), *range(12000, 12200)] if a != 1500}


@pytest.fixture
def line() -> Any:
    bus = LineBus(WORDS)
    worker = BusWorker(lambda: bus)
    worker.start()
    yield worker, bus
    worker.stop()


def _hold(worker: BusWorker) -> threading.Event:
    """Keep the worker busy until the returned event is set, so that jobs pile up behind it."""
    release = threading.Event()
    running = threading.Event()

    def block(bus: Bus) -> None:
        running.set()
        release.wait(10)

    worker.submit(block, Priority.WRITE)
    assert running.wait(10)
    return release


def _read(worker: BusWorker, items: tuple[tuple[int, int], ...]) -> Future[list[int]]:
    chunk = Chunk(items)
    return worker.submit(chunk.read, Priority.INTERACTIVE, key=("read", items), reads=items)


def test_distinct_reads_queued_together_share_transactions_and_each_gets_exactly_its_words(
    line: Any,
) -> None:
    worker, bus = line
    release = _hold(worker)
    asks = [((100 + 3 * n, 1),) for n in range(60)]  # 60 single registers (FC 66)
    asks += [((400 + 10 * n, 3), (900 + n, 1)) for n in range(20)]  # 20 reads of ranges (FC 65)
    futures = [_read(worker, items) for items in asks]
    release.set()
    answers = [f.result(10) for f in futures]
    for items, answer in zip(asks, answers, strict=True):
        assert answer == [WORDS[a] for a in Chunk(items).addresses]
    reads = list(bus.calls)
    # 60 + 80 registers in 100 items: two transactions of ≤100 registers, past 63 items as FC 66
    assert len(reads) == 2, reads
    assert all(len(c) <= 100 for c in reads)
    assert worker.merged_jobs == 80 and worker.merged_transactions == len(reads)


class FunctionBus(LineBus):
    """A LineBus that also records each transaction's function code."""

    def __init__(self, registers: Mapping[int, int]) -> None:
        super().__init__(registers)
        self.functions: list[int] = []

    def _values(self, function: int, addresses: Sequence[int]) -> list[int]:
        self.functions.append(function)
        return super()._values(function, addresses)


def test_a_merge_takes_the_shorter_request_and_is_limited_by_registers_only() -> None:
    """One read of a range among single registers used to make the merge FC 65, at most 63 items
    (a third transaction at 200 clients); now 100 registers go in one transaction, each read
    oldest first, in the encoding with the fewer bytes."""
    bus = FunctionBus(WORDS)
    worker = BusWorker(lambda: bus)
    worker.start()
    try:
        release = _hold(worker)
        asks = [((100 + 3 * n, 1),) for n in range(92)] + [((710, 8),)]  # 93 items, 100 registers
        futures = [_read(worker, items) for items in asks]
        release.set()
        for items, future in zip(asks, futures, strict=True):
            assert future.result(10) == [WORDS[a] for a in Chunk(items).addresses]
        assert [len(c) for c in bus.calls] == [100]
        assert bus.functions[0] == 66  # 93 items: no FC 65 request holds them
        bus.calls.clear()
        bus.functions.clear()
        release = _hold(worker)
        wide = [_read(worker, ((400 + 20 * n, 10),)) for n in range(5)]  # 5 items, 50 registers
        release.set()
        assert [f.result(10) for f in wide] == [
            [WORDS[a] for a in range(400 + 20 * n, 410 + 20 * n)] for n in range(5)
        ]
        assert bus.functions == [65]  # 5 ranges: 20 bytes of request instead of 100
    finally:
        worker.stop()


def test_a_poll_read_alone_also_goes_in_the_shorter_request_and_in_pieces_unchanged() -> None:
    """Issue 15 (start to ready): the poll's and detection's reads take the merge's encoding too:
    scattered registers with a short run among them as FC 66 (2 bytes a register instead of 4 an
    item), a few long runs as FC 65; the words are the same."""
    bus = FunctionBus(WORDS)
    worker = BusWorker(lambda: bus)
    worker.start()
    try:
        scattered = [699, 740, 742, 900, 1109, 1110, 1111, 1134]  # 6 items, 8 registers
        report = read_words(worker, scattered)
        assert report.complete and {a: WORDS[a] for a in scattered} == dict(report.words)
        assert [66] == bus.functions and [tuple(scattered)] == bus.calls
        bus.functions.clear()
        runs = [*range(1146, 1158), *range(1164, 1166)]  # 2 items, 14 registers
        assert {a: WORDS[a] for a in runs} == dict(read_words(worker, runs).words)
        assert [65] == bus.functions
        # Cut into pieces while requests wait, the poll's words are still exactly its own.
        # FC 66, two pieces
        wide = [*scattered, *range(1200, 1200 + 3 * POLL_PIECE_REGISTERS, 3)]
        release = _hold(worker)
        asked = [_read(worker, ((5 + 2 * n, 1),)) for n in range(3)]
        done: Future[dict[int, int]] = Future()
        threading.Thread(target=lambda: done.set_result(dict(read_words(worker, wide).words))).start()
        wait_for(lambda: worker.pending() >= 2, 10, "the poll queued behind the requests")
        release.set()
        assert {a: WORDS[a] for a in wide} == done.result(10)
        assert [[WORDS[5 + 2 * n]] for n in range(3)] == [f.result(10) for f in asked]
        assert worker.poll_pieces >= 2
    finally:
        worker.stop()


def _blocker(worker: BusWorker, owner: str) -> tuple[threading.Event, threading.Event]:
    """An interactive request that holds the line until released: (running, release)."""
    running, release = threading.Event(), threading.Event()

    def block(bus: Bus) -> None:
        running.set()
        release.wait(10)

    worker.submit(block, Priority.INTERACTIVE, owner=owner)
    return running, release


@pytest.mark.parametrize(("older", "younger", "transactions"), [(70, 40, [70, 40]), (50, 40, [90])])
def test_a_merge_takes_a_younger_cohort_only_whole(
    line: Any, older: int, younger: int, transactions: list[int]
) -> None:
    """Reads queued while one request transaction is on the line are a cohort (the clients it
    answered ask again together): a merge takes the oldest cohort and a younger one only if all
    of it fits. Cut in two, the rest of a cohort would wait a whole transaction longer than the
    clients it came with (at 200 clients that was p99's tail, issue 15)."""
    worker, bus = line
    first_running, first_release = _blocker(worker, "a")
    assert first_running.wait(10)
    second_running, second_release = _blocker(worker, "b")  # the head of the next turn
    old = [_read(worker, ((100 + 3 * n, 1),)) for n in range(older)]  # while the first is on the line
    first_release.set()
    assert second_running.wait(10)
    new = [_read(worker, ((1000 + 3 * n, 1),)) for n in range(younger)]  # after the first ended
    second_release.set()
    assert [f.result(10) for f in old] == [[WORDS[100 + 3 * n]] for n in range(older)]
    assert [f.result(10) for f in new] == [[WORDS[1000 + 3 * n]] for n in range(younger)]
    assert [len(c) for c in bus.calls] == transactions
    assert bus.calls[0][:older] == tuple(100 + 3 * n for n in range(older))  # the oldest first


def test_reads_queued_together_fill_whole_transactions_oldest_first(line: Any) -> None:
    """One cohort larger than a transaction goes in full ones, the oldest reads first."""
    worker, bus = line
    release = _hold(worker)
    asks = [((100 + 3 * n, 1),) for n in range(150)]
    futures = [_read(worker, items) for items in asks]
    release.set()
    for items, future in zip(asks, futures, strict=True):
        assert future.result(10) == [WORDS[items[0][0]]]
    assert [len(c) for c in bus.calls] == [100, 50]
    assert bus.calls[0] == tuple(100 + 3 * n for n in range(100))


def test_a_request_waits_for_one_poll_transaction_and_the_poll_for_a_few_requests(line: Any) -> None:
    """Under a flood a poll goes in pieces, and a piece waits while a queued request has already
    waited through the last one: each request's wait then holds one poll transaction besides the
    one on the line when it came. The poll waits for at most POLL_HOLD_TRANSACTIONS request
    transactions: here one account's 100-register reads, which cannot merge, keep coming."""
    worker, bus = line
    release = _hold(worker)
    items = ((0, 100),)
    poll = worker.submit(Chunk(items).read, Priority.POLL, key=("read", items), reads=items)
    greedy = [
        worker.submit(Chunk(((1000, 100),)).read, Priority.INTERACTIVE, reads=((1000, 100),), owner="evil")
        for _ in range(12)
    ]
    release.set()
    assert poll.result(10) == list(Chunk(items).read(DumpBus(WORDS)))
    for future in greedy:
        assert future.result(10) == [WORDS[a] for a in range(1000, 1100)]
    kinds = ["poll" if c[0] < 1000 else "request" for c in bus.calls]
    assert kinds.count("poll") == 100 // POLL_PIECE_REGISTERS
    polls_at = [i for i, k in enumerate(kinds) if k == "poll"]
    between = [b - a - 1 for a, b in itertools.pairwise(polls_at)]
    # The first piece goes at once (no request had waited through one), then each after
    # POLL_HOLD_TRANSACTIONS of the account's reads (which had all waited through the last one)
    # while they last.
    assert polls_at[0] == 1, kinds
    assert between[:3] == [POLL_HOLD_TRANSACTIONS] * 3 and max(between) <= POLL_HOLD_TRANSACTIONS, kinds


def test_clients_reading_back_to_back_keep_their_cohorts_and_wait_alike(line: Any) -> None:
    """150 clients, each asking again as soon as it has its answer (from the done-callback,
    so the order is exact), 160 registers with the 32-bit ones: the cohorts keep their
    transactions, every client comes round once per cycle of the same transactions, and the
    poll reads once per cycle, so no client waits through more transactions than any other."""
    worker, bus = line
    release = _hold(worker)
    waits: list[int] = []  # transactions started between a client's request and its answer
    stop = threading.Event()
    lock = threading.Lock()

    def ask(n: int) -> None:
        items = ((100 + 3 * n, 2),) if n % 15 == 0 else ((100 + 3 * n, 1),)
        asked = worker.started

        def done(future: Future[list[int]]) -> None:
            assert future.result() == [WORDS[a] for a in Chunk(items).addresses]
            with lock:
                waits.append(worker.started - asked)
            if not stop.is_set():
                ask(n)

        chunk = Chunk(items)  # no key: the answered job is still in flight when its callback asks again
        worker.submit(chunk.read, Priority.INTERACTIVE, reads=items).add_done_callback(done)

    for n in range(150):
        ask(n)
    polls = 0
    release.set()
    while polls < 3:  # three polls of 100 registers while the clients keep asking
        assert read_words(worker, range(0, 100)).complete
        polls += 1
    stop.set()
    wait_for(lambda: worker.pending() == 0, 10, "the clients' last reads")
    steady = waits[300:-150]  # after the first cycles, before the last answers
    assert steady and max(steady) - min(steady) <= 1, sorted(set(steady))
    assert all(len(c) <= 100 for c in bus.calls)


def test_accounts_take_turns_however_many_jobs_one_has_queued(line: Any) -> None:
    """A hostile account's 40 queued 100-register reads cost another account's read one turn."""
    worker, bus = line
    release = _hold(worker)
    greedy = [
        worker.submit(Chunk(((0, 100),)).read, Priority.INTERACTIVE, reads=((0, 100),), owner="evil")
        for _ in range(40)
    ]
    mine = worker.submit(Chunk(((1000, 1),)).read, Priority.INTERACTIVE, reads=((1000, 1),), owner="web")
    release.set()
    assert mine.result(10) == [WORDS[1000]]
    for future in greedy:
        assert future.result(10) == [WORDS[a] for a in range(100)]
    assert bus.calls.index((1000,)) <= 1  # behind at most the one of the greedy account's
    assert len(bus.calls) == 41


def test_a_poll_job_goes_in_pieces_while_requests_wait_and_whole_once_none_do(line: Any) -> None:
    """A whole 100-register poll transaction would hold up every waiting request by 0.24 s at
    19200 baud: while requests wait (or were just served) the poll takes POLL_PIECE_REGISTERS a
    turn, and what is left goes in one once nobody waits. The poll job gets all its words."""
    worker, bus = line
    release = _hold(worker)
    items = ((0, 60), (100, 40))
    poll = worker.submit(Chunk(items).read, Priority.POLL, key=("read", items), reads=items)
    asks = [((1000 + 3 * n, 1),) for n in range(5)]
    futures = [_read(worker, ask) for ask in asks]
    release.set()
    assert poll.result(10) == [WORDS[a] for a in Chunk(items).addresses]
    assert [f.result(10) for f in futures] == [[WORDS[1000 + 3 * n]] for n in range(5)]
    assert [len(c) for c in bus.calls] == [5, POLL_PIECE_REGISTERS, 100 - POLL_PIECE_REGISTERS]
    assert bus.calls[1] == tuple(range(POLL_PIECE_REGISTERS))  # from its first register on
    assert worker.polls_finished == 1 and worker.poll_pieces == 2


def test_under_a_flood_tiers_due_together_are_read_one_at_a_time_fastest_first(line: Any) -> None:
    """In pieces under a flood, one pass of every tier would keep the fast tier's values waiting
    for all the slow tier's registers (at 200 clients its gap reached 10 s, 2 x its interval)."""
    schedule = PollSchedule({Tier.SLOW: 15.0, Tier.FAST: 5.0, Tier.MEDIUM: 10.0})
    every = (Tier.SLOW, Tier.MEDIUM, Tier.FAST)
    assert [every] == schedule.passes(every, flooded=False)
    assert [(Tier.FAST,), (Tier.MEDIUM,), (Tier.SLOW,)] == schedule.passes(every, flooded=True)
    assert [(Tier.SLOW,)] == schedule.passes((Tier.SLOW,), flooded=True)
    worker, _ = line
    assert not worker.flooded()
    release = _hold(worker)
    asked = _read(worker, ((100, 1),))
    holding = worker.submit(lambda b: b.read_holding(10, 1), Priority.INTERACTIVE)
    assert worker.flooded()
    release.set()
    assert [WORDS[100]] == asked.result(10) and [WORDS[10]] == holding.result(10)
    assert not worker.flooded()
    release = _hold(worker)
    holding = worker.submit(lambda b: b.read_holding(10, 1), Priority.INTERACTIVE)
    assert not worker.flooded()  # an FC 3 read does not cut the poll either
    release.set()
    assert [WORDS[10]] == holding.result(10)


def test_a_request_that_shares_no_transaction_does_not_cut_the_poll(line: Any) -> None:
    """A virtual port's FC 3 reads get the line for their own transaction either way: cutting
    the poll into pieces for them cost that scenario 19 % of its requests a second and doubled
    its p99 (tests/perf/bench_vports.py). The poll goes whole between them."""
    worker, _ = line
    release = _hold(worker)
    items = ((0, 60), (100, 40))
    poll = worker.submit(Chunk(items).read, Priority.POLL, key=("read", items), reads=items)
    holdings = [
        worker.submit(lambda b, a=a: b.read_holding(a, 1), Priority.INTERACTIVE, key=("holding", a))
        for a in (1000, 1003, 1006)
    ]
    release.set()
    assert poll.result(10) == [WORDS[a] for a in Chunk(items).addresses]
    assert [f.result(10) for f in holdings] == [[WORDS[a]] for a in (1000, 1003, 1006)]
    assert worker.poll_pieces == 0 and worker.polls_finished == 1


def test_a_poll_piece_the_board_refuses_leaves_the_poll_its_own_fallback(line: Any) -> None:
    """The unit has no 1500: the piece holding it is refused, and the poll job runs as it is
    (one transaction, refused as before: the poller's read plan takes it apart)."""
    worker, _ = line
    release = _hold(worker)
    items = ((1490, 20),)
    poll = worker.submit(Chunk(items).read, Priority.POLL, key=("read", items), reads=items)
    mine = _read(worker, ((1000, 1),))
    release.set()
    with pytest.raises(IllegalAddress):
        poll.result(10)
    assert mine.result(10) == [WORDS[1000]]
    assert worker.polls_finished == 1
    assert worker.pending() == 0


def test_a_merge_never_crosses_a_breakpoint_nor_takes_a_write_or_fc3(line: Any) -> None:
    worker, bus = line
    release = _hold(worker)
    below = _read(worker, ((12098, 2),))
    above = _read(worker, ((12100, 2),))
    holding = worker.submit(lambda b: b.read_holding(10, 2), Priority.INTERACTIVE)
    plain = _read(worker, ((10, 2),))
    release.set()
    assert below.result(10) == [WORDS[12098], WORDS[12099]]
    assert above.result(10) == [WORDS[12100], WORDS[12101]]
    assert holding.result(10) == plain.result(10) == [WORDS[10], WORDS[11]]
    assert not any(12099 in c and 12100 in c for c in bus.calls)


def test_a_refused_register_costs_only_its_own_client_its_answer(line: Any) -> None:
    worker, bus = line
    release = _hold(worker)
    good = [_read(worker, ((200 + n, 1),)) for n in range(10)]
    bad = _read(worker, ((1500, 1),))  # the unit has no 1500
    release.set()
    assert [f.result(10) for f in good] == [[WORDS[200 + n]] for n in range(10)]
    with pytest.raises(IllegalAddress):
        bad.result(10)
    assert worker.merge_fallbacks == 1
    # Asked again with others, the refused read runs alone: the others stay merged.
    bus.calls.clear()
    release = _hold(worker)
    again = [_read(worker, ((300 + n, 1),)) for n in range(10)]
    bad = _read(worker, ((1500, 1),))
    release.set()
    assert [f.result(10) for f in again] == [[WORDS[300 + n]] for n in range(10)]
    with pytest.raises(IllegalAddress):
        bad.result(10)
    assert worker.merge_fallbacks == 1
    assert sorted(len(c) for c in bus.calls) == [1, 10]


@pytest.mark.timing  # gaps between polls, in time
def test_a_flood_of_requests_never_stops_polling_and_a_write_waits_for_one_transaction(line: Any) -> None:
    """50 clients, distinct reads back to back: the poll's transactions (pieces of its chunks
    while the clients wait) still take every other turn, and a write goes next whatever is
    queued."""
    worker, bus = line
    stop = threading.Event()
    answered = [0] * 50

    def client(n: int) -> None:
        items = ((1000 + 19 * n, 1),)
        while not stop.is_set():
            assert _read(worker, items).result(10) == [WORDS[1000 + 19 * n]]
            answered[n] += 1

    clients = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    for thread in clients:
        thread.start()
    try:
        polls = 0
        deadline = time.monotonic() + 60
        while polls < 5 and time.monotonic() < deadline:
            report = read_words(worker, range(0, 700))  # seven chunks, one transaction each
            assert report.complete
            polls += 1
        for n in range(5):  # one after the other, as a user's /set commands come
            worker.submit(lambda b, n=n: b.write_register(5, n), Priority.WRITE).result(10)
    finally:
        stop.set()
        for thread in clients:
            thread.join(10)
    assert polls == 5
    assert min(answered) > 0  # every client was served meanwhile
    poll_at = [i for i, c in enumerate(bus.calls) if max(c) < 700]
    # While the clients wait, the poll goes in pieces between their reads (a whole 100-register
    # poll transaction would hold up each of them by 0.24 s at 19200 baud), never more than one
    # poll transaction in a row while the clients have reads waiting.
    pieces = [len(bus.calls[i]) for i in poll_at]
    assert worker.poll_pieces >= len(pieces) // 2 and max(pieces) <= 100
    assert statistics.median(pieces) <= POLL_PIECE_REGISTERS, pieces
    # Between two transactions of a poll, one merged read of the clients (the poller queues its
    # next chunk while that read is on the line; on a loaded machine its thread may miss a few
    # turns now and then, so the bound is on the typical gap and a generous worst one): before
    # issue 15 the flood ran first and the poll waited for all of it (gaps of 50 and more).
    gaps = [b - a - 1 for a, b in itertools.pairwise(poll_at)]
    assert max(gaps) <= 10 and statistics.median(gaps) <= 1 and sum(gaps) <= 2 * len(gaps), gaps
    assert worker.most_transactions_waited <= 1
    assert worker.merged_transactions > 0


# ---------------------------------------------------------------- the bridge's schedule


def _runtime_bridge(bus: Bus, tmp: Path) -> Any:
    from tests.unit.test_bridge_runtime import FakePublisher, FakeUnit

    config = BridgeConfig(
        port="unused",
        mqtt=MqttSettings(host="127.0.0.1", port=1, tls=False),
        status_file=str(tmp / "status"),
        home_assistant=False,
    )
    bridge = Bridge(
        config,
        opener=lambda: bus,
        detect=lambda read, device_name: FakeUnit(),
    )
    bridge.shared.unit = FakeUnit()
    bridge.shared.root = "homie/aurora-42"
    bridge.shared.publisher = FakePublisher()  # type: ignore[assignment]
    bridge.worker.start()
    return bridge


def test_the_first_poll_reads_while_the_retained_topics_are_scanned(tmp_path: Path) -> None:
    """Start to ready: the scan's quiet wait and the first poll overlap (issue 15); the values
    are published only after the description, as Homie wants."""
    bus = LineBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _runtime_bridge(bus, tmp_path)
    pub = bridge.shared.publisher
    during: list[int] = []

    def scan(filters: list[str], stop: Any = None, **_: Any) -> dict[str, bytes]:
        # The scan waits for quiet on the broker; meanwhile the poll reads (it used to start
        # only once the scan had returned: then this wait never ends).
        wait_for(lambda: len(bus.calls) >= 1, 10, "a poll read during the scan")
        during.append(len(bus.calls))
        return {}

    pub.scan_retained = scan
    plain = pub.retain
    pub.retain = lambda topic, payload, force=False, **_: plain(topic, payload, force=force)
    pub.owned = set
    pub.route = lambda *a: None
    try:
        first = bridge.polling.start_first()
        bridge._publish_tree(first)
    finally:
        bridge.shared.stop.set()
        bridge.worker.stop()
    assert during and during[0] >= 1
    topics = [t for t, _ in pub.messages]
    assert topics.index("homie/aurora-42/abc/temperature") > topics.index("homie/aurora-42/$homie")
    assert pub.state == "ready"
    assert bridge.stats.good_cycles == 1


def test_the_first_poll_does_not_read_again_what_detection_just_read(tmp_path: Path) -> None:
    """Start to ready (issue 15): the registers detection read (its presence checks read most
    sensors) count as the first poll's; only the rest goes on the line, and every value is
    published at ready as before."""
    bus = LineBus({2: 1, 745: 680, 746: 700, 401: 1200})
    bridge = _runtime_bridge(bus, tmp_path)
    unit = bridge.shared.unit

    def detect(read: Any, device_name: str) -> Any:
        read([(745, 2)])
        read([(2, 1)])
        return unit

    bridge._detect_fn = detect
    pub = bridge.shared.publisher
    pub.scan_retained = lambda *a, **k: {}
    plain = pub.retain
    pub.retain = lambda topic, payload, force=False, **_: plain(topic, payload, force=force)
    pub.owned = set
    pub.route = lambda *a: None
    try:
        assert bridge._detect_unit() is unit
        bus.calls.clear()
        first = bridge.polling.start_first(bridge._detected)
        bridge._publish_tree(first)
    finally:
        bridge.shared.stop.set()
        bridge.worker.stop()
    assert bus.calls == [(401,)]  # 745, 746 and 2 came with detection
    assert pub.state == "ready"
    retained = dict(pub.messages)
    assert retained["homie/aurora-42/abc/temperature"] == "680"
    assert retained["homie/aurora-42/dhw/set-point"] == "120"
    assert bridge.stats.good_cycles == 1


@pytest.mark.parametrize("described", [True, False])
def test_the_first_poll_publishes_a_segment_while_the_next_is_read_once_the_tree_is_out(
    tmp_path: Path, described: bool
) -> None:
    """Start to ready (issue 15): the first poll's words of one breakpoint segment go out while
    the next segment is on the line, so less is left to send after the last read, and the line
    does not wait for that publishing; never before the description (Homie: the values come
    after it), and the report holds all of them."""
    from tests.unit.test_bridge_runtime import FakeUnit

    class TwoSegments(FakeUnit):
        def registers(self, tier: Tier) -> frozenset[int]:
            return frozenset({745, 31007}) if tier == Tier.FAST else frozenset()

        def values(self, words: Mapping[int, int]) -> dict[str, str]:
            names = {745: "abc/temperature", 31007: "abc/other"}
            return {names[a]: str(w) for a, w in words.items() if a in names}

    publishing = threading.Event()  # the first segment's values are being published
    published = threading.Event()  # and are out
    on_the_line = threading.Event()  # the second segment's read
    read_meanwhile: list[bool] = []  # the second segment was asked for while they went out

    class Line(LineBus):
        def _values(self, function: int, addresses: Sequence[int]) -> list[int]:
            if 31007 in addresses:
                if described:  # the publishing starts once this read is asked for
                    publishing.wait(5)
                read_meanwhile.append(publishing.is_set() and not published.is_set())
                on_the_line.set()
            return super()._values(function, addresses)

    bus = Line({745: 680, 31007: 5})
    bridge = _runtime_bridge(bus, tmp_path)
    bridge.shared.unit = TwoSegments()
    pub = bridge.shared.publisher
    sent = pub.retain_many

    def slow_retain_many(items: Any, force: bool = False) -> int:
        items = list(items)
        if not publishing.is_set():
            publishing.set()
            on_the_line.wait(5)  # a publishing that lasts until the next segment is read
        count = int(sent(items, force=force))
        published.set()
        return count

    pub.retain_many = slow_retain_many
    tree_out = threading.Event()
    if described:
        tree_out.set()
    try:
        future, _ = bridge.polling.start_first(described=tree_out)
        report = future.result(10)
    finally:
        bridge.shared.stop.set()
        bridge.worker.stop()
    assert {745: 680, 31007: 5} == dict(report.words) and report.complete
    assert [described] == read_meanwhile
    # once the first poll's result is in, the values it published are out
    assert described == (("homie/aurora-42/abc/temperature", "680") in pub.messages)
    assert 2 == report.transactions


def test_a_raw_write_rereads_only_what_it_affects_and_leaves_the_schedule(tmp_path: Path) -> None:
    """12619 (the heating set point, write-only) shows at 745: a raw write of it re-reads 745,
    not every tier (it used to make all three due at once)."""
    from aurora.bridge.components import Components
    from aurora.bridge.device import Unit

    bus = LineBus({2: 1, 745: 680, 746: 700, 401: 1200, 12619: 0})
    bridge = _runtime_bridge(bus, tmp_path)
    real = Unit.build(Components(serial="1", thermostat=True, thermostat_version=3.0))
    bridge.schedule.effects = WriteEffects(real.properties())
    try:
        assert bridge.polling.poll(list(Tier), time.monotonic())
        for tier in Tier:
            bridge.schedule.done([tier], time.monotonic())
        due = dict(bridge.schedule.next_due)
        bridge.polling.start()
        bus.calls.clear()
        bus.registers[745] = 690  # what the unit shows once 12619 was written
        bridge.polling.absorb_raw_write({12619: 690})
        wait_for(lambda: bridge.stats.rereads == 1, 10, "the re-read")
        assert bridge.cache.lookup(745)[0] == 690
        assert bus.calls == [(745,)]
        assert bridge.schedule.next_due == due
        assert bridge.stats.cycles == 1
        bridge.polling.absorb_raw_write({745: 1})  # a register that shows only itself: nothing to read
        time.sleep(0.2)
        assert bus.calls == [(745,)]
    finally:
        bridge.shared.stop.set()
        bridge.schedule.wake.set()
        bridge.worker.stop()
