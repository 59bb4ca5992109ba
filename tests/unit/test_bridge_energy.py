"""The energy counters (services/bridge/energy.py): integration, gaps, monotony, restarts, days."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from aurora.bridge import energy, state_file
from aurora.bridge.device import Tier, Unit, detect
from aurora.bridge.energy import EnergyMeter, channels_for, load_state, powers, save_state
from aurora.bridge.hass import device_payload
from aurora.bridge.metering import EnergyRecorder
from aurora.dump import load_dump
from structlog.testing import capture_logs

from tests.support.data import SEED_DUMP

TOTAL, HEATING, COOLING = "electrical-total", "thermal-heating", "thermal-cooling"
NOON = time.mktime((2026, 12, 1, 12, 0, 0, 0, 0, -1))  # local time, as the meter's days are


def meter(max_gap_s: float = 12.0) -> EnergyMeter:
    return EnergyMeter(channels_for(pump=True), max_gap_s=max_gap_s)


def run(
    m: EnergyMeter, watts: dict[str, float | None], start: float, seconds: float, step: float = 5.0
) -> float:
    """Samples every ``step`` s from ``start`` for ``seconds``; returns the time after the last."""
    t = start
    while t <= start + seconds + 1e-9:
        m.add(watts, mono=t, wall=NOON + t)
        t += step
    return t


def u32(watts: int) -> tuple[int, int]:
    return watts >> 16, watts & 0xFFFF


def words(
    *,
    outputs: int,
    total: int,
    compressor: int,
    aux: int = 0,
    extraction_btuh: int = 0,
    rejection_btuh: int = 0,
) -> dict[int, int]:
    w = {30: outputs}
    for address, value in (
        (1146, compressor),
        (1148, 200),
        (1150, aux),
        (1152, total),
        (1154, extraction_btuh),
        (1156, rejection_btuh),
        (1164, 100),
    ):
        w[address], w[address + 1] = u32(value & 0xFFFFFFFF)
    return w


# ------------------------------------------------------------------------------- integrating


def test_a_constant_power_integrates_exactly() -> None:
    m = meter()
    run(m, {TOTAL: 3600.0}, 0.0, 3600.0)
    assert m.totals[TOTAL] == pytest.approx(3.6, rel=1e-9)


def test_a_ramp_integrates_as_trapezoids() -> None:
    """Power rising linearly 0 → 7200 W over an hour: 3.6 kWh, exact for trapezoids."""
    m = meter()
    for i in range(721):
        m.add({TOTAL: i * 10.0}, mono=i * 5.0, wall=NOON + i * 5.0)
    assert m.totals[TOTAL] == pytest.approx(3.6, rel=1e-9)


def test_a_gap_longer_than_the_limit_adds_nothing_and_is_logged_once() -> None:
    m = meter(max_gap_s=12.0)
    t = run(m, {TOTAL: 3600.0}, 0.0, 600.0)
    before = m.totals[TOTAL]
    with capture_logs() as logs:
        run(m, {TOTAL: 3600.0}, t + 300.0, 600.0)  # five minutes without a reading
    assert m.totals[TOTAL] == pytest.approx(before + 3600.0 * 600 / 3.6e6, rel=1e-9)
    gaps = [e for e in logs if e["event"] == "energy_gap"]
    assert 1 == len(gaps) and 1 == m.gaps
    assert gaps[0]["gap_s"] == pytest.approx(305.0)


def test_a_gap_within_the_limit_is_integrated() -> None:
    m = meter(max_gap_s=12.0)
    m.add({TOTAL: 1000.0}, mono=0.0, wall=NOON)
    m.add({TOTAL: 1000.0}, mono=10.0, wall=NOON + 10)  # one poll lost
    assert m.totals[TOTAL] == pytest.approx(1000.0 * 10 / 3.6e6)


def test_the_counters_never_fall_whatever_the_readings() -> None:
    m = meter()
    seen = []
    readings = [2000.0, None, -5.0, float("nan"), 1e12, 3000.0, 0.0, 2500.0]
    for i, w in enumerate(readings):
        m.add({TOTAL: w}, mono=i * 5.0, wall=NOON + i * 5.0)
        seen.append(m.totals[TOTAL])
    assert seen == sorted(seen)
    m.add({TOTAL: 2500.0}, mono=30.0, wall=NOON + 30)  # a clock that went backwards
    assert m.totals[TOTAL] == seen[-1]


def test_implausible_readings_add_nothing_for_their_intervals() -> None:
    w = words(outputs=0x09, total=0xFFFFFFFF, compressor=2000)
    got = powers(channels_for(pump=True), w)
    assert got[TOTAL] is None  # 4.3 GW: a glitch
    assert 2000.0 == got["electrical-compressor"]


def test_heating_is_extraction_plus_compressor_plus_aux_and_cooling_is_rejection_minus_compressor() -> None:
    chans = channels_for(pump=True)
    heating = powers(
        chans, words(outputs=0x01 | 0x08, total=3000, compressor=2000, aux=1000, extraction_btuh=34121)
    )
    assert heating[HEATING] == pytest.approx(34121 / energy.BTUH_PER_WATT + 2000 + 1000)
    assert 0.0 == heating[COOLING]
    cooling = powers(
        chans, words(outputs=0x01 | 0x04 | 0x08, total=2200, compressor=2000, rejection_btuh=34121)
    )
    assert cooling[COOLING] == pytest.approx(34121 / energy.BTUH_PER_WATT - 2000)
    assert 0.0 == cooling[HEATING]
    off = powers(chans, words(outputs=0x08, total=200, compressor=0, extraction_btuh=34121))
    assert 0.0 == off[HEATING] == off[COOLING]
    emergency = powers(chans, words(outputs=0x10 | 0x08, total=5200, compressor=0, aux=5000))
    assert 5000.0 == emergency[HEATING]


def test_words_without_the_fast_registers_are_not_a_sample() -> None:
    m = meter()
    assert not m.add_words({745: 680}, mono=0.0, wall=NOON)
    assert 0 == m.samples
    assert m.add_words(words(outputs=0x09, total=3000, compressor=2000), mono=0.0, wall=NOON)
    assert 1 == m.samples


def test_a_register_the_unit_does_not_answer_stops_only_its_own_counter() -> None:
    m = meter()
    w = words(outputs=0x09, total=3600, compressor=2000)
    del w[1164], w[1165]  # a pump reading the unit refused
    for i in range(3):
        assert m.add_words(w, mono=i * 5.0, wall=NOON + i * 5.0)
    assert m.totals[TOTAL] == pytest.approx(3600 * 10 / 3.6e6)
    assert 0.0 == m.totals["electrical-pump"]


def test_the_fast_poll_reads_every_register_the_counters_need() -> None:
    unit = detect_seed()
    fast = unit.registers(Tier.FAST)
    assert {1146, 1147, 1148, 1149, 1150, 1151, 1152, 1153, 1154, 1155, 1156, 1157, 1164, 1165, 30} <= fast


# ------------------------------------------------------------------------------- days and COP


def test_today_and_the_cop_of_today_start_at_local_midnight() -> None:
    m = meter(max_gap_s=60.0)
    midnight = time.mktime((2026, 12, 2, 0, 0, 0, 0, 0, -1))
    t0 = midnight - 3600.0
    for i in range(121):  # 23:00 → 01:00, one sample a minute
        m.add({TOTAL: 1200.0, HEATING: 4200.0, COOLING: 0.0}, mono=i * 60.0, wall=t0 + i * 60.0)
    today = m.today(midnight + 3600.0)
    assert today[TOTAL] == pytest.approx(1.2, rel=1e-6)  # 1.2 kW for the hour since midnight
    assert m.cop_today(midnight + 3600.0) == pytest.approx(3.5)
    assert m.cop_running() == pytest.approx(3.5)
    days = json.loads(m.history())
    assert days["channels"][0] == TOTAL
    assert ["2026-12-01", "2026-12-02"] == list(days["days"])
    assert days["days"]["2026-12-02"][0] == pytest.approx(1.2, abs=0.001)  # the counter at midnight


def test_no_cop_before_enough_electricity_was_used() -> None:
    m = meter()
    run(m, {TOTAL: 10.0, HEATING: 40.0}, 0.0, 60.0)
    assert m.cop_today(NOON + 60) is None
    assert "cop-today" not in m.values(NOON + 60)


def test_values_are_kwh_with_three_decimals() -> None:
    m = meter()
    run(m, {TOTAL: 3600.0}, 0.0, 3600.0)
    values = m.values(NOON + 3600)
    assert "3.600" == values[TOTAL]
    assert "0.000" == values["electrical-compressor"]


# ------------------------------------------------------------------------------- restarts


def test_a_restart_carries_on_from_the_larger_of_file_and_broker() -> None:
    old = meter()
    run(old, {TOTAL: 3600.0, HEATING: 9000.0}, 0.0, 3600.0)
    saved = old.state()
    lost_file = meter()
    lost_file.restore(None, {TOTAL: "3.600", HEATING: "9.000"})
    assert lost_file.totals[TOTAL] == pytest.approx(3.6)
    lost_broker = meter()
    lost_broker.restore(saved, {})
    assert lost_broker.totals == old.totals
    newer_broker = meter()
    newer_broker.restore(saved, {TOTAL: "5.000", HEATING: "garbage"})
    assert 5.0 == newer_broker.totals[TOTAL]
    assert newer_broker.totals[HEATING] == pytest.approx(9.0)


def test_a_short_restart_is_bridged_from_the_saved_last_sample() -> None:
    old = meter(max_gap_s=12.0)
    t = run(old, {TOTAL: 3600.0}, 0.0, 60.0)
    new = meter(max_gap_s=12.0)
    new.restore(json.loads(json.dumps(old.state())), {})
    last_wall = NOON + t - 5.0
    new.add({TOTAL: 3600.0}, mono=1000.0, wall=last_wall + 8.0)  # another process's clock
    assert new.totals[TOTAL] == pytest.approx(old.totals[TOTAL] + 3600.0 * 8 / 3.6e6)


def test_a_long_restart_or_an_older_file_is_not_bridged() -> None:
    old = meter(max_gap_s=12.0)
    t = run(old, {TOTAL: 3600.0}, 0.0, 60.0)
    late = meter(max_gap_s=12.0)
    late.restore(old.state(), {})
    late.add({TOTAL: 3600.0}, mono=0.0, wall=NOON + t + 60.0)
    assert late.totals == old.totals
    stale = meter(max_gap_s=12.0)
    stale.restore(old.state(), {TOTAL: f"{old.totals[TOTAL] + 1:.3f}"})  # the broker counted on since
    stale.add({TOTAL: 3600.0}, mono=0.0, wall=NOON + t)
    assert stale.totals[TOTAL] == pytest.approx(old.totals[TOTAL] + 1, abs=0.001)


def test_the_broker_history_restores_the_day_starts() -> None:
    old = meter()
    run(old, {TOTAL: 3600.0}, 0.0, 60.0)
    new = meter()
    new.restore(None, {"history": old.history(), TOTAL: f"{old.totals[TOTAL]:.3f}"})
    assert old.days.keys() == new.days.keys()
    with capture_logs() as logs:
        meter().restore(None, {"history": "{not json"})
    assert ["energy_history_unreadable"] == [e["event"] for e in logs]


def test_the_state_file_round_trips_and_a_broken_one_is_ignored(tmp_path: Path) -> None:
    m = meter()
    run(m, {TOTAL: 3600.0}, 0.0, 60.0)
    path = tmp_path / "state" / "energy.json"
    save_state(path, m.state())
    assert m.state() == load_state(path)
    assert [] == [p.name for p in path.parent.iterdir() if p.name.startswith(".energy-")]
    path.write_text("{half")
    with capture_logs() as logs:
        assert load_state(path) is None
    assert ["energy_state_unreadable"] == [e["event"] for e in logs]
    assert load_state(tmp_path / "missing.json") is None


def test_the_default_state_path_follows_systemd_then_xdg_then_home() -> None:
    device = "aurora-1"
    assert Path("/var/lib/aurora/energy-aurora-1.json") == state_file.default_state_path(
        device, {"STATE_DIRECTORY": "/var/lib/aurora"}
    )
    assert Path("/x/aurora/energy-aurora-1.json") == state_file.default_state_path(
        device, {"XDG_STATE_HOME": "/x"}
    )
    assert Path("/home/u/.local/state/aurora/energy-aurora-1.json") == state_file.default_state_path(
        device, {"HOME": "/home/u"}
    )


def test_an_unwritable_state_file_is_logged_once_and_counting_goes_on(tmp_path: Path) -> None:
    unit = detect_seed()
    blocker = tmp_path / "file"
    blocker.write_text("")
    recorder = EnergyRecorder(unit, path=blocker / "energy.json", max_gap_s=12.0)
    with capture_logs() as logs:
        recorder.save()
        recorder.save()
    assert ["energy_state_not_saved"] == [e["event"] for e in logs]


# ------------------------------------------------------------------------------- the node and HA


def detect_seed() -> Unit:
    words = load_dump(SEED_DUMP)
    return detect(lambda ranges: {a: words[a] for s, n in ranges for a in range(s, s + n) if a in words})


def test_the_counters_are_energy_dashboard_candidates_in_home_assistant() -> None:
    unit = detect_seed()
    cmps = device_payload(unit)["cmps"]
    counters = {
        k: c for k, c in cmps.items() if k.startswith("energy_electrical") or k.startswith("energy_thermal")
    }
    assert 7 == len(counters)
    for key, cmp in counters.items():
        assert ("sensor", "energy", "total_increasing", "kWh") == (
            cmp["p"],
            cmp["device_class"],
            cmp["state_class"],
            cmp["unit_of_measurement"],
        ), key
        assert cmp["state_topic"] == f"homie/{unit.device_id}/{key.replace('_', '/', 1)}"
    assert "energy_history" not in cmps  # JSON for the web page, not an entity
    assert "measurement" == cmps["energy_cop-today"]["state_class"]


def test_a_unit_without_an_energy_monitor_has_no_energy_node() -> None:
    words = load_dump(SEED_DUMP)
    words[412] = 1  # refrigeration monitoring only: no power readings
    unit = detect(lambda ranges: {a: words[a] for s, n in ranges for a in range(s, s + n) if a in words})
    assert "energy" not in [n.id for n in unit.nodes]
    assert not EnergyRecorder.wanted(unit)


def test_the_recorder_restores_from_retained_topics_and_publishes_under_the_node(tmp_path: Path) -> None:
    unit = detect_seed()
    root = f"homie/{unit.device_id}"
    recorder = EnergyRecorder(unit, path=tmp_path / "e.json", max_gap_s=12.0)
    recorder.restore(
        {f"{root}/energy/electrical-total": b"12.345", f"{root}/energy/electrical-total/$unit": b"kWh"}, root
    )
    values = recorder.values()
    assert "12.345" == values["energy/electrical-total"]
    recorder.save()
    assert 12.345 == load_state(tmp_path / "e.json")["totals"][TOTAL]  # type: ignore[index]


# ------------------------------------------------------------------------------- the command line


def test_the_state_file_option_defaults_per_device_and_dash_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aurora.bridge.cli import config_from_args, parse_args

    monkeypatch.delenv("AURORA_BRIDGE_ENERGY_STATE", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/aurora")
    config = config_from_args(parse_args(["/dev/ttyUSB0", "mqtt://bridge@broker/"]))
    assert "/var/lib/aurora/energy-{device}.json" == config.energy_state
    assert config.energy_max_gap_s is None
    monkeypatch.setenv("AURORA_BRIDGE_ENERGY_STATE", "-")
    assert config_from_args(parse_args(["/dev/ttyUSB0", "mqtt://bridge@broker/"])).energy_state is None


def test_a_gap_limit_below_two_polls_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from aurora.bridge.cli import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["/dev/ttyUSB0", "mqtt://bridge@broker/", "--fast-interval", "5", "--energy-max-gap", "6"])
    assert 2 == exit_info.value.code
    assert "--energy-max-gap must be at least two fast intervals" in capsys.readouterr().err
