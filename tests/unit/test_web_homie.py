"""The web dashboard's mirror of the bridge's Homie tree (docs/architecture.md#homie-tree)."""

from __future__ import annotations

import pytest
from aurora.errors import UsageError
from aurora.web.homie import HomieMirror

ROOT = "homie/aurora-1"


def _tree() -> HomieMirror:
    mirror = HomieMirror("aurora-1", sample_s=30)
    for topic, payload in [
        ("$state", "ready"),
        ("$nodes", "abc,zone1"),
        ("abc/$name", "Heat Pump"),
        ("abc/$properties", "current-mode,entering-water-temperature"),
        ("abc/current-mode/$datatype", "enum"),
        ("abc/entering-water-temperature/$name", "Entering Water Temperature"),
        ("abc/entering-water-temperature/$datatype", "float"),
        ("abc/entering-water-temperature/$unit", "°F"),
        ("zone1/$name", "Zone 1"),
        ("zone1/$properties", "heating-target-temperature,target-mode"),
        ("zone1/heating-target-temperature/$datatype", "integer"),
        ("zone1/heating-target-temperature/$format", "40:90"),
        ("zone1/heating-target-temperature/$settable", "true"),
        ("zone1/target-mode/$datatype", "enum"),
        ("zone1/target-mode/$format", "off,auto,cool,heat,eheat"),
        ("zone1/target-mode/$settable", "true"),
    ]:
        mirror.handle(f"{ROOT}/{topic}", payload, 0.0)
    return mirror


def test_values_are_reported_as_changes_and_attributes_as_meta() -> None:
    """The event stream sends values as they come and a new snapshot when the tree changes."""
    mirror = _tree()
    assert ("meta", None) == mirror.handle(f"{ROOT}/abc/$name", "Heat Pump", 1.0)
    change = mirror.handle(f"{ROOT}/abc/entering-water-temperature", "50.2", 2.0)
    assert (
        "value",
        {"node": "abc", "prop": "entering-water-temperature", "value": "50.2", "t": 2.0},
    ) == change


def test_other_devices_set_commands_and_modbus_topics_are_ignored() -> None:
    """Only the device's own state reaches the page."""
    mirror = _tree()
    assert mirror.handle("homie/aurora-2/abc/watts", "1", 0) is None
    assert mirror.handle(f"{ROOT}/zone1/target-mode/set", "heat", 0) is None
    assert mirror.handle(f"{ROOT}/$modbus/response/web/web-1", "{}", 0) is None


def test_the_snapshot_keeps_the_published_order_and_names_unnamed_properties() -> None:
    """Nodes in $nodes order, properties in $properties order; without $name a readable label."""
    mirror = _tree()
    mirror.handle(f"{ROOT}/zone1/heating-target-temperature", "68", 1)
    snapshot = mirror.snapshot()
    assert ["abc", "zone1"] == [n["id"] for n in snapshot["nodes"]]
    zone = snapshot["nodes"][1]
    assert ["heating-target-temperature", "target-mode"] == [p["id"] for p in zone["properties"]]
    assert "Heating target temperature" == zone["properties"][0]["name"]
    assert "68" == zone["properties"][0]["value"]
    assert "ready" == snapshot["state"]


def test_history_keeps_one_point_per_interval_with_the_newest_value_last() -> None:
    """A chart of six hours stays small (≈720 points) yet its last point is the current value."""
    mirror = _tree()
    topic = f"{ROOT}/abc/entering-water-temperature"
    for t, value in [(0, "50.0"), (1, "50.1"), (2, "50.2"), (31, "51.0"), (32, "51.5")]:
        mirror.handle(topic, value, t)
    points = mirror.series(["°F"])["abc/entering-water-temperature"]["points"]
    assert [[0, 50.0], [31, 51.0], [32, 51.5]] == points


def test_history_forgets_points_older_than_its_window() -> None:
    """Memory stays bounded for a tool that runs for months."""
    mirror = _tree()
    mirror.history_s = 100
    topic = f"{ROOT}/abc/entering-water-temperature"
    for t in range(0, 400, 40):
        mirror.handle(topic, str(50 + t / 100), t)
    points = mirror.series()["abc/entering-water-temperature"]["points"]
    assert all(360 - t <= 100 for t, _ in points)


def test_non_numbers_have_no_history_and_units_filter_the_series() -> None:
    """Charts are of temperatures and power only."""
    mirror = _tree()
    mirror.handle(f"{ROOT}/abc/current-mode", "heating", 1)
    mirror.handle(f"{ROOT}/zone1/heating-target-temperature", "68", 1)
    assert {"zone1/heating-target-temperature"} == set(mirror.series())
    assert {} == mirror.series(["W"])


