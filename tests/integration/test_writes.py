"""Issue 14: every write concludes, in °F and in °C, as Home Assistant sends it.

A real bridge on the real broker against ``aurora_sim`` (its write log shows each raw word that
reached the unit). Payloads are rendered by Home Assistant's own code (``tests/hass/render_commands.py``
run by ``.venv-ha``): the discovery's command template for the property, after HA's °C → °F
conversion for a metric user, plus what other MQTT clients send (``69.80000000000001``, ``21.5``,
``71.99999``, ``1e2``). For every settable property: the raw word written, the value read back and
published, and the ``$write-result`` answer; a refused command writes nothing and republishes the
current value at once.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aurora import rtu
from aurora.bridge import device
from aurora.dump import load_dump
from aurora.errors import UsageError
from aurora.sim.cli import demo_registers
from aurora.simulator import SimulatedAbc

from tests.support import Broker, Collector, free_port, publish, wait_for
from tests.support.bridge import DEMO_ID, Bridge
from tests.support.data import SEED_DUMP
from tests.support.sim import Sim, write_log

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RENDER = ROOT / "tests" / "hass" / "render_commands.py"
SEED_ID = "aurora-2109123456"
OUTCOME_S = 10.0  # a write and its read-back take tens of ms; a loaded machine gets leeway
# Other MQTT clients (and HA without a template) send these as they are
RAW_NUMBERS = ("69.80000000000001", "21.5", "71.99999", "1e2")
# (unit, property, payload) → (raw word written, value published): what the unit really stores
KNOWN = {
    ("demo", "zone1/heating-target-temperature", "69.80000000000001"): (700, "70.0"),
    ("demo", "zone1/heating-target-temperature", "71.99999"): (720, "72.0"),
    ("demo", "dhw/set-point", "1e2"): (1000, "100.0"),
    ("seed", "zone1/heating-target-temperature", "69.80000000000001"): (698, "69.8"),
    ("seed", "zone1/heating-target-temperature", "69.8"): (698, "69.8"),  # HA: 21 °C
    ("seed", "zone1/cooling-target-temperature", "71.99999"): (720, "72.0"),
    ("seed", "dhw/set-point", "1e2"): (1000, "100.0"),
    ("seed", "dhw/set-point", "122.18"): (1222, "122.2"),  # HA: 50.1 °C
}


def rendered(python: Path, cases: list[dict[str, Any]]) -> list[str]:
    """The payloads Home Assistant publishes for these {template, value, unit} cases."""
    proc = subprocess.run(
        [str(python), str(RENDER)], input=json.dumps(cases), capture_output=True, text=True, timeout=110
    )
    assert 0 == proc.returncode, proc.stderr
    payloads = json.loads(proc.stdout)
    assert len(cases) == len(payloads)
    return list(payloads)


def _templates(unit: device.Unit) -> dict[str, str | None]:
    """``node/prop`` → the command template HA renders for it, from the unit's own discovery."""
    document = next(json.loads(p) for t, p in unit.hass_discovery(migrate=False) if "/device/" in t)
    base = f"homie/{unit.device_id}/"
    found: dict[str, str | None] = {}
    for cmp in document["cmps"].values():
        for key, topic in cmp.items():
            if key.endswith("command_topic") and topic.startswith(base):
                path = topic[len(base) : -len("/set")]
                found[path] = cmp.get(key.replace("command_topic", "command_template"))
    return found


def _commands(python: Path, unit: device.Unit) -> list[tuple[str, str]]:
    """(property, payload) for every settable property, as HA and other clients send them."""
    templates = _templates(unit)
    cases: list[dict[str, Any]] = []
    paths: list[str] = []
    commands: list[tuple[str, str]] = []
    for path in unit.settable():
        spec = unit.spec(path)
        assert spec is not None and spec.setter is not None
        if spec.datatype == "boolean":
            commands += [(path, "true"), (path, "false")]
            continue
        if spec.datatype == "enum":
            commands += [(path, option) for option in (spec.format or "").split(",")[:3]]
            continue
        rule = spec.setter.rule
        assert rule is not None, path
        middle = (rule.low + rule.high) / 2
        entries: list[tuple[float, str]] = [(middle + 0.5, "°F"), (rule.high + 1, "°F"), (rule.low, "°F")]
        if spec.unit == "°F":
            celsius = round((middle - 32) * 5 / 9)
            entries += [(c, "°C") for c in (celsius, celsius + 0.5, celsius + 0.1, 21, 50.1)]
            commands += [(path, raw) for raw in RAW_NUMBERS]
        for value, unit_name in entries:
            cases.append({"template": templates.get(path), "value": value, "unit": unit_name})
            paths.append(path)
    return commands + list(zip(paths, rendered(python, cases), strict=True))


