"""Who may write registers, end to end: every account, every op on every RPC topic, the original's
raw ``$modbus/<N>/set`` and a property's ``/set``, against the bridge on the sim (writes logged).

The broker decides (mosquitto/acl): every RPC account may publish on its own request topic, which
takes reads, queries and pings; only ``admin`` (and the bridge) may publish on the write topics and
on ``$modbus/<N>/set``; ``web`` and ``homeassistant`` may write a property's ``/set``, which the
bridge checks. The bridge refuses a write that arrives on a request topic. Under MQTT 5 the broker
answers a refused PUBLISH "Not authorized", so each attempt's fate is read off its PUBACK, its
reply, and in the end the sim's write log: exactly the writes meant to land are there.
"""

from __future__ import annotations

import http.cookiejar
import itertools
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aurora import rpc

from tests.support import Broker, Collector, MQTTv5, free_port, wait_for
from tests.support.bridge import DEMO_ID as DEVICE
from tests.support.bridge import Bridge
from tests.support.sim import Sim, write_log
from tests.support.web import mqtt_env, web_tool

pytestmark = pytest.mark.integration

USERS = ("bridge", "fetch", "web", "homeassistant", "admin", "healthcheck")
RPC_USERS = {"bridge", "fetch", "web", "admin"}
WRITERS = {"bridge", "admin"}  # raw register writes
SETTERS = {"bridge", "web", "homeassistant", "admin"}  # a property's /set, checked by the bridge
ROOT = f"homie/{DEVICE}"
BASE = f"{ROOT}/$modbus"
REGISTER = 401  # DHW set point: raw 1000..1400 are all legal, so each attempt writes its own value
PROPERTY_SET = f"{ROOT}/dhw/set-point/set"
REPLY_S = 15.0
VALUES = itertools.count(1001)


@dataclass
class Stack:
    broker: Broker
    writes: Path

    def written(self) -> list[int]:
        return [value for address, value in write_log(self.writes) if address == REGISTER]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("write-rights")
    writes = tmp / "writes.log"
    with (
        Broker.start(tmp) as broker,
        Sim.start(tmp, "--tcp", "127.0.0.1:0", "--no-drift", "--write-log", str(writes)) as sim,
        Bridge.start(tmp, broker, sim.url),
    ):
        yield Stack(broker, writes)


@dataclass
class Account:
    """One MQTT 5 client of ``user``: PUBACK reasons by mid, replies on its own response topic."""

    broker: Broker
    user: str
    cid: str = field(default_factory=lambda: "")
    acks: dict[int, str] = field(default_factory=dict)
    replies: list[dict[str, Any]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.cid = f"{self.user}-{uuid.uuid4().hex[:12]}"
        self.client = self.broker.client(self.user, self.cid, MQTTv5)
        self.client.on_publish = self._on_publish
        self.response = rpc.response_topic(BASE, self.user, self.cid)
        Collector(self.client, self.response)  # subscribes and waits for the SUBACK
        self.client.on_message = self._on_message

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: Any, _p: object) -> None:
        with self.cond:
            self.acks[mid] = "refused" if reason.is_failure else "accepted"
            self.cond.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.response:
            with self.cond:
                self.replies.append(json.loads(msg.payload))
                self.cond.notify_all()

    def send(self, topic: str, payload: str | bytes) -> str:
        """Publish at QoS 1; whether the broker accepted it (its PUBACK under MQTT 5)."""
        info = self.client.publish(topic, payload, qos=1)
        with self.cond:
            if not self.cond.wait_for(lambda: info.mid in self.acks, REPLY_S):
                raise TimeoutError(f"no PUBACK for {topic}")
            return self.acks[info.mid]

    def reply(self, request_id: str) -> dict[str, Any]:
        with self.cond:
            found = self.cond.wait_for(
                lambda: [r for r in self.replies if r.get("id") == request_id], REPLY_S
            )
            if not found:
                raise TimeoutError(f"no reply to {request_id} for {self.user}")
            return found[0]


def _bodies(value: int) -> dict[str, dict[str, Any]]:
    return {
        "ping": {"op": "ping"},
        "read": {"op": "read", "registers": [REGISTER]},
        "query": {"op": "query", "query": str(REGISTER)},
        "write": {"op": "write", "writes": [[REGISTER, value]]},
    }


