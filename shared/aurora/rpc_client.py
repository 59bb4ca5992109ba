"""``MqttBus``: the Bus protocol through the bridge's ``$modbus`` JSON requests (``aurora.rpc``).

Each Bus call is one request and one reply on the client's own topics, so any number of tools
share the one serial line the bridge owns. Thread-safe: several requests may be in flight; each
waits on its own slot, matched by MQTT 5 CorrelationData or by the echoed ``id`` (MQTT 3.1.1).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from . import rpc
from .bus import BusStats
from .errors import AuroraError, BusError, BusTimeout, FrameError, PublishRefused, WriteRefused
from .logs import get_logger
from .mqtt import DEVICE_PREFIX, MqttConnection, MqttSettings, choose_device, client_id, resolve_topic
from .query import continued_spans, parse_query, remote_timeout_s

__all__ = ["DEFAULT_TIMEOUT_S", "MqttBus", "resolve_path"]

log = get_logger(__name__)  # structlog only once something logs (issue 15)

DEFAULT_TIMEOUT_S = 10.0  # a reply waits behind a few transactions of ≤2 s each (bus retries included)
DEFAULT_ROOT = "homie"
# A retained $state saying the bridge is gone: no request can be answered, so fail at once.
NOT_RUNNING = {
    "disconnected": ("its bridge was stopped", "start aurora_mqtt_bridge"),
    "lost": ("its bridge vanished from the broker", "it crashed or lost its connection: see its log"),
}


def resolve_path(path: str) -> tuple[str, str | None]:
    """A tool's topic → (Homie root, device or None to discover); see ``aurora.mqtt.resolve_topic``."""
    root, device = resolve_topic(path)
    return root or DEFAULT_ROOT, device