@pytest.fixture
def demo_sim(tmp_path: Path) -> Iterator[Sim]:
    with Sim.start(
        tmp_path, "--tcp", "127.0.0.1:0", "--no-drift", "--write-log", str(tmp_path / "writes.log")
    ) as sim:
        yield sim


# The seed dump was read, not written: it lacks the write-only registers a real unit takes
SEED_WRITE_ONLY = (47, 12606, 12619, 12620, 12621, 12622, 12623)


def seed_words() -> dict[int, int]:
    return {**dict.fromkeys(SEED_WRITE_ONLY, 0), **load_dump(SEED_DUMP)}


@pytest.fixture
def seed_sim(tmp_path: Path) -> Iterator[Sim]:
    dump = tmp_path / "seed.yml"
    dump.write_text("".join(f"{a}: {w}\n" for a, w in sorted(seed_words().items())), encoding="utf-8")
    with Sim.start(
        tmp_path,
        str(dump),
        "--tcp",
        "127.0.0.1:0",
        "--no-drift",
        "--write-log",
        str(tmp_path / "writes.log"),
    ) as sim:
        yield sim


def _run_every_command(
    tmp_path: Path,
    broker: Broker,
    sim: Sim,
    python: Path,
    *,
    name: str,
    words: dict[int, int],
    device_id: str,
) -> int:
    unit = device.detect(
        lambda ranges: {a: words[a] for s, n in ranges for a in range(s, s + n) if a in words}
    )
    assert device_id == unit.device_id
    board = SimulatedAbc(dict(words))  # what the sim holds, mirrors of write-only registers included
    commands = _commands(python, unit)
    writes_file = tmp_path / "writes.log"
    root = f"homie/{device_id}"
    watch = Collector(broker.client("homeassistant"), f"{root}/#")
    known_seen = 0
    all_expected: list[tuple[int, int]] = []
    with Bridge.start(tmp_path, broker, sim.url, device_id=device_id):
        for n, (path, payload) in enumerate(commands, start=1):
            spec = unit.spec(path)
            assert spec is not None and spec.setter is not None
            try:
                expected: list[tuple[int, int]] | None = spec.setter.writes(payload, board.snapshot())
            except UsageError:
                expected = None
            before_log = len(write_log(writes_file))
            before_value = len(watch.received(f"{root}/{path}"))
            publish(watch.client, f"{root}/{path}/set", payload)
            outcome = json.loads(watch.wait_for(f"{root}/$write-result", OUTCOME_S, count=n).payload)
            label = f"{name} {path}={payload!r}: {outcome}"
            assert (path, payload) == (outcome["property"], outcome["payload"]), label
            published = watch.received(f"{root}/{path}")[before_value:]
            if not spec.retained:  # the fault history button: an answer, no value
                assert "applied" == outcome["result"], label
                all_expected += expected or []
                continue
            assert published, f"{label}: no value published with the answer"
            if expected is None:
                assert "refused" == outcome["result"] and outcome["reason"], label
                assert unit.values(board.snapshot())[path] == published[-1].payload.decode(), label
                continue
            assert "applied" == outcome["result"], label
            wanted = before_log + len(expected)

            def logged(before: int = before_log, wanted: int = wanted) -> list[tuple[int, int]] | None:
                entries = write_log(writes_file)
                return entries[before:] if len(entries) >= wanted else None

            got = wait_for(logged, OUTCOME_S, f"{label} in the sim's write log")
            assert expected == got, label
            all_expected += expected
            for address, raw in expected:
                board.respond(rtu.write_single(address, raw))
            value = unit.values(board.snapshot()).get(path)
            assert value == outcome.get("value") == published[-1].payload.decode(), label
            if (name, path, payload) in KNOWN:
                known_seen += 1
                raw_word, shown = KNOWN[(name, path, payload)]
                assert ([raw_word], shown) == ([w for _, w in got], value), label
        # The last answer came after every earlier write: the log holds them all, and nothing a
        # refused command would have written
        wait_for(lambda: len(write_log(writes_file)) >= len(all_expected), OUTCOME_S, "the whole write log")
        assert all_expected == write_log(writes_file)
    assert known_seen == sum(1 for key in KNOWN if key[0] == name)
    return len(commands)


