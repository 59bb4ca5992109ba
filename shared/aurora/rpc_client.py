"""``MqttBus``: the Bus protocol through the bridge's ``$modbus`` JSON requests (``aurora.rpc``).

Each Bus call is one request and one reply on the client's own topics, so any number of tools
share the one serial line the bridge owns. Thread-safe: several requests may be in flight; each
waits on its own slot, matched by MQTT 5 CorrelationData or by the echoed ``id`` (MQTT 3.1.1).
"""

from __future__ import annotations

import contextlib
import logging
import math
import ssl
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from . import rpc
from .bus import BusStats
from .errors import AuroraError, BusError, BusTimeout, FrameError, UsageError, WriteRefused
from .logs import get_logger
from .mqtt import (
    MqttSettings,
    client_id,
    closed_before_connack,
    connect_failure,
    login_refused,
    make_client,
)
from .query import parse_query, plan_chunks, with_continuations

__all__ = ["DEFAULT_TIMEOUT_S", "MqttBus", "resolve_path"]

log = get_logger(__name__)  # structlog only once something logs (issue 15)

DEFAULT_TIMEOUT_S = 10.0  # a reply waits behind a few transactions of ≤2 s each (bus retries included)
PER_CHUNK_S = 0.3  # a query chunk: ~0.12 s of line time, and a poll read may go between two
KEEPALIVE_S = 30
DEFAULT_ROOT = "homie"
DEVICE_PREFIX = "aurora-"


def resolve_path(path: str) -> tuple[str, str | None]:
    """The URL path → (Homie root, device or None to discover).

    ``homie/aurora-1/$modbus`` and ``homie/aurora-1`` name a device; ``homie``, ``/`` and ``''``
    leave it to discovery.
    """
    parts = [p for p in path.split("/") if p]
    if parts and parts[-1] == rpc.MODBUS:
        parts.pop()
    if any(c in p for p in parts for c in "+#"):
        raise UsageError(f"{path!r}: a topic path cannot hold + or #")
    if not parts:
        return DEFAULT_ROOT, None
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 2:
        return parts[0], parts[1]
    raise UsageError(f"{path!r}: give the device's topic, e.g. homie/aurora-2611000042/$modbus")


@dataclass(slots=True)
class _Slot:
    """One request waiting for its reply."""

    event: threading.Event = field(default_factory=threading.Event)
    reply: rpc.Reply | None = None
    error: BaseException | None = None

    def settle(self, *, reply: rpc.Reply | None = None, error: BaseException | None = None) -> None:
        if not self.event.is_set():
            self.reply, self.error = reply, error
            self.event.set()


