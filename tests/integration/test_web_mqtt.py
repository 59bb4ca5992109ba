"""web_aid_tool through the real broker when the bridge is not there yet (compose starts both at
once): it serves its pages at once, finds the device when the bridge appears, and keeps every
secret out of its command line, its log and its answers."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support import Broker, free_port, wait_for
from tests.support.bridge import DEMO_ID as DEVICE
from tests.support.bridge import READY_S, Bridge
from tests.support.sim import Sim
from tests.support.web import mqtt_env, web_tool

pytestmark = pytest.mark.integration


class Session:
    """A logged-in HTTP client (cookies kept), as a script would use the web tool."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        form = urllib.parse.urlencode({"password": password, "next": "/ui/"}).encode()
        with self.opener.open(urllib.request.Request(f"{url}/login", data=form), timeout=10):
            pass

    def text(self, path: str) -> str:
        with self.opener.open(f"{self.url}{path}", timeout=30) as reply:
            return str(reply.read().decode())

    def json(self, path: str) -> dict[str, object]:
        data = json.loads(self.text(path))
        assert isinstance(data, dict)
        return data


def test_a_web_tool_started_before_the_bridge_finds_the_device_when_it_appears(
    tmp_path: Path, broker: Broker
) -> None:
    """No device on the broker yet: the pages answer and say so; the bridge comes; the tree fills."""
    port = free_port()
    log = tmp_path / "web.log"
    env = mqtt_env(broker)
    what = "web_aid_tool's listening line (no bridge yet)"
    with web_tool([broker.url("web")], port=port, env=env, log=log, deadline_s=READY_S, what=what) as web:
        session = Session(f"http://127.0.0.1:{port}", broker.password("web-ui"))
        assert {"device": "", "nodes": []} == {k: session.json("/api/state")[k] for k in ("device", "nodes")}
        assert '"waiting_for_device"' in log.read_text()

        with (
            Sim.start(tmp_path, "--tcp", "127.0.0.1:0") as sim,
            Bridge.start(tmp_path, broker, sim.url, poll=(), ready_deadline_s=None),
        ):

            def ready() -> bool:
                state = session.json("/api/state")
                return state["device"] == DEVICE and state["state"] == "ready" and bool(state["nodes"])

            wait_for(ready, READY_S, f"{DEVICE} ready in the web tool's /api/state")
            config = session.text("/config.cgi")
            assert "AWL ID=2611000042&" in config

        secrets = [broker.password("web"), broker.password("web-ui")]
        cmdline = Path(f"/proc/{web.pid}/cmdline").read_bytes().decode(errors="replace")
        for secret in secrets:
            assert secret not in cmdline
            assert secret not in log.read_text()
            assert secret not in config