def test_every_settable_property_of_an_intellizone_unit_concludes_as_ha_sends_it(
    tmp_path: Path, broker: Broker, demo_sim: Sim, ha_python: Path
) -> None:
    """The demo unit: IZ2 zones store whole °F, so 21 °C (69.8 °F) is set as 70 °F."""
    count = _run_every_command(
        tmp_path, broker, demo_sim, ha_python, name="demo", words=demo_registers(), device_id=DEMO_ID
    )
    assert count >= 80


def test_every_settable_property_of_a_thermostat_unit_concludes_as_ha_sends_it(
    tmp_path: Path, broker: Broker, seed_sim: Sim, ha_python: Path
) -> None:
    """The original's seed unit: the thermostat stores tenths, so 21 °C is 69.8 °F."""
    count = _run_every_command(
        tmp_path, broker, seed_sim, ha_python, name="seed", words=seed_words(), device_id=SEED_ID
    )
    assert count >= 50


def test_commands_to_read_only_or_unknown_properties_are_refused_and_logged(
    tmp_path: Path, broker: Broker, demo_sim: Sim
) -> None:
    """A refused /set is logged with property, value and reason, and answered."""
    root = f"homie/{DEMO_ID}"
    watch = Collector(broker.client("homeassistant"), f"{root}/$write-result")
    with Bridge.start(tmp_path, broker, demo_sim.url):
        for n, (path, payload) in enumerate(
            [
                ("abc/watts", "0"),
                ("zone1/no-such-thing", "1"),
                ("zone9/cooling-target-temperature", "75"),
                ("dhw/set-point", "hot"),
            ],
            start=1,
        ):
            publish(watch.client, f"{root}/{path}/set", payload)
            outcome = json.loads(watch.wait_for(f"{root}/$write-result", OUTCOME_S, count=n).payload)
            assert ("refused", path) == (outcome["result"], outcome["property"])
    lines = [
        json.loads(line)
        for line in (tmp_path / "bridge.log").read_text().splitlines()
        if "set_refused" in line
    ]
    reasons = {(line["property"], line["value"]): line["reason"] for line in lines}
    assert "a read-only property" == reasons[("abc/watts", "0")]
    assert "no such property" == reasons[("zone1/no-such-thing", "1")]
    assert "no such property" == reasons[("zone9/cooling-target-temperature", "75")]  # no such zone
    assert re.search(r"not a (number|Homie float)", reasons[("dhw/set-point", "hot")])
    assert [] == write_log(tmp_path / "writes.log")


def test_a_write_to_a_silent_unit_fails_within_a_bounded_time(
    tmp_path: Path, broker: Broker, demo_sim: Sim
) -> None:
    """The unit stops answering: the write is answered failed, never left waiting."""
    root = f"homie/{DEMO_ID}"
    watch = Collector(broker.client("homeassistant"), f"{root}/$write-result", f"{root}/dhw/set-point")
    with Bridge.start(tmp_path, broker, demo_sim.url):
        watch.wait_for(f"{root}/dhw/set-point", OUTCOME_S)
        demo_sim.stop()
        publish(watch.client, f"{root}/dhw/set-point/set", "125")
        outcome = json.loads(watch.wait_for(f"{root}/$write-result", 30).payload)
        assert "failed" == outcome["result"]
        assert "no answer from the heat pump" in outcome["reason"]
        assert "130.0" == watch.received(f"{root}/dhw/set-point")[-1].payload.decode()  # snapped back
        wait_for(
            lambda: "set_failed" in (tmp_path / "bridge.log").read_text(), OUTCOME_S, "set_failed logged"
        )