class MqttBus:
    """A Bus whose line is the bridge's, reached through the broker. Use ``MqttBus.connect``."""

    def __init__(
        self,
        client: mqtt.Client,
        settings: MqttSettings,
        cid: str,
        *,
        protocol: MQTTProtocolVersion,
        timeout_s: float,
    ) -> None:
        self._client = client
        self.settings = settings
        self.client_id = cid
        self.protocol = protocol
        self.timeout_s = timeout_s
        self.stats = BusStats()
        self.root = DEFAULT_ROOT
        self.device: str | None = None
        self.base = ""
        self.reply_topic = ""
        self.request_topic = ""
        self.write_topic = ""
        self._cond = threading.Condition()
        self._connack: list[Any] = []
        self._early_close: list[Any] = []  # a disconnect before the first CONNACK
        self._subacks: dict[int, list[Any]] = {}
        self._pending: dict[str, _Slot] = {}
        self._mids: dict[
            int, tuple[str, str]
        ] = {}  # PUBACK mid -> (request id, topic): fail a refusal at once
        self._early_refusals: dict[int, str] = {}
        self._states: dict[str, str] | None = None  # discovery: device -> $state
        self._closed = False
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish

    # ------------------------------------------------------------ opening

    @classmethod
    def connect(
        cls,
        settings: MqttSettings,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client_prefix: str | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    ) -> MqttBus:
        """Log in, find the device (the only ``aurora-*`` one when the URL names none), subscribe
        to the reply topic and ping the bridge. BusError when the broker or the bridge cannot be
        reached or no device is there, UsageError when several are and the URL names none."""
        root, device = resolve_path(settings.path)
        # The ACL confines client "fetch-…" of user fetch to …/request/fetch/fetch-… and
        # …/response/fetch/fetch-… (mosquitto/README.md); only writers may use …/write/….
        cid = client_id(client_prefix or settings.username or "aurora")
        bus = cls(
            make_client(settings, cid, protocol=protocol),
            settings,
            cid,
            protocol=protocol,
            timeout_s=timeout_s,
        )
        bus.root = root
        try:
            bus._open(device)
        except BaseException:
            bus.close()
            raise
        return bus

    def _open(self, device: str | None) -> None:
        deadline = time.monotonic() + self.timeout_s
        # paho would log every failed attempt; until the broker accepts us the one error we raise
        # says it all.
        self._client.disable_logger()
        try:
            self._client.connect(self.settings.host, self.settings.port, keepalive=KEEPALIVE_S)
        except (OSError, ssl.SSLError) as err:
            raise connect_failure(self.settings, err) from err
        self._client.loop_start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._connack or self._early_close, _left(deadline)):
                raise BusError(
                    f"{self.settings.url}: no answer from the broker at {self.settings.host}:"
                    f"{self.settings.port} within {self.timeout_s:g} s"
                )
            reason = self._connack[0] if self._connack else None
            closed = self._early_close[0] if self._early_close else None
        if reason is None:
            raise closed_before_connack(self.settings, closed)
        if getattr(reason, "is_failure", False):
            raise login_refused(self.settings, reason)
        self._client.enable_logger(logging.getLogger("paho"))
        if device is None:
            device = self._discover(deadline)
        if not device.startswith(DEVICE_PREFIX):
            log.warning("not_an_aurora_device", device=device)
        self.device = device
        self.base = rpc.modbus_base(f"{self.root}/{device}")
        user = rpc.topic_user(self.settings.username)
        self.reply_topic = rpc.response_topic(self.base, user, self.client_id)
        self.request_topic = rpc.request_topic(self.base, user, self.client_id)
        self.write_topic = rpc.write_topic(self.base, user, self.client_id)
        self._subscribe(self.reply_topic, 1, deadline)
        try:
            self.request({"op": "ping"}, timeout_s=max(_left(deadline), 0.5))
        except BusTimeout as err:
            raise BusError(
                f"no answer from the bridge of {device} on {self.request_topic} within "
                f"{self.timeout_s:g} s: is aurora_mqtt_bridge running, and does the broker's ACL let "
                f"{self.settings.username} use it?"
            ) from err

    def _subscribe(self, topic_filter: str, qos: int, deadline: float) -> list[Any]:
        result, mid = self._client.subscribe(topic_filter, qos)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise BusError(
                f"{self.settings.url}: cannot subscribe to {topic_filter}: {mqtt.error_string(result)}"
            )
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._subacks, _left(deadline)):
                raise BusError(f"{self.settings.url}: no SUBACK for {topic_filter}")
            codes = self._subacks.pop(mid)
        if any(getattr(c, "is_failure", False) for c in codes):
            raise BusError(f"{self.settings.url}: subscription to {topic_filter} refused: {codes[0]}")
        return codes

    def _discover(self, deadline: float) -> str:
        """The one ``aurora-*`` device with a retained ``$state`` under the root."""
        with self._cond:
            self._states = {}
        states_filter = f"{self.root}/+/$state"
        self._subscribe(states_filter, 0, deadline)
        # The broker queues a subscription's retained messages before it handles our next
        # SUBSCRIBE, so this second SUBACK means every retained $state has arrived (QoS 0: no
        # in-flight window holds them back).
        self._subscribe(f"{self.root}/$aurora-discovery-barrier/$state", 0, deadline)
        self._client.unsubscribe([states_filter, f"{self.root}/$aurora-discovery-barrier/$state"])
        with self._cond:
            found, self._states = self._states or {}, None
        devices = sorted(d for d in found if d.startswith(DEVICE_PREFIX))
        if len(devices) == 1:
            log.info("device_discovered", device=devices[0], state=found[devices[0]])
            return devices[0]
        where = f"{self.settings.url.split('://', 1)[0]}://{self.settings.host}:{self.settings.port}"
        if not devices:
            # Not the user's typo: the bridge is not running (or not allowed to be seen): exit 1.
            raise BusError(
                f"no aurora-* device under {self.root}/ on {where} (is the bridge running, and may "
                f"{self.settings.username} read {states_filter}?)"
            )
        listed = ", ".join(f"{d} ({found[d]})" for d in devices)
        raise UsageError(
            f"{len(devices)} aurora devices on {where}: {listed}; name one, e.g. "
            f"{where}/{self.root}/{devices[0]}/$modbus"
        )

    # ------------------------------------------------------------ paho callbacks (network thread)

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: Any, props: object
    ) -> None:
        with self._cond:
            first = not self._connack
            self._connack.append(reason)
            self._cond.notify_all()
        if not first and not getattr(reason, "is_failure", False) and self.reply_topic:
            client.subscribe(self.reply_topic, 1)  # a clean session forgot it (R5's lesson, client side)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: Any, props: object
    ) -> None:
        if self._closed:
            return
        with self._cond:
            opening = not self._connack or getattr(self._connack[0], "is_failure", False)
            if not self._connack:
                self._early_close.append(reason)
                self._cond.notify_all()
        if opening:
            return  # _open raises the one error that says why
        log.warning("mqtt_disconnected", broker=self.settings.url, reason=str(reason))
        # Replies published while we are away are lost (clean session): fail the waiting requests now.
        self._fail_all(BusError(f"{self.settings.url}: lost the connection to the broker ({reason})"))

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list[Any], props: object
    ) -> None:
        with self._cond:
            self._subacks[mid] = codes
            self._cond.notify_all()

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason: Any, props: object
    ) -> None:
        refused = getattr(reason, "is_failure", False)
        with self._cond:
            sent = self._mids.pop(mid, None)
            if sent is None:
                if refused:
                    self._early_refusals[mid] = str(reason)
                return
            rid, topic = sent
            slot = self._pending.get(rid) if refused else None
        if slot is not None:
            slot.settle(error=self._refused(str(reason), topic))

    def _refused(self, reason: str, topic: str) -> AuroraError:
        if topic == self.write_topic:
            return WriteRefused(
                f"the broker refused the write on {topic}: {reason} (user {self.settings.username} may "
                "not write registers through the broker; settings go through the properties' /set topics)"
            )
        return BusError(
            f"the broker refused the request on {topic}: {reason} (the ACL lets each user publish "
            f"only on …/request/<user>/<its own client id>)"
        )

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            if self._states is not None and msg.retain and msg.topic.endswith("/$state"):
                device = msg.topic[len(self.root) + 1 : -len("/$state")]
                with self._cond:
                    if self._states is not None and msg.payload:
                        self._states[device] = msg.payload.decode("utf-8", "replace")
                return
            if msg.topic != self.reply_topic:
                return
            try:
                reply = rpc.parse_reply(bytes(msg.payload))
            except FrameError as err:
                log.warning("bad_reply", error=str(err))
                return
            correlation = getattr(getattr(msg, "properties", None), "CorrelationData", None)
            key = correlation.decode("ascii", "replace") if isinstance(correlation, bytes) else reply.id
            with self._cond:
                slot = self._pending.get(str(key)) if key is not None else None
            if slot is None:
                log.debug("late_reply", request_id=reply.id)  # one we stopped waiting for
                return
            slot.settle(reply=reply)
        except Exception:  # never let a bad message kill paho's thread
            log.exception("reply_handling_failed")

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
        rid = uuid.uuid4().hex
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
        mid: int | None = None
        try:
            # Never hold our lock across publish: paho calls on_publish under its own lock.
            topic = self.write_topic if body.get("op") == "write" else self.request_topic
            info = self._client.publish(topic, payload, qos=1, properties=properties)
            mid = info.mid
            with self._cond:
                early = self._early_refusals.pop(mid, None)
                if early is None:
                    self._mids[mid] = (rid, topic)
            if early is not None:
                slot.settle(error=self._refused(early, topic))
            if not slot.event.wait(wait_s):
                self.stats.timeouts += 1
                raise BusTimeout(
                    f"no reply from the bridge of {self.device} within {wait_s:g} s "
                    f"({body.get('op')} request)"
                )
        finally:
            with self._cond:
                self._pending.pop(rid, None)
                if mid is not None and self._mids.get(mid, ("",))[0] == rid:
                    del self._mids[mid]  # no PUBACK came (a lost connection)
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
            chunks = len(plan_chunks(with_continuations(parse_query(text).addresses)))
            timeout_s = self.timeout_s + PER_CHUNK_S * chunks
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
        with contextlib.suppress(Exception):
            self._client.disable_logger()  # paho logs "not connected" at ERROR on a deliberate close
            self._client.disconnect()
        with contextlib.suppress(Exception):
            self._client.loop_stop()


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
