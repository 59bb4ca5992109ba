"""The read plan (aurora.readplan) on its own: every fallback path with faked answers, no bus
(docs/protocol.md#chunking, docs/protocol.md#fallback)."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Iterable, Mapping

import pytest
from aurora import registers
from aurora.errors import (
    AuroraError,
    BusError,
    BusTimeout,
    FrameError,
    IllegalAddress,
    IllegalFunction,
    UsageError,
)
from aurora.readplan import Chunk, Depth, Failures, ReadPlan, Rules, plan_spans, run, spans_of, without

REGISTERS_ONLY = Rules(depth=Depth.REGISTERS)
POLL = Rules(depth=Depth.REGISTERS, split_silent=False, silent_limit=None, silent_start_ends=True)


class Board:
    """A faked board: answers what it has, refuses a request naming any register it lacks (as the
    ABC does), stays silent for ``silent`` registers, garbles requests naming ``garbled`` ones."""

    def __init__(
        self,
        words: Mapping[int, int],
        *,
        silent: Iterable[int] = (),
        garbled: Iterable[int] = (),
        lost_after: int | None = None,
    ) -> None:
        self.words = dict(words)
        self.silent, self.garbled = set(silent), set(garbled)
        self.lost_after = lost_after
        self.sent: list[Chunk] = []

    def __call__(self, chunk: Chunk) -> list[int]:
        self.sent.append(chunk)
        if self.lost_after is not None and len(self.sent) > self.lost_after:
            raise BusError("the line is gone")
        addresses = chunk.addresses
        function = 3 if chunk.holding else 65 if chunk.uses_ranges else 66
        if self.silent.intersection(addresses):
            raise BusTimeout("no answer")
        if self.garbled.intersection(addresses):
            raise FrameError("bad CRC")
        if any(a not in self.words for a in addresses):
            raise IllegalAddress(function, 2)
        return [self.words[a] for a in addresses]


def read(board: Board, spans: Iterable[tuple[int, int]], rules: Rules | None = None) -> ReadPlan:
    plan = ReadPlan(spans, rules)
    while (request := plan.next()) is not None:
        try:
            values = board(request)
        except AuroraError as err:
            plan.fail(err)
            continue
        plan.answer(values)
    return plan


def words(*spans: tuple[int, int]) -> dict[int, int]:
    return {a: a * 7 % 65536 for s, n in spans for a in range(s, s + n)}


def test_what_the_board_answers_is_one_request_per_chunk() -> None:
    board = Board(words((745, 3), (813, 1)))
    result = read(board, [(745, 3), (813, 1)]).result()
    assert ({745: 5215, 746: 5222, 747: 5229, 813: 5691}, 1) == (result.values, result.transactions)
    assert [((745, 3), (813, 1))] == [c.items for c in board.sent]
    assert not result.failed


def test_without_fallback_the_first_refusal_is_the_answer() -> None:
    board = Board(words((745, 1), (747, 1)))
    plan = read(board, [(745, 3), (2000, 200)], Rules(depth=Depth.NONE))
    with pytest.raises(IllegalAddress):
        plan.result()
    assert 1 == len(board.sent)  # nothing asked after the refusal
    assert plan.ended_by == board.sent[0] == Chunk(((745, 3), (2000, 97)))


def test_items_depth_reads_a_refused_requests_items_and_fails_a_refused_item_whole() -> None:
    board = Board(words((745, 3), (813, 1)))
    result = read(board, [(745, 3), (813, 1), (5000, 3)], Rules(depth=Depth.ITEMS)).result()
    assert {745, 746, 747, 813} == set(result.values)
    assert [(5000, 3)] == [(s, n) for s, n, _ in result.failed.spans()]
    assert 4 == result.transactions  # the chunk, then each of its three items


def test_a_refused_range_is_halved_towards_the_one_register_the_board_lacks() -> None:
    have = words((0, 100))
    del have[37]
    board = Board(have)
    result = read(board, [(0, 100)]).result()
    assert set(have) == set(result.values)
    assert [37] == list(result.failed)
    assert isinstance(result.failed[37], IllegalAddress)
    # Halving: about two reads per level, far fewer than one per register.
    assert result.transactions <= 2 * math.ceil(math.log2(100)) + 1, [str(c) for c in board.sent]


def test_a_range_the_board_lacks_entirely_is_read_register_by_register_after_one_halving() -> None:
    """Both halves refused: mostly absent, so halving again would cost more than it finds."""
    board = Board(words((150, 1)))
    result = read(board, [(100, 100)]).result()
    assert {150: 1050} == result.values
    assert 1 + 2 + 100 == result.transactions
    assert [(100, 50, 66), (151, 49, 66)] == [(s, n, e.function) for s, n, e in result.failed.spans()]  # type: ignore[attr-defined]


def test_single_registers_go_by_fc3_when_the_rules_say_so() -> None:
    board = Board(words((745, 1)))
    read(board, [(745, 1), (746, 1)], Rules(holding_singles=True)).result()
    assert [False, True, True] == [c.holding for c in board.sent]  # the FC 66 chunk, then FC 3 each


def test_one_silent_register_costs_only_itself() -> None:
    """docs/protocol.md#bugs-queries: the original aborted the whole query on one silent register."""
    board = Board(words((745, 3)), silent=[746])
    result = read(board, [(745, 3)]).result()
    assert ({745: 5215, 747: 5229}, [746]) == (result.values, list(result.failed))
    assert isinstance(result.failed[746], BusTimeout)