def test_a_write_sent_while_the_line_is_reopened_is_made_once_it_answers(
    tmp_path: Path, broker: Broker
) -> None:
    """The line drops and comes back a few seconds later (an outage that cut off the bridge's
    network): a command that arrived in between is written once the unit answers again."""
    root = f"homie/{DEMO_ID}"
    port = free_port()
    sim_args = ("--tcp", f"127.0.0.1:{port}", "--no-drift", "--write-log", str(tmp_path / "writes.log"))
    watch = Collector(broker.client("homeassistant"), f"{root}/$write-result", f"{root}/dhw/set-point")
    bridge_log = tmp_path / "bridge.log"
    with Sim.start(tmp_path, *sim_args) as sim, Bridge.start(tmp_path, broker, sim.url):
        watch.wait_for(f"{root}/dhw/set-point", OUTCOME_S)
        sim.stop()
        wait_for(lambda: '"bus_down"' in bridge_log.read_text(), 30, "the bridge seeing the line down")
        publish(watch.client, f"{root}/dhw/set-point/set", "125")
        wait_for(lambda: "set_waiting_for_line" in bridge_log.read_text(), OUTCOME_S, "the command waiting")
        with Sim.start(tmp_path, *sim_args):
            outcome = json.loads(watch.wait_for(f"{root}/$write-result", 30).payload)
            assert ("applied", "125.0") == (outcome["result"], outcome["value"]), outcome
            wait_for(lambda: write_log(tmp_path / "writes.log"), OUTCOME_S, "the sim logging the write")
            assert [(401, 1250)] == write_log(tmp_path / "writes.log")
            assert "125.0" == watch.received(f"{root}/dhw/set-point")[-1].payload.decode()


def test_the_discovery_migration_runs_once_and_a_restart_publishes_none_of_it(
    tmp_path: Path, broker: Broker, demo_sim: Sim
) -> None:
    """Issue 14: the gem's per-entity topics still retained are migrated on the first start; the
    second start finds none and sends only the device document (HA logs no discovery warnings)."""
    unit = device.detect(
        lambda ranges: {a: w for a, w in demo_registers().items() if any(s <= a < s + n for s, n in ranges)}
    )
    gem = [t for t, p in unit.hass_discovery() if p == '{"migrate_discovery": true}']
    assert len(gem) > 50
    old = broker.client("bridge")
    for topic in gem[:3]:
        publish(old, topic, '{"name": "from the gem"}', retain=True)
    prefix = f"homeassistant/+/{DEMO_ID}/#"
    for run in (1, 2):
        watch = Collector(broker.client("homeassistant"), prefix)
        start = len(watch.messages)  # the retained copies, before the bridge starts
        with Bridge.start(tmp_path, broker, demo_sim.url, name=f"bridge-{run}"):
            watch.barrier(f"homeassistant/device/{DEMO_ID}/config")
            live = [m for m in watch.messages[start:] if not m.retain]
        migrations = [m.topic for m in live if m.payload == b'{"migrate_discovery": true}']
        cleared = [m.topic for m in live if m.payload == b""]
        documents = [m.topic for m in live if m.topic == f"homeassistant/device/{DEMO_ID}/config"]
        if run == 1:
            assert sorted(gem[:3]) == sorted(migrations) == sorted(cleared)
        else:
            assert ([], []) == (migrations, cleared)
        assert 1 == len(documents)


def test_home_assistant_shows_the_entities_available_only_while_the_bridge_is_ready(ha_python: Path) -> None:
    """HA entities follow $state: the discovery's availability template, rendered by HA."""
    unit = device.detect(
        lambda ranges: {a: w for a, w in demo_registers().items() if any(s <= a < s + n for s, n in ranges)}
    )
    document = next(json.loads(p) for t, p in unit.hass_discovery(migrate=False) if "/device/" in t)
    (availability,) = document["avty"]
    assert f"homie/{DEMO_ID}/$state" == availability["topic"]
    states = ["ready", "init", "alert", "lost", "disconnected", "sleeping", ""]
    shown = rendered(ha_python, [{"template": availability["value_template"], "value": s} for s in states])
    assert ["online"] + ["offline"] * 6 == shown