def test_a_setting_is_checked_against_datatype_and_format_before_it_is_sent() -> None:
    """The same checks the bridge makes (docs/architecture.md#set-path), so the user sees why at once."""
    mirror = _tree()
    assert "70" == mirror.check_set("zone1", "heating-target-temperature", "70")
    assert "70" == mirror.check_set("zone1", "heating-target-temperature", 70.0)
    assert "heat" == mirror.check_set("zone1", "target-mode", "heat")
    assert "homie/aurora-1/zone1/target-mode/set" == mirror.set_topic("zone1", "target-mode")
    for node, prop, value, reason in [
        ("zone1", "heating-target-temperature", "95", "outside 40..90"),
        ("zone1", "heating-target-temperature", "68.5", "whole number"),
        ("zone1", "heating-target-temperature", "warm", "whole number"),
        ("zone1", "target-mode", "turbo", "not one of"),
        ("abc", "entering-water-temperature", "50", "not a settable"),
        ("abc", "nothing", "1", "not a settable"),
    ]:
        with pytest.raises(UsageError, match=reason):
            mirror.check_set(node, prop, value)


def test_the_bridges_health_and_state_changes_say_since_when_the_values_are_old() -> None:
    """Issue 14: the stale banner's facts: $state's last change (here) and the last good poll
    ($health, the bridge's clock); $health is a small change of its own, not a new snapshot."""
    mirror = _tree()
    health = '{"state": "alert", "last_good_poll": "2026-12-01T10:42:00+00:00", "uptime_s": 9, "bus": {}}'
    assert (
        "health",
        {
            "state": "alert",
            "last_good_poll": "2026-12-01T10:42:00+00:00",
            "last_error": None,
            "published_at": None,
        },
    ) == mirror.handle(f"{ROOT}/$health", health, 5.0)
    assert ("meta", None) == mirror.handle(f"{ROOT}/$state", "alert", 7.0)
    mirror.handle(f"{ROOT}/$state", "alert", 9.0)  # the same state again: not a new since
    mirror.handle(f"{ROOT}/abc/entering-water-temperature", "50.2", 3.0)
    snapshot = mirror.snapshot()
    assert ("alert", 7.0) == (snapshot["state"], snapshot["state_since"])
    assert "2026-12-01T10:42:00+00:00" == snapshot["health"]["last_good_poll"]
    values = {p["id"]: p for n in snapshot["nodes"] for p in n["properties"]}
    assert 3.0 == values["entering-water-temperature"]["t"]
    assert mirror.handle(f"{ROOT}/$health", "not json", 8.0) is None


def test_a_write_result_is_an_answer_for_the_request_that_waits() -> None:
    mirror = _tree()
    answer = '{"property": "zone1/heating-target-temperature", "payload": "95", "result": "refused"}'
    kind, doc = mirror.handle(f"{ROOT}/$write-result", answer, 1.0)  # type: ignore[misc]
    assert ("outcome", "refused") == (kind, doc["result"])


def test_a_waiting_write_gets_its_answer_and_others_do_not() -> None:
    import asyncio

    from aurora.web.context import WriteWaiters

    async def run() -> None:
        waiters = WriteWaiters()
        mine = waiters.expect("dhw/set-point", "125")
        other = waiters.expect("dhw/set-point", "126")
        waiters.deliver(
            {"property": "dhw/set-point", "payload": "125", "result": "applied", "value": "125.0"}
        )
        assert "125.0" == (await asyncio.wait_for(mine, 1))["value"]
        assert not other.done()
        waiters.forget("dhw/set-point", "126", other)
        waiters.deliver({"property": "dhw/set-point", "payload": "126", "result": "applied"})
        assert not other.done()  # nobody waits any more: dropped, not kept

    asyncio.run(run())


def test_a_float_setting_gets_the_bridges_half_tenth_at_the_ends_of_its_range() -> None:
    """The bridge rounds to tenths (at least) before its range check: 90.04 is 90.0."""
    mirror = _tree()
    mirror.handle(f"{ROOT}/zone1/heating-target-temperature/$datatype", "float", 1.0)
    assert "90.04" == mirror.check_set("zone1", "heating-target-temperature", "90.04")
    # passed on as it came: the bridge's one rounding rule makes it 69.8 (or 70 on a zone)
    assert "69.80000000000001" == mirror.check_set("zone1", "heating-target-temperature", 69.80000000000001)
    with pytest.raises(UsageError, match=r"outside 40\.\.90"):
        mirror.check_set("zone1", "heating-target-temperature", "90.06")
