"""Which MQTT discovery sensors Home Assistant's Energy dashboard offers, judged by HA's own tables.

Run by the Python of ``.venv-ha`` (like ``validate_discovery.py``: the standard library and
``homeassistant`` only). The Energy dashboard lists long-term statistics that have a *sum* and the
unit class ``energy``; HA keeps a sum for a sensor whose state class is ``total`` or
``total_increasing``, and gives it the unit class of the unit converter its unit belongs to. So a
sensor is a candidate when its device class is ``energy``, that class allows its state class
(``DEVICE_CLASS_STATE_CLASSES``) and its unit (``DEVICE_CLASS_UNITS``), and the state class keeps
a sum. (HA's ``energy`` and ``recorder`` modules need packages ``.venv-ha`` leaves out.)

stdin: a device discovery document (JSON). stdout: ``{"homeassistant": VERSION, "components":
{key: {"candidate": bool, "why": [reasons it is not]}}}`` for every sensor component.
"""

from __future__ import annotations

import json
import sys

from homeassistant.components.sensor.const import (
    DEVICE_CLASS_STATE_CLASSES,
    DEVICE_CLASS_UNITS,
    SensorDeviceClass,
    SensorStateClass,
)
from homeassistant.const import __version__ as HA_VERSION  # noqa: N812 - HA's name for it
from homeassistant.util.unit_conversion import EnergyConverter

SUMMED = {SensorStateClass.TOTAL, SensorStateClass.TOTAL_INCREASING}  # sensor/recorder.py: "sum"


def judge(component: dict[str, object]) -> list[str]:
    """Why the sensor is not an Energy-dashboard candidate ([] when it is)."""
    why = []
    device_class = component.get("device_class", component.get("dev_cla"))
    state_class = component.get("state_class", component.get("stat_cla"))
    unit = component.get("unit_of_measurement", component.get("unit_of_meas"))
    if device_class != SensorDeviceClass.ENERGY:
        why.append(f"device class {device_class!r} is not energy")
    else:
        allowed = DEVICE_CLASS_STATE_CLASSES[SensorDeviceClass.ENERGY]
        if state_class not in allowed:
            why.append(f"state class {state_class!r} is not one of {sorted(allowed)}")
        if unit not in DEVICE_CLASS_UNITS[SensorDeviceClass.ENERGY]:
            why.append(f"unit {unit!r} is not an energy unit")
    if state_class not in SUMMED:
        why.append(f"state class {state_class!r} keeps no sum")
    if unit not in EnergyConverter.VALID_UNITS:
        why.append(f"unit {unit!r} is not of unit class {EnergyConverter.UNIT_CLASS}")
    return why


def main() -> int:
    """Judge every sensor of the document on stdin."""
    document = json.load(sys.stdin)
    components = document.get("cmps", document.get("components", {}))
    out = {}
    for key, component in components.items():
        if component.get("p", component.get("platform")) != "sensor":
            continue
        why = judge(component)
        out[key] = {"candidate": not why, "why": why}
    json.dump({"homeassistant": HA_VERSION, "components": out}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
