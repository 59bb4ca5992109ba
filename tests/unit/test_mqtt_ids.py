"""Client ids: tools get a fresh random one, the bridge one that only its password gives."""

from __future__ import annotations

import io
import json
import logging
import re

from aurora import rpc
from aurora.logs import configure_logging, hide_bridge_ids
from aurora.mqtt import bridge_client_id, client_id, shown_client_id


def test_the_bridge_id_is_stable_and_needs_the_password() -> None:
    cid = bridge_client_id("2611000042", "bridge", "s3cret-password")
    assert re.fullmatch(r"bridge-2611000042-[0-9a-f]{24}", cid)
    # Stable across restarts (the broker keeps the bridge's session under it)...
    assert bridge_client_id("2611000042", "bridge", "s3cret-password") == cid
    # ...and another password, user or unit gives another id: no one derives it without the secret.
    others = {
        bridge_client_id("2611000042", "bridge", "s3cret-passwore"),
        bridge_client_id("2611000042", "fetch", "s3cret-password"),
        bridge_client_id("2611000043", "bridge", "s3cret-password"),
    }
    assert cid not in others and len(others) == 3
    assert "s3cret" not in cid
    assert rpc.valid_client_id(cid)


def test_without_a_password_the_bridge_id_is_the_plain_one() -> None:
    assert bridge_client_id("2611000042", None, None) == "bridge-2611000042"
    assert bridge_client_id("2611000042", "bridge", "") == "bridge-2611000042"


def test_logs_show_the_bridge_id_without_its_secret_part() -> None:
    cid = bridge_client_id("2611000042", "bridge", "pw")
    shown = shown_client_id(cid)
    assert shown == "bridge-2611000042-…"
    assert cid[-24:] not in shown
    # Ids with nothing secret in them are shown as they are.
    assert shown_client_id("bridge-2611000042") == "bridge-2611000042"
    assert shown_client_id("fetch-3f9a0c2d41e7") == "fetch-3f9a0c2d41e7"


def test_tool_ids_are_new_on_every_run() -> None:
    ids = {client_id("fetch") for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"fetch-[0-9a-f]{12}", i) for i in ids)


def test_no_log_line_shows_a_bridge_id_whole_whichever_logger_it_comes_through() -> None:
    """paho logs ``Sending CONNECT … client_id=b'…'`` at DEBUG (the bridge's --debug-modbus), on
    whatever logger it was given (``paho``, ``paho.bridge``)."""
    cid = bridge_client_id("2611000042", "bridge", "pw")
    out = io.StringIO()
    configure_logging(debug=True, fmt="json", stream=out)
    try:
        logging.getLogger("paho.bridge").debug("Sending CONNECT (u%d) client_id=%s", 1, cid.encode())
        logging.getLogger("paho").debug("Received CONNACK (%s)", "fetch-3f9a0c2d41e7")
    finally:
        logging.getLogger().handlers.clear()
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert [
        "Sending CONNECT (u1) client_id=b'bridge-2611000042-…'",
        "Received CONNACK (fetch-3f9a0c2d41e7)",
    ] == events
    assert "bridge-2611000042-…" == hide_bridge_ids(cid)
    assert f"x {shown_client_id(cid)} y" == hide_bridge_ids(f"x {cid} y")
    assert "bridge-2611000042" == hide_bridge_ids("bridge-2611000042")