@pytest.mark.parametrize("user", USERS)
def test_every_op_on_every_topic_writes_only_where_the_account_may(stack: Stack, user: str) -> None:
    account = Account(stack.broker, user)
    before = len(stack.written())
    meant: list[int] = []  # values whose write must land, in order
    barred: list[int] = []  # values whose write must not
    outcome: dict[str, tuple[str, str | None]] = {}
    for kind in rpc.REQUEST_KINDS:
        topic = f"{BASE}/{kind}/{user}/{account.cid}"
        for op, body in _bodies(next(VALUES)).items():
            value = int(body["writes"][0][1]) if op == "write" else None
            rid = f"{kind}-{op}"
            accepted = account.send(topic, json.dumps({"id": rid, **body}))
            code = None
            if accepted == "accepted" and user in RPC_USERS | WRITERS:
                reply = account.reply(rid)
                code = "ok" if reply["ok"] else reply["error"]["code"]
            outcome[rid] = (accepted, code)
            if value is not None:
                (meant if (kind == rpc.WRITE and user in WRITERS) else barred).append(value)
    raw = next(VALUES)
    outcome["legacy raw set"] = (account.send(f"{BASE}/{REGISTER}/set", str(raw)), None)
    (meant if user in WRITERS else barred).append(raw)
    prop = next(VALUES)
    outcome["property /set"] = (account.send(PROPERTY_SET, f"{prop / 10:.1f}"), None)
    (meant if user in SETTERS else barred).append(prop)

    rpc_user, writer = user in RPC_USERS, user in WRITERS
    on_request = ("accepted", "ok") if rpc_user else ("refused", None)
    on_write = ("accepted", "ok") if writer else ("refused", None)
    expected = {
        "request-ping": on_request,
        "request-read": on_request,
        "request-query": on_request,
        # Even an account that may write gets no write through a request topic: the bridge refuses.
        "request-write": ("accepted", "write_refused") if rpc_user else ("refused", None),
        "write-ping": on_write,
        "write-read": on_write,
        "write-query": on_write,
        "write-write": on_write,
        "legacy raw set": ("accepted" if writer else "refused", None),
        "property /set": ("accepted" if user in SETTERS else "refused", None),
    }
    assert expected == outcome

    # Barrier: admin's raw write is handled after everything above reached the bridge.
    marker = next(VALUES)
    Account(stack.broker, "admin").send(f"{BASE}/{REGISTER}/set", str(marker))
    wanted = {*meant, marker}
    wait_for(lambda: wanted <= set(stack.written()), REPLY_S, f"the writes {sorted(wanted)} in the sim's log")
    landed = stack.written()[before:]
    assert sorted(wanted) == sorted(landed), f"{user}: {landed}"  # each once, and nothing barred
    assert not set(barred) & set(stack.written())


def test_the_web_tools_awl_putregs_through_the_broker_is_refused_and_writes_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    """The AWL endpoint writes raw registers; through the broker the ``web`` account may not, so
    the page gets the refusal in ``err`` and the sim nothing (in direct mode it still writes)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [stack.broker.url("web", BASE)]
    with web_tool(args, port=port, env=mqtt_env(stack.broker), log=tmp_path / "web.log"):
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        form = urllib.parse.urlencode({"password": stack.broker.password("web-ui"), "next": "/ui/"}).encode()
        with opener.open(urllib.request.Request(f"{url}/login", data=form), timeout=10):
            pass
        value = next(VALUES)
        request = urllib.request.Request(
            f"{url}/request.cgi?cmd=putregs&id=7&regs={REGISTER},{value}", headers={"Origin": url}
        )
        try:
            with opener.open(request, timeout=30) as reply:
                status, text = reply.status, reply.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        assert 400 == status, text
        assert text.startswith("cmd=putregs&id=7&err="), text
        assert "may not write registers" in urllib.parse.unquote_plus(text)
    marker = next(VALUES)
    Account(stack.broker, "admin").send(f"{BASE}/{REGISTER}/set", str(marker))
    wait_for(lambda: marker in stack.written(), REPLY_S, "the barrier write in the sim's log")
    assert value not in stack.written()
