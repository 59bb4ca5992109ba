"""Render MQTT command payloads exactly as Home Assistant sends them.

Run by the Python of ``.venv-ha`` (like ``validate_discovery.py``: only the standard library and
``homeassistant``). stdin: a JSON list of ``{"template": str | null, "value": number, "unit": "°F" |
"°C"}``: a value the user entered in ``unit``, for an entity whose temperature unit is °F (``unit``
``°C`` is a user whose system is metric: HA converts first, as its climate and water_heater
services do). stdout: a JSON list of the payloads HA publishes (``MqttCommandTemplate`` renders the
template, or passes the number through when there is none, which HA publishes as its text). A
``value`` that is a string is a received payload instead: ``template`` is then a value template
(availability, a state) and the output is what HA makes of it.

Exit status 0, or 2 on unreadable input.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from typing import Any

from homeassistant.components.mqtt.models import MqttCommandTemplate
from homeassistant.const import UnitOfTemperature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.template import Template
from homeassistant.util.unit_conversion import TemperatureConverter


def _payload(hass: HomeAssistant, case: dict[str, Any]) -> str:
    if isinstance(case["value"], str):  # a received payload through a value template
        template = Template(case["template"], hass)
        return str(template.async_render({"value": case["value"]}, parse_result=False))
    value = float(case["value"])
    if case.get("unit") == UnitOfTemperature.CELSIUS:
        value = TemperatureConverter.convert(value, UnitOfTemperature.CELSIUS, UnitOfTemperature.FAHRENHEIT)
    template = Template(case["template"], hass) if case.get("template") else None
    # async_render converts the rendered text as HA does; without a template it returns the
    # number, which HA's MQTT client publishes as str(number)
    rendered = MqttCommandTemplate(template).async_render(value)
    return rendered.decode() if isinstance(rendered, bytes) else str(rendered)


async def _run(cases: list[dict[str, Any]]) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="hass-render-") as config_dir:
        hass = HomeAssistant(config_dir)
        try:
            return [_payload(hass, case) for case in cases]
        finally:
            await hass.async_stop(force=True)


def main() -> int:
    """Read the cases from stdin, print the payloads."""
    try:
        cases = json.load(sys.stdin)
        if not isinstance(cases, list) or not all(isinstance(c, dict) and "value" in c for c in cases):
            raise ValueError("expected a JSON list of {template, value, unit} objects")
    except ValueError as err:
        print(f"render_commands: {err}", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(_run(cases))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
