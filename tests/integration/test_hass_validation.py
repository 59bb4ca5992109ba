"""Issue 3: the bridge's Home Assistant discovery passes Home Assistant's own discovery validation.

The messages a bridge publishes for three units (the demo unit with three IZ2 zones, the original's
seed unit, a real scan without a communicating thermostat) are piped to
``tests/hass/validate_discovery.py`` run by ``.venv-ha``'s Python: Home Assistant (pinned in
``tests/hass/requirements.txt``) judges every topic, the device document and each component with
its own ``DEVICE_DISCOVERY_SCHEMA`` and platform ``DISCOVERY_SCHEMA``. Deliberately broken
payloads prove the validator does reject, so a pass means something.

``make test`` builds ``.venv-ha``; without it this module fails under CI and skips elsewhere.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from aurora.bridge.device import Unit, detect
from aurora.dump import load_dump

from tests.support.data import JFCLICHE_FLAT, SEED_DUMP

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HA_PYTHON = ROOT / ".venv-ha" / "bin" / "python"
VALIDATOR = ROOT / "tests" / "hass" / "validate_discovery.py"
REQUIREMENTS = ROOT / "tests" / "hass" / "requirements.txt"
DUMPS = {
    "demo": ROOT / "services" / "sim" / "demo.yml",
    "seed": SEED_DUMP,
    "jfcliche": JFCLICHE_FLAT,
}

Messages = list[tuple[str, str]]


def _pinned_version() -> str:
    match = re.search(r"^homeassistant==(\S+)$", REQUIREMENTS.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"{REQUIREMENTS} pins no homeassistant version"
    return match.group(1)


def validate(python: Path, messages: Messages, prefix: str = "homeassistant") -> list[dict[str, Any]]:
    """HA's verdict on each message, in order (the validator's JSON ``messages``)."""
    proc = subprocess.run(
        [str(python), str(VALIDATOR), "--prefix", prefix],
        input=json.dumps(messages),
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
    )
    # 0: all passed, 1: something was rejected (judged below); anything else is a broken run
    assert proc.returncode in (0, 1), f"validator exited {proc.returncode}:\n{proc.stderr}"
    report = json.loads(proc.stdout)
    assert _pinned_version() == report["homeassistant"]  # judged by the HA the Makefile pins
    assert len(messages) == len(report["messages"])
    return list(report["messages"])


def _reader(words: Mapping[int, int]) -> Callable[[Any], dict[int, int]]:
    return lambda ranges: {a: words[a] for s, n in ranges for a in range(s, s + n) if a in words}


def unit_for(name: str, device_name: str = "WaterFurnace") -> Unit:
    """The unit a bridge detects on the bus behind the named dump."""
    return detect(_reader(load_dump(DUMPS[name])), device_name=device_name)


def rejections(result: Mapping[str, Any]) -> dict[str, Any]:
    """What HA refused or ignored in one message: topic-level, then per component."""
    found: dict[str, Any] = {}
    if not result["ok"] and result["error"]:
        found["(message)"] = result["error"]
    for key, component in result.get("components", {}).items():
        if not component["ok"]:
            found[key] = component["error"]
        elif component["ignored"]:
            found[key] = f"ignored by HA: {component['ignored']}"
    return found


@pytest.mark.parametrize("name", sorted(DUMPS))
def test_every_discovery_message_passes_home_assistants_own_validation(ha_python: Path, name: str) -> None:
    """Migration markers, the device document with every component, and the clears after it."""
    unit = unit_for(name)
    messages = unit.hass_discovery()
    results = validate(ha_python, messages)
    assert {} == {r["topic"]: rejections(r) for r in results if rejections(r)}
    assert [] == [(r["topic"], r["warnings"]) for r in results if r["warnings"]]
    kinds = [r["kind"] for r in results]
    assert 1 == kinds.count("device")
    assert {"device", "migrate", "clear"} >= set(kinds)
    device = next(r for r in results if r["kind"] == "device")
    document = json.loads(dict(messages)[device["topic"]])
    # every component was judged by its platform's schema, none skipped
    assert sorted(document["cmps"]) == sorted(device["components"])
    assert [] == [k for k, c in device["components"].items() if c["warnings"]]
    assert {c["p"] for c in document["cmps"].values()} == {
        c["platform"] for c in device["components"].values()
    }


def test_without_migration_the_device_document_alone_passes(ha_python: Path) -> None:
    """What a bridge publishes once nothing of the original is left to migrate."""
    [result] = validate(ha_python, unit_for("seed").hass_discovery(migrate=False))
    assert ("device", True, {}) == (result["kind"], result["ok"], rejections(result))


def test_a_configured_name_topic_root_and_prefix_pass_too(ha_python: Path) -> None:
    """The bridge's --device-name, Homie root and discovery prefix settings as a user sets them."""
    unit = unit_for("demo", device_name="Basement heat pump")
    messages = unit.hass_discovery(homie_root="site/a/homie", prefix="ha-test")
    results = validate(ha_python, messages, prefix="ha-test")
    assert {} == {r["topic"]: rejections(r) for r in results if rejections(r)}
    assert 1 == [r["kind"] for r in results].count("device")


