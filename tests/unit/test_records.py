"""aurora.records: the value objects of rtu, registers, readplan, query and bus compare, hash and
print as the dataclasses they replace did (issue 15: dataclasses cost aurora_fetch's start)."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from aurora import registers, rtu
from aurora.bus import BusStats
from aurora.query import Query
from aurora.readplan import Chunk, Depth, ReadResult, Rules


def test_frozen_records_compare_and_hash_by_their_fields() -> None:
    a, b = rtu.Request(1, 65, ((745, 3),)), rtu.Request(1, 65, ((745, 3),))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != rtu.Request(1, 65, ((745, 2),))
    assert Chunk(((745, 3),)) != ((745, 3),)  # a record is never equal to a plain tuple
    assert "Request(slave=1, function=65, ranges=((745, 3),), writes=(), raw=b'')" == repr(a)
    assert "Chunk(items=((1, 2),), holding=True)" == repr(Chunk(((1, 2),), holding=True))
    assert Rules(depth=Depth.ITEMS) == Rules(depth=Depth.ITEMS) != Rules()
    assert {Query(((1, 1),), False): 1}[Query(((1, 1),), False)] == 1


def test_a_write_rule_hashes_without_its_special_values_mapping() -> None:
    rule = registers.WriteRule(low=1, high=2, special=MappingProxyType({0x7FFF: "off"}))
    same = registers.WriteRule(low=1, high=2, special=MappingProxyType({0x7FFF: "off"}))
    assert rule == same and hash(rule) == hash(same)
    assert rule != registers.WriteRule(low=1, high=2)
    assert {} == dict(registers.WriteRule(low=1, high=2).special)
    assert hash(registers.REGISTERS[745]) == hash(registers.register_from({"address": 745, **_entry(745)}))


def _entry(address: int) -> dict[str, object]:
    register = registers.REGISTERS[address]
    return {
        "name": register.name,
        "converter": register.converter,
        "format": register.format,
        "unit": register.unit,
    }


def test_mutable_records_compare_by_value_and_are_unhashable() -> None:
    assert ReadResult() == ReadResult() and ReadResult({1: 2}) != ReadResult()
    stats = BusStats()
    stats.transactions += 2
    stats.extra["x"] = 1
    assert 2 == stats.as_dict()["transactions"] and 1 == stats.as_dict()["x"]
    assert list(stats.as_dict())[:3] == ["transactions", "timeouts", "frame_errors"]
    with pytest.raises(TypeError):
        hash(stats)
    with pytest.raises(TypeError):
        hash(ReadResult())