class _Slot:
    """One request waiting for its reply."""

    __slots__ = ("error", "event", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: rpc.Reply | None = None
        self.error: BaseException | None = None

    def settle(self, *, reply: rpc.Reply | None = None, error: BaseException | None = None) -> None:
        if not self.event.is_set():
            self.reply, self.error = reply, error
            self.event.set()


class MqttBus:
    """A Bus whose line is the bridge's, reached through the broker. Use ``MqttBus.connect``."""

    def __init__(
        self,
        connection: MqttConnection,
        *,
        timeout_s: float,
    ) -> None:
        self._mqtt = connection
        self.settings = connection.settings
        self.client_id = connection.client_id
        self.protocol = connection.protocol
        self.timeout_s = timeout_s
        self.stats = BusStats()
        self.root = self.settings.root
        self.device: str | None = None
        self.base = ""
        self.reply_topic = ""
        self.request_topic = ""
        self.write_topic = ""
        self._cond = threading.Condition()
        self._pending: dict[str, _Slot] = {}
        self._closed = False
        self._state_topic: str | None = None  # watched while opening (a named device's $state)
        self._state: str | None = None
        self._heard = False  # a reply came on this connection: the bridge is there
        connection.on_message = self._on_message
        connection.on_disconnected = self._on_disconnected

    # ------------------------------------------------------------ opening

    @classmethod
    def connect(
        cls,
        settings: MqttSettings,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client_prefix: str | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        ping: bool = True,
        network_thread: bool = True,
    ) -> MqttBus:
        """Log in, find the device (the only ``aurora-*`` one when the settings name none),
        subscribe to the reply topic and ping the bridge. BusError when the broker or the bridge
        cannot be reached or no device is there, UsageError when several are and none is named.

        ``ping`` False: no round trip to the bridge before the first request (a one-shot tool's
        first request tells as much); a retained ``$state`` saying the bridge is gone still fails
        here, and a first request nothing answers fails with the same BusError a ping would.
        ``network_thread`` False: no paho thread, each request drives paho itself
        (``MqttConnection``): for one thread at a time, as a serial port's bus is."""
        # The ACL confines client "fetch-…" of user fetch to …/request/fetch/fetch-… and
        # …/response/fetch/fetch-… (mosquitto/README.md); only writers may use …/write/….
        cid = client_id(client_prefix or settings.username or "aurora")
        connection = MqttConnection(settings, cid, protocol=protocol, network_thread=network_thread)
        bus = cls(connection, timeout_s=timeout_s)
        try:
            bus._open(settings.device, ping=ping)
        except BaseException:
            bus.close()
            raise
        return bus

    def _open(self, device: str | None, *, ping: bool = True) -> None:
        deadline = time.monotonic() + self.timeout_s
        if device is None:
            self._mqtt.connect(self.timeout_s)
            found = self._mqtt.discover(self.root, timeout_s=_left(deadline))
            device = choose_device(found, self.settings)
            log.info("device_discovered", device=device, state=found[device])
            self._state = found[device]
            self._use(device)
            self._mqtt.subscribe(self.reply_topic, 1, timeout_s=_left(deadline), keep=True)
        else:
            self._use(device)
            # The retained $state is delivered before the broker handles the next SUBSCRIBE,
            # so once the reply topic's SUBACK is in, it has arrived if there is one. Both are
            # sent with CONNECT: one round trip opens the bus.
            self._state_topic = f"{self.root}/{device}/$state"
            subscriptions = [(self._state_topic, 0, False), (self.reply_topic, 1, True)]
            self._mqtt.connect(self.timeout_s, subscribe=subscriptions)
        try:
            gone = self._not_running()
            if gone is not None:
                raise gone
            if ping:
                self.request({"op": "ping"}, timeout_s=max(_left(deadline), 0.5))
        finally:
            if self._state_topic is not None:
                self._mqtt.forget([self._state_topic])
                self._state_topic = None

    def _use(self, device: str) -> None:
        if not device.startswith(DEVICE_PREFIX):
            log.warning("not_an_aurora_device", device=device)
        self.device = device
        self.base = rpc.modbus_base(f"{self.root}/{device}")
        user = rpc.topic_user(self.settings.username)
        self.reply_topic = rpc.response_topic(self.base, user, self.client_id)
        self.request_topic = rpc.request_topic(self.base, user, self.client_id)
        self.write_topic = rpc.write_topic(self.base, user, self.client_id)

    def _unanswered(self, wait_s: float) -> BusError:
        """A timeout while the bridge has answered nothing on this connection: not worth another
        attempt (it would wait as long again), and the likely causes named."""
        return BusError(
            f"no answer from the bridge of {self.device} on {self.request_topic} within "
            f"{wait_s:g} s: is aurora_mqtt_bridge running, and does the broker's ACL let "
            f"{self.settings.username} use it?"
        )

    def _not_running(self) -> BusError | None:
        """The error to fail with when the device's $state says its bridge is gone, else None."""
        state = self._state
        if state not in NOT_RUNNING:
            return None
        what, advice = NOT_RUNNING[state]
        return BusError(
            f"the heat pump {self.device} is not connected: {what} ($state {state} on "
            f"{self.settings.scheme}://{self.settings.where}); {advice}"
        )

    # ------------------------------------------------------------ paho callbacks (network thread)

    def _on_disconnected(self, reason: str) -> None:
        if self._closed:
            return
        log.warning("mqtt_disconnected", broker=self.settings.url, reason=reason)
        # Replies published while we are away are lost (clean session): fail the waiting requests now.
        self._fail_all(BusError(f"{self.settings.url}: lost the connection to the broker ({reason})"))

    def _refused(self, reason: str, topic: str) -> AuroraError:
        if topic == self.write_topic:
            return WriteRefused(
                f"the broker refused the write on {topic}: {reason} (user {self.settings.username} may "
                "not write registers through the broker; settings go through the properties' /set topics)"
            )
        return PublishRefused(
            f"the broker refused the request on {topic}: {reason} (the ACL lets each user publish "
            f"only on …/request/<user>/<its own client id>)",
            reason,
        )

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        if self._state_topic is not None and msg.topic == self._state_topic:
            self._state = bytes(msg.payload).decode("utf-8", "replace")
            gone = self._not_running()
            if gone is not None:  # the bridge stopped while we waited for its answer
                self._fail_all(gone)
            return
        if msg.topic != self.reply_topic:
            return
        try:
            reply = rpc.parse_reply(bytes(msg.payload))
        except FrameError as err:
            log.warning("bad_reply", error=str(err))
            return
        self._heard = True
        correlation = getattr(getattr(msg, "properties", None), "CorrelationData", None)
        key = correlation.decode("ascii", "replace") if isinstance(correlation, bytes) else reply.id
        with self._cond:
            slot = self._pending.get(str(key)) if key is not None else None
        if slot is None:
            log.debug("late_reply", request_id=reply.id)  # one we stopped waiting for
            return
        slot.settle(reply=reply)

    def _fail_all(self, err: BaseException) -> None:
        with self._cond:
            slots = list(self._pending.values())
        for slot in slots:
            slot.settle(error=err)

    # ------------------------------------------------------------ requests

    def request(self, body: Mapping[str, Any], *, timeout_s: float | None = None) -> rpc.Reply:
        """Send one request (``id`` is added) and wait for its reply; raises the reply's error.

        Writes go to the write topic, everything else to the request topic. BusTimeout when no
        reply comes within ``timeout_s`` (default: the bus's timeout); WriteRefused when the
        broker refuses a write (the account may not write registers).
        """
        if self._closed:
            raise BusError("the MQTT bus is closed")
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        rid = os.urandom(16).hex()  # as random as uuid4, without importing uuid
        payload = rpc.encode({"id": rid, **body})
        properties = None
        if self.protocol == MQTTProtocolVersion.MQTTv5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = self.reply_topic
            properties.CorrelationData = rid.encode("ascii")
            # A request still queued at the broker when we stop waiting must not run later.
            properties.MessageExpiryInterval = max(1, math.ceil(wait_s))
        slot = _Slot()
        with self._cond:
            self._pending[rid] = slot
        started = time.monotonic()
        topic = self.write_topic if body.get("op") == "write" else self.request_topic

        def acknowledged(future: Future[None]) -> None:
            err = future.exception()
            if isinstance(err, PublishRefused):
                slot.settle(error=self._refused(err.reason, topic))
            elif err is not None:
                slot.settle(error=err)

        # Without paho's thread nothing reconnects: a request sent while disconnected fails at once
        offline: Literal["queue", "fail"] = "queue" if self._mqtt.network_thread else "fail"
        try:
            sent = self._mqtt.publish(topic, payload, qos=1, properties=properties, offline=offline)
            sent.add_done_callback(acknowledged)
            answered = self._mqtt.wait(slot.event, wait_s)
            if not answered and not self._mqtt.network_thread and not self._mqtt.connected:
                raise BusError(f"{self.settings.url}: lost the connection to the broker")
            if not answered:
                self.stats.timeouts += 1
                if not self._heard:
                    raise self._unanswered(wait_s)
                raise BusTimeout(
                    f"no reply from the bridge of {self.device} within {wait_s:g} s "
                    f"({body.get('op')} request)"
                )
        finally:
            with self._cond:
                self._pending.pop(rid, None)
        elapsed = time.monotonic() - started
        self.stats.transactions += 1
        self.stats.record_latency(elapsed)
        self.stats.bus_time_s += elapsed
        if slot.error is not None:
            raise slot.error
        reply = slot.reply
        assert reply is not None
        if reply.error is not None:
            if isinstance(reply.error, BusTimeout):
                self.stats.timeouts += 1
            raise reply.error
        return reply

    def _read(self, function: rpc.ReadFunction, items: Sequence[tuple[int, int]]) -> list[int]:
        reply = self.request(rpc.read_body(function, items))
        values = reply.body.get("values")
        expected = sum(n for _, n in items)
        if (
            not isinstance(values, list)
            or len(values) != expected
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0xFFFF for v in values)
        ):
            raise FrameError(f"the bridge answered {expected} registers with {values!r:.80}")
        return values

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[int]:
        """FC 65 at the bridge: (start, count) ranges in one transaction."""
        return self._read("ranges", [(int(s), int(n)) for s, n in ranges])

    def read_registers(self, addresses: Sequence[int]) -> list[int]:
        """FC 66 at the bridge: single addresses in one transaction."""
        return self._read("registers", [(int(a), 1) for a in addresses])

    def read_holding(self, start: int, count: int) -> list[int]:
        """FC 3 at the bridge."""
        return self._read("holding", [(int(start), int(count))])

    def write_register(self, address: int, value: int) -> None:
        """One write; WriteRefused when the bridge's register map does not allow it."""
        self.write_registers([(address, value)])

    def write_registers(self, writes: Sequence[tuple[int, int]], *, readback: bool = False) -> dict[int, int]:
        """Writes in order, all checked by the bridge before the first; the words read back if asked."""
        body: dict[str, Any] = {"op": "write", "writes": [[int(a), int(v)] for a, v in writes]}
        if readback:
            body["readback"] = True
        reply = self.request(body)
        return {int(a): int(v) for a, v in dict(reply.body.get("values", {})).items()}

    def query(
        self,
        text: str,
        *,
        decode: bool = False,
        max_age_s: float | None = None,
        skip_missing: bool = False,
        timeout_s: float | None = None,
    ) -> rpc.QueryAnswer:
        """A whole query in one request (the web UI's register browser): raw words, failures and,
        with ``decode``, names, values and units; words from the poll cache if younger than
        ``max_age_s``."""
        body: dict[str, Any] = {"op": "query", "query": text}
        if decode:
            body["decode"] = True
        if max_age_s is not None:
            body["max_age_s"] = max_age_s
        if skip_missing:
            body["skip_missing"] = True
        if timeout_s is None:
            spans = continued_spans(parse_query(text).spans)
            timeout_s = remote_timeout_s(self.timeout_s, spans, fallback=skip_missing)
        return rpc.query_answer(self.request(body, timeout_s=timeout_s).body)

    def ping(self) -> dict[str, Any]:
        """The bridge's answer to a ping (``device``)."""
        return dict(self.request({"op": "ping"}).body)

    def close(self) -> None:
        """Fail what still waits, disconnect and stop paho's thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._fail_all(BusError("the MQTT bus was closed"))
        self._mqtt.close()


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
