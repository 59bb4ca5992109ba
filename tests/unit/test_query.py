"""The query grammar and request packing (docs/protocol.md#chunking), with the original's bugs fixed
(docs/protocol.md#bugs-queries)."""

from __future__ import annotations

import math

import pytest
from aurora import registers
from aurora.dump import DumpBus
from aurora.errors import BusTimeout, IllegalAddress, MissingRegisters, UsageError
from aurora.query import Chunk, continued_spans, parse_query, plan_chunks, read_query, remote_timeout_s


def chunks_of(text: str) -> list[list[tuple[int, int]]]:
    return [list(c.items) for c in plan_chunks(parse_query(text).addresses)]


def test_a_range_is_one_fc65_request() -> None:
    """`aurora_fetch PORT 745-747` sends one FC 65 with one pair (docs/protocol.md#fc65)."""
    assert chunks_of("745-747") == [[(745, 3)]]
    assert plan_chunks(parse_query("745..747").addresses)[0].uses_ranges


def test_single_addresses_are_one_fc66_request() -> None:
    """`813` alone goes through FC 66 (docs/protocol.md#fc65)."""
    (chunk,) = plan_chunks(parse_query("813,2").addresses)
    assert (list(chunk.items), chunk.uses_ranges) == ([(2, 1), (813, 1)], False)


def test_the_spec_mixed_example_is_sorted_merged_and_split_at_the_breakpoint() -> None:
    """docs/protocol.md#chunking example; unlike the original, 12100.. goes into its own request
    (docs/protocol.md#bugs-queries)."""
    assert chunks_of("5,745..747,3,4,12095,12098-12102") == [
        [(3, 3), (745, 3), (12095, 1), (12098, 2)],
        [(12100, 3)],
    ]


def test_no_request_holds_more_than_100_registers() -> None:
    """The original sent 101 (`0-200` → 0..100, 101..200) and unbounded chunks after that
    (docs/protocol.md#bugs-queries)."""
    assert chunks_of("0-200") == [[(0, 100)], [(100, 100)], [(200, 1)]]
    assert all(c.count <= 100 for c in plan_chunks(parse_query("0-100,200,202,204,206,208").addresses))


def test_valid_needs_the_fewest_full_requests() -> None:
    """3065 registers of REGISTER_RANGES in ceil(n/100) requests per breakpoint segment (31 + splits)."""
    addresses = parse_query("valid").addresses
    assert len(addresses) == 3065
    segments = [
        sum(1 for a in addresses if a < 12100),
        sum(1 for a in addresses if 12100 <= a < 12500),
        sum(1 for a in addresses if a >= 12500),
    ]
    chunks = plan_chunks(addresses)
    assert sum(math.ceil(n / 100) for n in segments) == len(chunks)
    assert all(1 <= c.count <= 100 for c in chunks)
    assert sorted(addresses) == [a for c in chunks for a in c.addresses]


def test_known_covers_every_named_register() -> None:
    """`known` adds every REGISTER_NAMES key (476 with the ignored continuations) to the list."""
    assert len(parse_query("known,0x7000").addresses) == 477
    assert parse_query("known").implicit


def test_valid_and_all_combine_with_other_items() -> None:
    """The original silently dropped the other items (docs/protocol.md#bugs-queries)."""
    assert 40000 in parse_query("valid,40000").addresses
    assert len(parse_query("all,745").addresses) == 65536


@pytest.mark.parametrize("bad", ["abc", "745-", "0x10000", "747-745", "", " , ", "70000", "1-2-3"])
def test_malformed_items_are_usage_errors_not_register_0(bad: str) -> None:
    """`abc` read register 0 in the original (docs/protocol.md#bugs-queries)."""
    with pytest.raises(UsageError):
        parse_query(bad)


def test_spaces_and_hex_are_understood() -> None:
    """` 745 - 746` and 0x2E9 are what the user meant."""
    assert parse_query(" 745 - 746").addresses == (745, 746)
    assert parse_query("0x2E9").addresses == (745,)


def test_a_missing_register_fails_an_explicit_query() -> None:
    """Without fallback the board's answer is the user's answer."""
    with pytest.raises(IllegalAddress):
        read_query(DumpBus({745: 1, 747: 3}), "745-747")


def test_a_missing_register_is_named_when_asked() -> None:
    """aurora_fetch narrows the board's "illegal data address" down to the registers it lacks."""
    bus = DumpBus({745: 1, 747: 3, 813: 206})
    with pytest.raises(MissingRegisters) as caught:
        read_query(bus, "745-747,813,1114", name_missing=True)
    assert [746, 1114] == caught.value.addresses
    assert "registers 746, 1114 are not on this unit (illegal data address)" == str(caught.value)
    assert isinstance(caught.value, IllegalAddress) and 2 == caught.value.code
    with pytest.raises(MissingRegisters, match=r"^register 1114 \(DHW Temperature\) is not"):
        read_query(bus, "1114", name_missing=True)


def test_missing_registers_are_skipped_with_fallback() -> None:
    """--ignore-missing-registers (or a keyword) reads the rest one by one and names what failed."""
    result = read_query(DumpBus({745: 1, 747: 3}), "745-747", skip_missing=True)
    assert (result.values, list(result.failed)) == ({745: 1, 747: 3}, [746])


def test_progress_is_reported_for_every_request() -> None:
    """The first request is reported too (the original never logged it, docs/protocol.md#bugs-queries)."""
    seen: list[tuple[int, int]] = []
    read_query(DumpBus({a: a for a in range(300)}), "0-299", progress=lambda d, t, c: seen.append((d, t)))
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_chunk_prints_like_the_original_items() -> None:
    assert str(Chunk(((3, 3), (745, 1)))) == "3..5, 745"


def test_breakpoints_are_the_specs() -> None:
    assert tuple(registers.BREAKPOINTS) == (12100, 12500)


def test_a_32_bit_register_is_read_with_its_low_word() -> None:
    """`aurora_fetch PORT 1146` crashed the original; here it reads 1146 and 1147 and decodes."""
    result = read_query(DumpBus({1146: 1, 1147: 2}), "1146")
    assert {1146: 1, 1147: 2} == result.values


class _SilentAt(DumpBus):
    """A unit whose register 746 never answers (a timeout, not a refusal)."""

    def _values(self, function: int, addresses: list[int]) -> list[int]:  # type: ignore[override]
        if 746 in addresses:
            raise BusTimeout("silent")
        return super()._values(function, addresses)


def test_one_silent_register_costs_only_itself_in_the_individual_fallback() -> None:
    """docs/protocol.md#bugs-queries: one FC 3 timeout during the per-register fallback aborted the whole
    query."""
    result = read_query(_SilentAt({745: 1, 746: 2, 747: 3}), "745-747", try_individual=True)
    assert ({745: 1, 747: 3}, [746]) == (result.values, list(result.failed))


def test_a_remote_query_waits_for_its_fallback_reads_only_when_it_has_them() -> None:
    """Through the bridge, a query with the register-by-register fallback may cost one transaction
    per register (a board refuses any request naming a register it lacks): its deadline allows it."""
    every = continued_spans(parse_query("all").spans)
    small = continued_spans(parse_query("745-747").spans)
    line_s = 0.010  # one small transaction at 19200 baud, at the least
    assert remote_timeout_s(10.0, every, fallback=True) > 10.0 + 65536 * line_s
    assert remote_timeout_s(10.0, small, fallback=False) == pytest.approx(10.3)
    assert 10.3 < remote_timeout_s(10.0, small, fallback=True) < 11.0
