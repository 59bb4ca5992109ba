"""Home Assistant's own ModBus integration against the bridge's virtual ports, run by ``.venv-ha``.

    .venv-ha/bin/python tests/hass/ha_modbus_client.py CONFIG.yaml

CONFIG.yaml is a ``modbus:`` section as a user writes it in configuration.yaml (the test takes
the one in docs/network-serial.md). It is checked with the integration's CONFIG_SCHEMA, then the
integration's ModbusHub (with pymodbus pinned as HA pins it) connects and reads every sensor's
register, as HA's sensor platform asks for it, and writes one register the bridge must refuse
(HA's ``modbus.write_register`` action). Only HA's event loop is stood in for: a hub needs
nothing else of it. Prints one JSON document:
``{"sensors": {name: [registers]}, "refused_write": <pymodbus result text>}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import yaml
from homeassistant.components import modbus
from homeassistant.components.modbus.const import CALL_TYPE_REGISTER_HOLDING, CALL_TYPE_WRITE_REGISTER
from homeassistant.components.modbus.modbus import ModbusHub


class LoopOnly:
    """The part of HomeAssistant a ModbusHub uses: background tasks on the running loop."""

    def async_create_background_task(self, target: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(target, name=name)


async def run(config_file: Path) -> dict[str, Any]:
    config = modbus.CONFIG_SCHEMA(yaml.safe_load(config_file.read_text()))["modbus"][0]
    hub = ModbusHub(LoopOnly(), config)  # type: ignore[arg-type]
    assert await hub.async_setup()
    await asyncio.wait_for(hub.event_connected.wait(), 10)
    try:
        sensors: dict[str, list[int] | None] = {}
        for sensor in config["sensors"]:
            result = await hub.async_pb_call(
                sensor.get("device_address", 1),
                sensor["address"],
                sensor["count"],
                CALL_TYPE_REGISTER_HOLDING,
            )
            sensors[sensor["name"]] = None if result is None else list(result.registers)
        # The read-back heating set point is not writable: the hub logs the refusal, returns None.
        refused = await hub.async_pb_call(1, 745, 700, CALL_TYPE_WRITE_REGISTER)
        return {"sensors": sensors, "refused_write": None if refused is None else str(refused)}
    finally:
        await hub.async_close()


def main(argv: list[str]) -> int:
    print(json.dumps(asyncio.run(run(Path(argv[0])))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