def test_two_silences_in_a_row_end_the_read_the_line_is_gone() -> None:
    board = Board(words((0, 300)), silent=range(0, 300))
    plan = read(board, [(0, 300)])
    with pytest.raises(BusTimeout):
        plan.result()
    assert 2 == len(board.sent)  # not 300 timeouts, one per register


def test_the_pollers_rules_a_silent_first_chunk_ends_a_later_one_costs_its_registers() -> None:
    silent_unit = Board({}, silent=range(0, 300))
    with pytest.raises(BusTimeout):
        read(silent_unit, [(0, 300)], POLL).result()
    assert 1 == len(silent_unit.sent)  # the alert at once
    board = Board(words((0, 300)), silent=[150])
    result = read(board, [(0, 300)], POLL).result()
    assert [(100, 100)] == [(s, n) for s, n, _ in result.failed.spans()]
    assert 3 == result.transactions and 200 == len(result.values)


def test_a_garbled_request_costs_its_registers_with_fallback_and_ends_the_read_without() -> None:
    board = Board(words((0, 200)), garbled=[120])
    result = read(board, [(0, 200)]).result()
    assert [(100, 100)] == [(s, n) for s, n, _ in result.failed.spans()]
    assert isinstance(result.failed[120], FrameError) and 2 == result.transactions
    with pytest.raises(FrameError):
        read(Board(words((0, 200)), garbled=[120]), [(0, 200)], Rules(depth=Depth.NONE)).result()


@pytest.mark.parametrize("err", [BusError("line lost"), UsageError("no such port")])
def test_a_lost_line_or_a_wrong_port_ends_any_read(err: AuroraError) -> None:
    plan = ReadPlan([(0, 300)], REGISTERS_ONLY)
    plan.next()
    plan.fail(err)
    assert plan.next() is None and plan.done
    with pytest.raises(type(err)):
        plan.result()


def test_a_bug_in_the_driver_ends_the_read_with_it() -> None:
    plan = ReadPlan([(0, 10)])
    plan.next()
    plan.fail(KeyError("bug"))
    with pytest.raises(KeyError):
        plan.result()


