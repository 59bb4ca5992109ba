"""``aurora_sim --power``: known energy-monitor readings, constant or on a schedule."""

from __future__ import annotations

import pytest
from aurora.registers import uint32
from aurora.sim.cli import build_parser, demo_registers
from aurora.simulator import Drift, PowerProfile, SimulatedAbc, parse_power_step


def watts(abc: SimulatedAbc, address: int) -> int:
    high, low = abc.get(address), abc.get(address + 1)
    assert high is not None and low is not None
    return uint32(high, low)


def test_a_step_parses_with_and_without_a_start_time() -> None:
    step = parse_power_step("compressor=3000, blower=200")
    assert (0.0, {"compressor": 3000, "blower": 200}) == (step.after_s, dict(step.readings))
    later = parse_power_step("60@aux=5000,extraction=30000")
    assert (60.0, {"aux": 5000, "extraction": 30000}) == (later.after_s, dict(later.readings))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("heater=3", "NAME one of compressor"),
        ("compressor=3.5", "not a whole number"),
        ("compressor=-1", "out of range"),
        ("x@compressor=1", "not a number of seconds"),
        ("", "names no reading"),
    ],
)
def test_a_bad_step_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_power_step(text)


def test_the_profile_holds_readings_and_the_total_is_their_sum() -> None:
    abc = SimulatedAbc(demo_registers())
    profile = PowerProfile(abc, [parse_power_step("compressor=30000,blower=500,aux=0,pump=250")])
    profile.step(0.0)
    Drift(abc, power=False).step(123.0)  # temperatures drift, power does not
    assert (30000, 500, 0, 250, 30750) == tuple(watts(abc, a) for a in (1146, 1148, 1150, 1164, 1152))


def test_a_schedule_changes_readings_at_its_times_and_keeps_unnamed_ones() -> None:
    abc = SimulatedAbc(demo_registers())
    steps = [parse_power_step(t) for t in ("compressor=1000,blower=100,aux=0,pump=0", "10@compressor=5000")]
    profile = PowerProfile(abc, steps)
    assert profile.step(0.0) is steps[0]
    assert profile.step(9.9) is None
    assert 1100 == watts(abc, 1152)
    assert profile.step(10.0) is steps[1]
    assert (5000, 100, 5100) == (watts(abc, 1146), watts(abc, 1148), watts(abc, 1152))


def test_the_command_line_repeats_power_and_refuses_a_bad_one(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["--power", "compressor=3000", "--power", "5@compressor=0"])
    assert [0.0, 5.0] == [s.after_s for s in args.power]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--power", "compressor=lots"])
    assert 2 == exit_.value.code
    assert "not a whole number" in capsys.readouterr().err
