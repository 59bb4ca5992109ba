"""home-assistant-libs/modbus-connection against the bridge's virtual ports, run by ``.venv-ha``.

modbus-connection (the connection library Home Assistant integrations such as balloob's
waterfurnace-modbus build on) needs Python >= 3.12 (PEP 695 syntax), so it cannot run in the
project's 3.11 venv; it is pinned in requirements.txt next to Home Assistant.

    .venv-ha/bin/python tests/hass/modbus_connection_client.py HOST PORT {socket,rtu} START:COUNT...

Reads every START:COUNT block at once through one shared connection (its point: several consumers
on one link), then tries one write the bridge must refuse. Prints one JSON document:
``{"reads": [[...], ...], "refused_write": <exception code or null>}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from typing import Any

from modbus_connection import ModbusExceptionError
from modbus_connection.pymodbus import connect_tcp


async def run(host: str, port: int, framer: str, blocks: list[tuple[int, int]]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # framer="rtu" for RTU over TCP
        connection = await connect_tcp(host, port=port, timeout=5, framer=framer)  # type: ignore[arg-type]
    try:
        unit = connection.for_unit(1)
        reads = await asyncio.gather(*(unit.read_holding_registers(a, n) for a, n in blocks))
        refused: int | None = None
        try:
            await unit.write_register(745, 700)  # the read-back set point: not writable
        except ModbusExceptionError as err:
            refused = None if err.exception_code is None else int(err.exception_code)
        return {"reads": [list(r) for r in reads], "refused_write": refused}
    finally:
        await connection.disconnect()


def main(argv: list[str]) -> int:
    host, port, framer, *specs = argv
    blocks = [(int(a), int(n)) for a, n in (spec.split(":") for spec in specs)]
    print(json.dumps(asyncio.run(run(host, int(port), framer, blocks))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
