"""The pass-through as a driver of the read plan (aurora.readplan): an `all` query's ~67,000
fallback reads go several to a job without holding the line from anyone else, and identical
chunks of two clients' queries share their transaction and both answers stay whole. A real
BusWorker over the demo unit's DumpBus, messages as paho hands them over."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from aurora import rpc
from aurora.bridge.passthrough import FALLBACK_JOB_S
from aurora.bridge.worker import Priority

from tests.unit.test_rpc_passthrough import BASE, REGS, Rig, make_rig, message

ALL_S = 120.0  # an `all` query on a loaded machine; it takes some 3 s alone


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from make_rig()


def ask_all(rig: Rig, client: str) -> None:
    rig.pt.handle(message(f"{BASE}/request/web/{client}", {"id": client, "op": "query", "query": "all"}))


def answer(rig: Rig, client: str) -> rpc.QueryAnswer:
    deadline = time.monotonic() + ALL_S
    while not rig.sent.on(f"{BASE}/response/web/{client}") and time.monotonic() < deadline:
        time.sleep(0.05)
    (reply,) = rig.sent.on(f"{BASE}/response/web/{client}")
    body = reply.json()
    assert body["ok"], body
    return rpc.query_answer(body)


def test_a_write_waits_for_one_fallback_job_not_for_the_whole_query(rig: Rig) -> None:
    ask_all(rig, "web-1")
    deadline = time.monotonic() + ALL_S
    while rig.pt.counters["transactions"] < 2000 and time.monotonic() < deadline:
        time.sleep(0.01)  # deep in the register-by-register fallback
    waits = []
    for _ in range(5):
        asked = time.monotonic()
        started = rig.worker.submit(lambda bus: time.monotonic(), Priority.WRITE).result(ALL_S)
        waits.append(started - asked)
    done = answer(rig, "web-1")
    assert 0x10000 == len(done.values) + len(done.failed)
    # One job of fallback reads is FALLBACK_JOB_S of line time; the whole query is seconds.
    assert max(waits) < FALLBACK_JOB_S + 0.5, waits
    assert rig.pt.counters["transactions"] > 60000  # the fallback did go register by register


def test_two_clients_all_queries_share_chunks_and_both_get_every_word(rig: Rig) -> None:
    ask_all(rig, "web-1")
    ask_all(rig, "web-2")
    first, second = answer(rig, "web-1"), answer(rig, "web-2")
    present = {a: w for a, w in REGS.items() if a <= 0xFFFF}
    assert present == first.values == second.values
    assert list(first.failed) == list(second.failed) == sorted(set(range(0x10000)) - set(present))
    assert {} == rig.pt.inflight()
