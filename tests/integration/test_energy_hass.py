"""Issue 17: Home Assistant accepts the energy counters and offers them on its Energy dashboard.

HA's discovery validation (``tests/hass/validate_discovery.py``) judges the counters' components;
``tests/hass/energy_candidates.py`` judges, with HA's own device-class tables, which sensors the
Energy dashboard lists: exactly the seven counters, with no configuration.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_hass_validation import ROOT, Batch, rejections, unit_for, validate_batches

pytestmark = pytest.mark.integration

JUDGE = ROOT / "tests" / "hass" / "energy_candidates.py"
COUNTERS = {
    f"energy_{p}"
    for p in (
        "electrical-total",
        "electrical-compressor",
        "electrical-blower",
        "electrical-aux-heat",
        "electrical-pump",
        "thermal-heating",
        "thermal-cooling",
    )
}


def candidates(python: Path, document: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [str(python), str(JUDGE)], input=json.dumps(document), capture_output=True, text=True, timeout=110
    )
    assert 0 == proc.returncode, proc.stderr
    return dict(json.loads(proc.stdout)["components"])


def device_document(name: str = "demo") -> tuple[str, dict[str, Any]]:
    [(topic, payload)] = unit_for(name).hass_discovery(migrate=False)
    return topic, json.loads(payload)


UNITS = ["demo", "seed", "jfcliche"]


@pytest.fixture(scope="module")
def verdicts(ha_python: Path) -> dict[str, dict[str, Any]]:
    """HA's verdict on each unit's device document, from one run of the validator."""
    batches: dict[str, Batch] = {}
    for name in UNITS:
        topic, document = device_document(name)
        batches[name] = ([(topic, json.dumps(document))], "homeassistant")
    return {name: result for name, [result] in validate_batches(ha_python, batches).items()}


@pytest.mark.parametrize("name", UNITS)
def test_home_assistant_accepts_the_energy_sensors(verdicts: dict[str, dict[str, Any]], name: str) -> None:
    _topic, document = device_document(name)
    energy = {k: v for k, v in document["cmps"].items() if k.startswith("energy_")}
    assert COUNTERS | {"energy_cop-today", "energy_cop-running"} == set(energy)
    result = verdicts[name]
    assert {} == rejections(result)
    assert set(energy) <= set(result["components"])
    for key in COUNTERS:
        cmp = energy[key]
        assert ("energy", "total_increasing", "kWh") == (
            cmp["device_class"],
            cmp["state_class"],
            cmp["unit_of_measurement"],
        )


def test_the_energy_dashboard_offers_exactly_the_counters(ha_python: Path) -> None:
    _topic, document = device_document()
    judged = candidates(ha_python, document)
    assert COUNTERS == {k for k, v in judged.items() if v["candidate"]}
    assert not judged["abc_watts"]["candidate"]  # power, not energy


def test_a_counter_with_a_power_unit_or_a_measurement_class_would_not_be_offered(ha_python: Path) -> None:
    """The judge can say no: the two mistakes that keep a sensor off the Energy dashboard."""
    _topic, document = device_document()
    document["cmps"]["energy_electrical-total"]["unit_of_measurement"] = "W"
    document["cmps"]["energy_thermal-heating"]["state_class"] = "measurement"
    judged = candidates(ha_python, document)
    assert ["unit 'W' is not an energy unit"] == judged["energy_electrical-total"]["why"][:1]
    assert "keeps no sum" in " ".join(judged["energy_thermal-heating"]["why"])
    assert COUNTERS - {"energy_electrical-total", "energy_thermal-heating"} == {
        k for k, v in judged.items() if v["candidate"]
    }