def test_a_refused_function_falls_back_like_a_refused_address() -> None:
    plan = ReadPlan([(745, 2), (813, 1)], Rules(holding_singles=True))
    assert plan.next() is not None
    plan.fail(IllegalFunction(65, 1))
    pieces = []
    while (request := plan.next()) is not None:
        pieces.append(request.items)
        plan.answer([1] * request.count)
    assert [((745, 2),), ((813, 1),)] == pieces
    assert {745: 1, 746: 1, 813: 1} == plan.result().values


def test_the_line_lost_midway_keeps_nothing_half_done() -> None:
    board = Board(words((0, 1000)), lost_after=3)
    plan = read(board, [(0, 1000)])
    with pytest.raises(BusError):
        plan.result()
    assert 300 == len(plan.values)  # what came before the loss is still there to report


def test_each_request_gets_one_answer_in_order() -> None:
    plan = ReadPlan([(0, 10)])
    with pytest.raises(RuntimeError):
        plan.answer([0] * 10)
    plan.next()
    with pytest.raises(RuntimeError):
        plan.next()
    plan.answer([0] * 9)  # one word short: a failure of that request, not a crash
    assert isinstance(plan.failed[3], FrameError)


def test_a_reader_with_its_own_fallback_answers_by_address() -> None:
    plan = ReadPlan([(745, 3)])
    plan.next()
    plan.answer({745: 1, 747: 3})
    assert plan.next() is None and {745: 1, 747: 3} == plan.result().values


def test_run_reports_progress_for_the_plans_chunks_only() -> None:
    board = Board(words((0, 250)))
    seen: list[tuple[int, int]] = []
    run(
        ReadPlan([(0, 300)]), board, lambda plan, chunk: seen.append((plan.chunks_started, plan.chunks_total))
    )
    assert [(1, 3), (2, 3), (3, 3)] == seen


def test_requests_never_pass_the_boards_limits_or_a_breakpoint() -> None:
    chunks = plan_spans([(12000, 600), *((a, 1) for a in range(20000, 20400, 2))])
    assert all(c.count <= 100 and len(c.items) <= 63 for c in chunks)
    for chunk in chunks:
        sides = {sum(1 for b in registers.BREAKPOINTS if a >= b) for a in chunk.addresses}
        assert 1 == len(sides), str(chunk)
    assert 600 + 200 == sum(c.count for c in chunks)


def test_failures_are_spans_read_as_a_mapping() -> None:
    refused = IllegalAddress(65, 2)
    failures = Failures([(10, 5, refused), (15, 5, IllegalAddress(65, 2)), (30, 1, BusTimeout("x"))])
    assert [(10, 10), (30, 1)] == [(s, n) for s, n, _ in failures.spans()]  # equal errors joined
    assert (11, 14 in failures, 20 in failures, failures[30].__class__) == (
        len(failures),
        True,
        False,
        BusTimeout,
    )
    assert [*range(10, 20), 30] == list(failures)
    with pytest.raises(KeyError):
        failures[9]


def test_without_and_spans_of() -> None:
    assert [(1, 2), (4, 5), (20, 2), (23, 2)] == without([(0, 10), (20, 5)], [0, 3, 9, 22, 100])
    assert [(1, 3), (7, 1)] == spans_of([3, 1, 2, 7, 2])


def test_an_all_read_holds_spans_not_an_entry_per_register() -> None:
    """Issue 11: the plan's memory follows what is read (3065 words), not what was asked (65,536)."""
    have = {a: 1 for start, end in registers.REGISTER_RANGES for a in range(start, end + 1)}
    board = Board(have)
    tracemalloc.start()
    try:
        plan = ReadPlan([(0, 0x10000)])
        while (request := plan.next()) is not None:
            try:
                plan.answer(board(request))
            except AuroraError as err:
                plan.fail(err)
            board.sent.clear()
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = plan.result()
    assert len(have) == len(result.values) and 0x10000 - len(have) == len(result.failed)
    assert len(list(result.failed.spans())) < 300
    assert peak < 3 * 2**20, f"{peak / 2**20:.1f} MB"
