"""The bus worker's reopen backoff (issue 11 #1): a failed open and an open whose line fails at
once count alike, so a storm of reconnects cannot happen whatever the failure looks like."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

import pytest
from aurora.bridge.worker import MAX_BACKOFF_S, BusWorker, Priority, reopen_delay
from aurora.dump import DumpBus
from aurora.errors import BusError

RUN_S = 4.0
# 0, 0.25, 0.5, 1, 2, 2 … s between attempts: about 5 in 4 s, never hundreds
MAX_ATTEMPTS = 7


class HangsUp(DumpBus):
    """Opens fine; the peer hangs up at the first transaction (ser2net without its device)."""

    def _values(self, function: int, addresses: Sequence[int]) -> list[int]:
        raise BusError("tcp://pi:2000/: ser2net cannot open its serial device")


def hammer(worker: BusWorker) -> None:
    """Keep jobs coming, as the poller and $modbus clients do, for RUN_S."""
    end = time.monotonic() + RUN_S
    while time.monotonic() < end:
        future = worker.submit(lambda bus: bus.read_registers([745]), Priority.POLL)
        # a failing open is retried inside the job until stop: it may time out here
        with contextlib.suppress(BusError, TimeoutError):
            future.result(max(0.01, end - time.monotonic()))


def test_the_backoff_grows_to_its_cap() -> None:
    assert [0.0, 0.25, 0.5, 1.0, 2.0, 2.0] == [reopen_delay(n) for n in range(6)]
    assert MAX_BACKOFF_S == reopen_delay(10_000)


@pytest.mark.timing  # attempts per time window
@pytest.mark.parametrize("failure", ["open fails", "opens and hangs up"])
def test_a_line_that_keeps_failing_is_reopened_gently(failure: str) -> None:
    opens = []

    def opener() -> DumpBus:
        opens.append(time.monotonic())
        if failure == "open fails":
            raise BusError("Connection refused - tcp://pi:2000/")
        return HangsUp({745: 680})

    worker = BusWorker(opener)
    worker.start()
    try:
        hammer(worker)
    finally:
        worker.stop()
    assert 2 <= len(opens) <= MAX_ATTEMPTS, opens
    assert not worker.line_up


@pytest.mark.timing  # back within the backoff cap
def test_the_line_is_up_only_once_the_unit_answered_and_comes_back_at_once() -> None:
    good = [False]
    events: list[bool] = []

    def opener() -> DumpBus:
        return DumpBus({745: 680}) if good[0] else HangsUp({745: 680})

    worker = BusWorker(opener, on_line_state=lambda up, why: events.append(up))
    worker.start()
    try:
        for _ in range(3):
            with pytest.raises(BusError):
                worker.submit(lambda bus: bus.read_registers([745])).result(10)
        assert not worker.line_up and True not in events  # opened three times, never "up"
        good[0] = True
        started = time.monotonic()
        assert [680] == worker.submit(lambda bus: bus.read_registers([745])).result(10)
        assert time.monotonic() - started <= MAX_BACKOFF_S + 0.5
        assert worker.line_up and events[-1] is True
    finally:
        worker.stop()


def test_a_write_queued_while_the_line_is_down_is_not_made_when_it_returns() -> None:
    made: list[int] = []
    bus = DumpBus({340: 0})
    worker = BusWorker(lambda: bus)
    worker.start()
    try:
        worker.submit(lambda b: None).result(5)
        worker.mark_line_down("the unit stopped answering")
        write: Callable[[DumpBus], None] = lambda b: made.append(1)  # noqa: E731
        with pytest.raises(BusError, match="nothing was written"):
            worker.submit(write, Priority.WRITE, expires_s=10).result(5)
        assert [] == made
    finally:
        worker.stop()
