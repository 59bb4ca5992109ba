"""Issue 3: the bridge's Home Assistant discovery passes Home Assistant's own discovery validation.

The messages a bridge publishes for three units (the demo unit with three IZ2 zones, the original's
seed unit, a real scan without a communicating thermostat) are piped to
``tests/hass/validate_discovery.py`` run by ``.venv-ha``'s Python: Home Assistant (pinned in
``tests/hass/requirements.txt``) judges every topic, the device document and each component with
its own ``DEVICE_DISCOVERY_SCHEMA`` and platform ``DISCOVERY_SCHEMA``. Deliberately broken
payloads prove the validator does reject, so a pass means something. Every message of the module
is judged in one run of the validator (``judged``).

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
VALIDATOR = ROOT / "tests" / "hass" / "validate_discovery.py"
REQUIREMENTS = ROOT / "tests" / "hass" / "requirements.txt"
DUMPS = {
    "demo": ROOT / "services" / "sim" / "demo.yml",
    "seed": SEED_DUMP,
    "jfcliche": JFCLICHE_FLAT,
}

Messages = list[tuple[str, str]]
Batch = tuple[Messages, str]  # the messages of one bridge and its discovery prefix


def _pinned_version() -> str:
    match = re.search(r"^homeassistant==(\S+)$", REQUIREMENTS.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"{REQUIREMENTS} pins no homeassistant version"
    return match.group(1)


def validate_batches(python: Path, batches: Mapping[str, Batch]) -> dict[str, list[dict[str, Any]]]:
    """HA's verdict on each message of each batch, in order (the validator's JSON ``messages``),
    all judged in one run of the validator: starting Home Assistant is most of a run's time."""
    flat = [[topic, payload, prefix] for messages, prefix in batches.values() for topic, payload in messages]
    proc = subprocess.run(
        [str(python), str(VALIDATOR)],
        input=json.dumps(flat),
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
    )
    # 0: all passed, 1: something was rejected (judged below); anything else is a broken run
    assert proc.returncode in (0, 1), f"validator exited {proc.returncode}:\n{proc.stderr}"
    report = json.loads(proc.stdout)
    assert _pinned_version() == report["homeassistant"]  # judged by the HA the Makefile pins
    assert len(flat) == len(report["messages"])
    verdicts = iter(report["messages"])
    return {name: [next(verdicts) for _ in messages] for name, (messages, _prefix) in batches.items()}


def validate(python: Path, messages: Messages, prefix: str = "homeassistant") -> list[dict[str, Any]]:
    """HA's verdict on each message, in order, in a run of the validator of their own."""
    return validate_batches(python, {"": (messages, prefix)})[""]


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


def _batches() -> dict[str, Batch]:
    """Every set of messages this module has HA judge, by name."""
    batches: dict[str, Batch] = {name: (unit_for(name).hass_discovery(), "homeassistant") for name in DUMPS}
    batches["no migration"] = (unit_for("seed").hass_discovery(migrate=False), "homeassistant")
    # the bridge's --device-name, Homie root and discovery prefix settings as a user sets them
    configured = unit_for("demo", device_name="Basement heat pump")
    batches["configured"] = (
        configured.hass_discovery(homie_root="site/a/homie", prefix="ha-test"),
        "ha-test",
    )
    [(topic, payload)] = unit_for("demo").hass_discovery(migrate=False)
    variants: Messages = []
    for breaker, _key, _text in BROKEN.values():
        doc = json.loads(payload)
        breaker(doc)
        variants.append((topic, json.dumps(doc)))
    batches["broken"] = (variants, "homeassistant")
    # HA's discovery topic regex: no dots in ids; device or a platform HA subscribes to
    marker = json.dumps({"migrate_discovery": True})
    wrong_topics = [
        ("homeassistant/device/aurora.1/config", payload),
        ("homeassistant/thermostat/aurora-1/zone1/config", marker),
        ("ha/device/aurora-1/config", payload),
    ]
    batches["topics"] = (wrong_topics, "homeassistant")
    return batches


@pytest.fixture(scope="module")
def judged(ha_python: Path) -> dict[str, tuple[Messages, list[dict[str, Any]]]]:
    """Each batch's messages with HA's verdicts on them, all from one run of the validator."""
    batches = _batches()
    verdicts = validate_batches(ha_python, batches)
    return {name: (messages, verdicts[name]) for name, (messages, _prefix) in batches.items()}


@pytest.mark.parametrize("name", sorted(DUMPS))
def test_every_discovery_message_passes_home_assistants_own_validation(
    judged: dict[str, tuple[Messages, list[dict[str, Any]]]], name: str
) -> None:
    """Migration markers, the device document with every component, and the clears after it."""
    messages, results = judged[name]
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


def test_without_migration_the_device_document_alone_passes(
    judged: dict[str, tuple[Messages, list[dict[str, Any]]]],
) -> None:
    """What a bridge publishes once nothing of the original is left to migrate."""
    [result] = judged["no migration"][1]
    assert ("device", True, {}) == (result["kind"], result["ok"], rejections(result))


def test_a_configured_name_topic_root_and_prefix_pass_too(
    judged: dict[str, tuple[Messages, list[dict[str, Any]]]],
) -> None:
    """The bridge's --device-name, Homie root and discovery prefix settings as a user sets them."""
    messages, results = judged["configured"]
    assert all(topic.startswith("ha-test/") for topic, _payload in messages)
    assert {} == {r["topic"]: rejections(r) for r in results if rejections(r)}
    assert 1 == [r["kind"] for r in results].count("device")


@pytest.mark.parametrize("case", list(BROKEN))
def test_home_assistant_rejects_a_broken_payload(
    judged: dict[str, tuple[Messages, list[dict[str, Any]]]], case: str
) -> None:
    """The validator can fail: HA names what is wrong, and where."""
    _breaker, key, text = BROKEN[case]
    found = rejections(dict(zip(BROKEN, judged["broken"][1], strict=True))[case])
    if key == "(enum)":
        key = next(k for k, v in found.items() if text in str(v))
    assert key in found, found
    assert text in found[key]
    others = {k: v for k, v in found.items() if k != key}
    assert {} == others  # only the broken part, so the rest really was judged fine


def test_topics_home_assistant_would_not_read_are_rejected(
    judged: dict[str, tuple[Messages, list[dict[str, Any]]]],
) -> None:
    """HA's discovery topic regex: no dots in ids; device or a platform HA subscribes to."""
    results = judged["topics"][1]
    assert [("topic", False)] * 3 == [(r["kind"], r["ok"]) for r in results]