# Broken variants of the demo unit's device document: what each breaks, where HA must find it and a
# piece of what it says (pieces that HA 2026.2's voluptuous and 2026.11's probatio messages share)
Breaker = Callable[[dict[str, Any]], None]


def _enum_sensor(doc: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in doc["cmps"].values() if c.get("device_class") == "enum")


BROKEN: dict[str, tuple[Breaker, str, str]] = {
    "unknown sensor device class": (
        lambda doc: doc["cmps"]["abc_watts"].update(device_class="wattage"),
        "abc_watts",
        "device_class",
    ),
    "unit not valid for the device class": (
        lambda doc: doc["cmps"]["abc_watts"].update(device_class="temperature"),
        "abc_watts",
        "is not valid together with device class",
    ),
    "enum sensor with a state class": (
        lambda doc: _enum_sensor(doc).update(state_class="measurement"),
        "(enum)",
        "not allowed together with the `state_class`",
    ),
    "no origin": (lambda doc: doc.pop("o"), "(message)", "origin"),
    "component without unique_id": (
        lambda doc: doc["cmps"]["abc_watts"].pop("unique_id"),
        "(message)",
        "unique_id",
    ),
    "unsupported platform": (
        lambda doc: doc["cmps"]["abc_watts"].update(p="thermostat"),
        "(message)",
        "platform",
    ),
    "broken template": (
        lambda doc: doc["cmps"]["zone1"].update(action_template="{% if %}heating{% endif %}"),
        "zone1",
        "invalid template",
    ),
    "preset none": (
        lambda doc: doc["cmps"]["zone1"].update(preset_modes=["none", "emergency_heat"]),
        "zone1",
        "must not include preset mode 'none'",
    ),
    "removed aux heat option": (
        lambda doc: doc["cmps"]["zone1"].update(aux_command_topic="homie/x/aux/set"),
        "zone1",
        "ignored by HA: ['aux_command_topic']",
    ),
}


@pytest.fixture(scope="module")
def broken_results(ha_python: Path) -> dict[str, dict[str, Any]]:
    """HA's verdict on each broken variant, all judged in one run of the validator."""
    unit = unit_for("demo")
    [(topic, payload)] = unit.hass_discovery(migrate=False)
    variants: Messages = []
    for breaker, _key, _text in BROKEN.values():
        doc = json.loads(payload)
        breaker(doc)
        variants.append((topic, json.dumps(doc)))
    return dict(zip(BROKEN, validate(ha_python, variants), strict=True))


@pytest.mark.parametrize("case", list(BROKEN))
def test_home_assistant_rejects_a_broken_payload(
    broken_results: dict[str, dict[str, Any]], case: str
) -> None:
    """The validator can fail: HA names what is wrong, and where."""
    _breaker, key, text = BROKEN[case]
    found = rejections(broken_results[case])
    if key == "(enum)":
        key = next(k for k, v in found.items() if text in str(v))
    assert key in found, found
    assert text in found[key]
    others = {k: v for k, v in found.items() if k != key}
    assert {} == others  # only the broken part, so the rest really was judged fine


def test_topics_home_assistant_would_not_read_are_rejected(ha_python: Path) -> None:
    """HA's discovery topic regex: no dots in ids; device or a platform HA subscribes to."""
    document = unit_for("demo").hass_discovery(migrate=False)[0][1]
    results = validate(
        ha_python,
        [
            ("homeassistant/device/aurora.1/config", document),
            ("homeassistant/thermostat/aurora-1/zone1/config", json.dumps({"migrate_discovery": True})),
            ("ha/device/aurora-1/config", document),
        ],
    )
    assert [("topic", False)] * 3 == [(r["kind"], r["ok"]) for r in results]
