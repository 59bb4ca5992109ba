"""``MqttConnection``: one paho client, and the rules of paho kept in one place.

Every service talks to the broker through this: the bridge's session (``bridge/publisher.py``),
the ``$modbus`` client (``aurora.rpc_client``) and the web's live feed (``web/feed.py``). It owns:

* connecting, either at once with one typed error (``connect``: aurora's error tree) or in the
  background, paho retrying with backoff (``start``), over TCP or WebSockets, with TLS or not;
* subscribing and waiting for the SUBACK (``subscribe``), and subscriptions kept across
  reconnects (``keep``: a clean session forgets them);
* publishing with the broker's acknowledgement as a future (``publish``: an MQTT 5 refusal, the
  ACL's, fails it with ``PublishRefused``);
* finding the devices whose retained ``$state`` the broker holds (``discover``);
* TCP_NODELAY on every socket paho opens, plain, TLS or WebSocket;
* whether paho's network thread still runs, and starting it again.

paho calls back on its own thread (docs/architecture.md#threads); the hooks here (``on_connected``
and the others) run there too and must not block.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..errors import BrokerError, BusError, PublishRefused, UsageError
from ..logs import get_logger
from .failures import closed_before_connack, connect_failure, login_refused
from .settings import DEVICE_PREFIX, MqttSettings

__all__ = [
    "KEEPALIVE_S",
    "MqttConnection",
    "choose_device",
    "make_client",
    "set_no_delay",
]

log = get_logger(__name__)  # structlog only once something logs (issue 15)

KEEPALIVE_S = 30
RETRY_REFUSED_S = 0.5  # connect(retry_refused=True): a broker started with us may not listen yet
_KEPT_ACKS = 256  # SUBACKs and early PUBACKs kept for a waiter: bounded, nobody may wait forever
DISCOVERY_BARRIER = "$aurora-discovery-barrier"

MessageHook = Callable[[mqtt.MQTTMessage], None]


def make_client(
    settings: MqttSettings,
    client_id: str,
    *,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    clean_session: bool | None = None,
) -> mqtt.Client:
    """A paho 2.x client (VERSION2 callbacks), transport, credentials and TLS set; not connected.

    ``clean_session`` is MQTT 3.1.1's (False: a persistent session); MQTT 5 sets it per connect.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        transport=settings.transport,
        reconnect_on_failure=True,
        clean_session=clean_session if protocol != MQTTProtocolVersion.MQTTv5 else None,
    )
    client.suppress_exceptions = True  # a bug in one callback must not kill the network thread
    client.enable_logger(logging.getLogger("paho"))
    if settings.transport == "websockets":
        client.ws_set_options(path=settings.ws_path)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        context = ssl.create_default_context(cafile=settings.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        client.tls_set_context(context)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.on_socket_open = _on_socket_open
    return client


def _on_socket_open(client: mqtt.Client, userdata: object, sock: object) -> None:
    set_no_delay(sock)


def _with_socket(sock: object, action: Callable[[socket.socket], None]) -> None:
    """Run ``action`` on the OS socket under ``sock``: a socket, a TLS socket, or paho's
    WebSocket wrapper, which is none but has the socket's file descriptor. Socket options and
    shutdown belong to the socket, not the descriptor, so a duplicate reaches the same one."""
    with contextlib.suppress(OSError, ValueError):
        if isinstance(sock, socket.socket):  # ssl.SSLSocket too
            action(sock)
            return
        fileno = getattr(sock, "fileno", None)
        if callable(fileno):
            with socket.fromfd(fileno(), socket.AF_INET, socket.SOCK_STREAM) as dup:
                action(dup)


def set_no_delay(sock: object) -> None:
    """TCP_NODELAY on whatever socket paho opened (not for a Unix socket, which has no Nagle).

    Without it a QoS 1 request/response costs 44-88 ms of Nagle and delayed ACK instead of
    ~1 ms on loopback (docs/architecture.md#broker)."""
    _with_socket(sock, lambda s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))


def _failed(reason: object) -> bool:
    return bool(getattr(reason, "is_failure", False))


def choose_device(found: Mapping[str, str], settings: MqttSettings) -> str:
    """The one ``aurora-*`` device of ``found`` (device → ``$state``, from ``discover``).

    BusError when there is none (the bridge is not running, or the account may not see it),
    UsageError when there are several and the user must name one.
    """
    devices = sorted(d for d in found if d.startswith(DEVICE_PREFIX))
    if len(devices) == 1:
        return devices[0]
    where = f"{settings.scheme}://{settings.where}"
    if not devices:
        raise BusError(
            f"no aurora-* device under {settings.root}/ on {where} (is the bridge running, and may "
            f"{settings.username} read {settings.root}/+/$state?)"
        )
    listed = ", ".join(f"{d} ({found[d]})" for d in devices)
    example = (
        f"--mqtt-topic {settings.root}/{devices[0]}/$modbus"
        if settings.transport == "websockets"
        else f"{where}/{settings.root}/{devices[0]}/$modbus"
    )
    raise UsageError(f"{len(devices)} aurora devices on {where}: {listed}; name one, e.g. {example}")


class _Discovery:
    __slots__ = ("live", "root", "states")

    def __init__(self, root: str) -> None:
        self.root = root
        self.states: dict[str, str] = {}
        self.live = threading.Event()  # a $state published now


class _LostEarly(Exception):
    """The connection closed before its CONNACK was read while SUBSCRIBEs went with CONNECT."""


class MqttConnection:
    """One paho client with its rules: see the module's docstring.

    ``persistent``: a session the broker keeps while we are away (MQTT 5: ``session_expiry_s``;
    3.1.1: no clean session). ``will``: (topic, payload) published retained at QoS 1 by the
    broker when we vanish. ``max_queued``: messages paho keeps while disconnected (0: no bound).
    ``network_thread`` False: no paho thread; whoever waits (``connect``, ``subscribe``, ``wait``)
    drives paho's loop itself, so a packet is written by the thread that queues it and a reply
    read by the one waiting for it (a one-shot tool: no thread wake-ups on the way, issue 15).
    Then there is no reconnecting and no keepalive between waits, and one thread at a time uses it.
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        persistent: bool = False,
        session_expiry_s: int = 0,
        will: tuple[str, str] | None = None,
        max_queued: int = 0,
        logger: logging.Logger | None = None,
        client_factory: Callable[..., mqtt.Client] = make_client,
        network_thread: bool = True,
    ) -> None:
        self.settings = settings
        self.network_thread = network_thread
        self.client_id = client_id
        self.protocol = protocol
        self._persistent = persistent
        self._session_expiry_s = session_expiry_s
        self._logger = logger or logging.getLogger("paho")
        extra = {"clean_session": False} if persistent and protocol != MQTTProtocolVersion.MQTTv5 else {}
        self.client = client_factory(settings, client_id, protocol=protocol, **extra)
        self.client.enable_logger(self._logger)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        if max_queued:
            self.client.max_queued_messages_set(max_queued)
        self._cond = threading.Condition()
        self._connack: object | None = None  # the first CONNACK's reason
        self._early_close: object | None = None  # a disconnect before any CONNACK
        self._answered = False  # a CONNACK or an early close came
        self._ever_connected = False
        self._connected = threading.Event()
        self._closing = False
        self._background = False  # start(): paho's own retries, failures go to on_connect_failed
        self._attempt_answered = False  # a CONNACK came on the current connection
        self._subacks: OrderedDict[int, list[Any]] = OrderedDict()
        self._pending: dict[int, Future[None]] = {}
        self._early_acks: OrderedDict[int, object] = OrderedDict()
        self._kept: dict[str, int] = {}  # filter -> QoS, subscribed again on every connect
        self._discovery: _Discovery | None = None
        self._thread: threading.Thread | None = None
        self._connect_error: BaseException | None = None
        # Hooks, all on paho's thread: must not block.
        self.on_connected: Callable[[bool, bool], None] | None = None  # (first, session_present)
        self.on_disconnected: Callable[[str], None] | None = None  # after a good connect only
        self.on_connect_failed: Callable[[BrokerError], None] | None = None  # start()'s retries
        self.on_message: MessageHook | None = None
        self.on_published: Callable[[object], None] | None = None  # every PUBACK's reason
        paho_reconnect = self.client.reconnect

        def reconnect() -> MQTTErrorCode:
            # paho's on_connect_fail is told nothing: keep the reason for it
            try:
                return paho_reconnect()
            except OSError as err:
                self._connect_error = err
                raise

        self.client.reconnect = reconnect  # type: ignore[method-assign]
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # ------------------------------------------------------------ connecting

    def _connect_options(self) -> dict[str, Any]:
        if self.protocol != MQTTProtocolVersion.MQTTv5 or not self._persistent:
            return {}
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry_s
        # Never a clean start: mosquitto persists (across its own restarts) only sessions begun
        # without one.
        return {"clean_start": False, "properties": props}

    def connect(
        self,
        timeout_s: float,
        *,
        retry_refused: bool = False,
        stop: threading.Event | None = None,
        subscribe: Sequence[tuple[str, int, bool]] = (),
    ) -> None:
        """Connect and log in now, or raise the one error that says why (BrokerError,
        LoginRefused). ``retry_refused``: a refused TCP connection is tried again until
        ``timeout_s`` (a broker started at the same time may not listen yet). paho then keeps
        the connection, reconnecting by itself.

        ``subscribe``: (filter, QoS, keep) sent right behind CONNECT, before its CONNACK (MQTT
        lets a client do so; the broker handles them in order, after the login), each checked
        as ``subscribe`` does: one round trip for all instead of one each (issue 15)."""
        deadline = time.monotonic() + timeout_s
        try:
            self._connect(deadline, timeout_s, retry_refused, stop, subscribe)
        except _LostEarly:
            # mosquitto closes a refused login right after its CONNACK, and a SUBSCRIBE written
            # then may break the connection before that CONNACK is read: step by step, for the reason
            self.client.loop_stop()
            with self._cond:
                self._answered, self._connack, self._early_close = False, None, None
            self._connect(deadline, timeout_s, retry_refused, stop, ())
            for topic, qos, keep in subscribe:
                self.subscribe(topic, qos, timeout_s=max(0.0, deadline - time.monotonic()), keep=keep)

    def _connect(
        self,
        deadline: float,
        timeout_s: float,
        retry_refused: bool,
        stop: threading.Event | None,
        subscribe: Sequence[tuple[str, int, bool]],
    ) -> None:
        # paho would log every failed attempt; until the broker accepts us the error raised says it all
        self.client.disable_logger()
        while True:
            try:
                self.client.connect(
                    self.settings.host, self.settings.port, keepalive=KEEPALIVE_S, **self._connect_options()
                )
                break
            except ConnectionRefusedError as err:
                if not retry_refused or time.monotonic() + RETRY_REFUSED_S > deadline:
                    raise connect_failure(self.settings, err) from err
                if stop is not None and stop.wait(RETRY_REFUSED_S):
                    raise connect_failure(self.settings, err) from err
                if stop is None:
                    time.sleep(RETRY_REFUSED_S)
            except OSError as err:  # ssl.SSLError and paho's WebSocket errors are OSErrors
                raise connect_failure(self.settings, err) from err
            except ValueError as err:  # paho's checks of host and port
                raise BrokerError(f"{self.settings.url}: {err}") from err
        try:
            sent: list[tuple[int, str, int, bool]] = []
            for topic, qos, keep in subscribe:
                # Before paho's thread runs, paho writes each packet from this thread at once
                result, mid = self.client.subscribe([(topic, qos)])
                if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
                    raise _LostEarly()
                sent.append((mid, topic, qos, keep))
            self._start_loop()
            if not self._until(lambda: self._answered, max(0.0, deadline - time.monotonic())):
                raise BrokerError(
                    f"{self.settings.url}: no answer from the broker at {self.settings.where} "
                    f"within {timeout_s:g} s"
                )
            with self._cond:
                reason, closed = self._connack, self._early_close
            if reason is None:
                if subscribe:
                    raise _LostEarly()
                raise closed_before_connack(self.settings, closed)
            if _failed(reason):
                raise login_refused(self.settings, reason)
            for mid, topic, qos, keep in sent:
                self._await_suback(mid, [topic], max(0.0, deadline - time.monotonic()))
                if keep:
                    with self._cond:
                        self._kept[topic] = qos
        except _LostEarly:
            raise
        except BaseException:
            self.close()
            raise
        self.client.enable_logger(self._logger)

    def start(self) -> None:
        """Connect in the background; paho retries forever with backoff (never raises here).
        Each failure goes to ``on_connect_failed`` (a connection closed before the broker's
        CONNACK too: mqtt:// to a TLS port); each success to ``on_connected``."""
        self._background = True
        self.client.connect_async(
            self.settings.host, self.settings.port, keepalive=KEEPALIVE_S, **self._connect_options()
        )
        self._start_loop()

    def _start_loop(self) -> None:
        if not self.network_thread:
            return
        # paho keeps its thread to itself; its name (with our unique client id) finds it
        name = f"paho-mqtt-client-{self.client_id}"
        before = set(threading.enumerate())
        self.client.loop_start()
        self._thread = next((t for t in threading.enumerate() if t not in before and t.name == name), None)

    def _until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``predicate`` holds (paho's callbacks make it so): on our condition while
        paho's thread runs them, else driving paho's loop here. False after ``timeout_s``, or
        (without the thread) once the connection is gone and nothing more can come."""
        if self.network_thread:
            with self._cond:
                return self._cond.wait_for(predicate, timeout_s)
        deadline = time.monotonic() + timeout_s
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.client.loop(timeout=min(left, 1.0)) != mqtt.MQTT_ERR_SUCCESS:
                return predicate()  # disconnected: on_disconnect has run
        return True

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """``event.wait(timeout_s)``, driving paho's loop meanwhile when there is no paho thread."""
        if self.network_thread:
            return event.wait(timeout_s)
        return self._until(event.is_set, timeout_s)

    def network_alive(self) -> bool:
        """Whether paho's network thread still runs (it can die on an unexpected error, paho #785)."""
        return self._thread is not None and self._thread.is_alive()

    def restart_loop(self) -> None:
        """Start paho's network thread again after it died; it reconnects in the background."""
        self.client.loop_stop()
        self.start()

    def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Whether the session is up (waits up to ``timeout_s``)."""
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        """Whether the last CONNACK was a success and no disconnect followed."""
        return self._connected.is_set()

    def kick(self) -> None:
        """Break a connection that looks alive but acknowledges nothing; paho reconnects itself."""
        _with_socket(self.client.socket(), lambda s: s.shutdown(socket.SHUT_RDWR))

    def close(self) -> None:
        """Fail what still waits for an acknowledgement, disconnect, stop paho's thread (idempotent)."""
        self._closing = True
        with self._cond:
            pending, self._pending = list(self._pending.values()), {}
        for future in pending:
            _settle(future, error=BrokerError(f"{self.settings.url}: the connection was closed"))
        with contextlib.suppress(Exception):
            self.client.disable_logger()  # paho logs "not connected" at ERROR on a deliberate close
            self.client.disconnect()
        with contextlib.suppress(Exception):
            self.client.loop_stop()

    # ------------------------------------------------------------ subscribing

    def subscribe(
        self, filters: str | Sequence[str], qos: int = 1, *, timeout_s: float = 10.0, keep: bool = False
    ) -> None:
        """Subscribe and wait for the SUBACK; BrokerError when it does not come or refuses.
        ``keep``: subscribed again after every reconnect."""
        topics = [filters] if isinstance(filters, str) else list(filters)
        if keep:
            with self._cond:
                self._kept.update(dict.fromkeys(topics, qos))
        self._await_suback(self._send_subscribe(topics, qos), topics, timeout_s)

    def _send_subscribe(self, topics: list[str], qos: int) -> int:
        result, mid = self.client.subscribe([(f, qos) for f in topics])
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise BrokerError(
                f"{self.settings.url}: cannot subscribe to {', '.join(topics)}: {mqtt.error_string(result)}"
            )
        return mid

    def _await_suback(self, mid: int, topics: list[str], timeout_s: float) -> None:
        if not self._until(lambda: mid in self._subacks, timeout_s):
            raise BrokerError(f"{self.settings.url}: no SUBACK for {', '.join(topics)}")
        with self._cond:
            codes = self._subacks.pop(mid)
        refused = [str(c) for c in codes if _failed(c)]
        if refused:
            raise BrokerError(
                f"{self.settings.url}: subscription to {', '.join(topics)} refused: {refused[0]}"
            )

    def keep(self, filters: Iterable[str], qos: int = 1) -> None:
        """Subscribe now (when connected, without waiting) and after every reconnect."""
        topics = list(filters)
        with self._cond:
            self._kept.update(dict.fromkeys(topics, qos))
        if topics and self.connected:
            self.client.subscribe([(f, qos) for f in topics])

    def forget(self, filters: Iterable[str]) -> None:
        """Unsubscribe, and no longer subscribe after a reconnect."""
        topics = list(filters)
        with self._cond:
            for topic in topics:
                self._kept.pop(topic, None)
        if topics:
            self.client.unsubscribe(topics)

    def discover(
        self, root: str, *, timeout_s: float = 10.0, wait_s: float = 0.0, stop: threading.Event | None = None
    ) -> dict[str, str]:
        """Every device with a retained ``$state`` under ``root``: {device: state}.

        The broker queues a subscription's retained messages before it handles the next
        SUBSCRIBE, so the SUBACK of a second one means every retained ``$state`` has arrived
        (QoS 0: no in-flight window holds them back). ``wait_s``: when none is there, wait as
        long for a device to publish its ``$state`` (a bridge starting after us), then look again.
        """
        states, barrier = f"{root}/+/$state", f"{root}/{DISCOVERY_BARRIER}/$state"
        discovery = _Discovery(root)
        with self._cond:
            self._discovery = discovery
        until = time.monotonic() + wait_s
        try:
            while True:
                discovery.live.clear()
                self.subscribe(states, 0, timeout_s=timeout_s)
                self.subscribe(barrier, 0, timeout_s=timeout_s)
                with self._cond:
                    found = dict(discovery.states)
                if found:
                    return found
                # none yet: wait for one to publish its $state, looking at ``stop`` now and then
                while not self.wait(discovery.live, max(0.0, min(until - time.monotonic(), 0.5))):
                    if time.monotonic() >= until or (stop is not None and stop.is_set()):
                        return found
        finally:
            with self._cond:
                self._discovery = None
            with contextlib.suppress(Exception):
                self.client.unsubscribe([states, barrier])

    # ------------------------------------------------------------ publishing

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
        offline: Literal["queue", "fail"] = "queue",
    ) -> Future[None]:
        """Queue one message (any thread, never blocks); the future settles on the broker's
        acknowledgement: PublishRefused for an MQTT 5 refusal (the ACL), BrokerError when paho
        cannot queue it. ``offline="fail"``: while disconnected, fail at once instead of sending
        after the reconnect (a command whose sender is told it failed must not run later)."""
        future: Future[None] = Future()
        if offline == "fail" and not self.connected:
            _settle(future, error=BrokerError(f"{self.settings.url}: not connected to the broker"))
            return future
        # Never hold our lock across paho: its thread holds paho's own lock when it calls on_publish
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN) or (
            info.rc == mqtt.MQTT_ERR_NO_CONN and qos == 0
        ):
            _settle(future, error=BrokerError(f"{self.settings.url}: {mqtt.error_string(info.rc)}"))
            return future
        with self._cond:
            if info.mid not in self._early_acks:
                self._pending[info.mid] = future
                return future
            reason = self._early_acks.pop(info.mid)  # acknowledged before publish() returned
        self._settle_ack(future, reason, topic)
        return future

    def _settle_ack(self, future: Future[None], reason: object, topic: str | None) -> None:
        if _failed(reason):
            _settle(
                future,
                error=PublishRefused(f"the broker refused the message on {topic}: {reason}", str(reason)),
            )
        else:
            _settle(future)

    # ------------------------------------------------------------ paho callbacks (paho's thread)

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason: object, props: object
    ) -> None:
        with self._cond:
            self._attempt_answered = True
            if not self._answered:
                self._connack, self._answered = reason, True
                self._cond.notify_all()
            kept = list(self._kept.items())
        if _failed(reason):
            if self.on_connect_failed is not None:
                self.on_connect_failed(login_refused(self.settings, reason))
            return
        first = not self._ever_connected
        self._ever_connected = True
        if kept:  # a clean session forgot them (R5's lesson)
            client.subscribe(kept)
        self._connected.set()
        if self.on_connected is not None:
            self.on_connected(first, bool(getattr(flags, "session_present", False)))

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        err, self._connect_error = self._connect_error, None
        if self.on_connect_failed is not None:
            self.on_connect_failed(connect_failure(self.settings, err))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        with self._cond:
            answered, self._attempt_answered = self._attempt_answered, False
            if not self._answered:
                self._early_close, self._answered = reason, True
                self._cond.notify_all()
        if was and not self._closing and self.on_disconnected is not None:
            self.on_disconnected(str(reason))
        elif not answered and self._background and not self._closing and self.on_connect_failed is not None:
            # closed before any CONNACK: paho calls nothing else, and says only "failed to receive"
            self.on_connect_failed(closed_before_connack(self.settings, reason))

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list[Any], props: object
    ) -> None:
        with self._cond:
            self._subacks[mid] = codes
            while len(self._subacks) > _KEPT_ACKS:
                self._subacks.popitem(last=False)
            self._cond.notify_all()
        for code in codes:
            if _failed(code):
                log.error("mqtt_subscribe_refused", broker=self.settings.url, reason=str(code))

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object
    ) -> None:
        with self._cond:
            future = self._pending.pop(mid, None)
            if future is None:
                self._early_acks[mid] = reason
                while len(self._early_acks) > _KEPT_ACKS:
                    self._early_acks.popitem(last=False)
        if future is not None:
            self._settle_ack(future, reason, None)
        if self.on_published is not None:
            self.on_published(reason)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            discovery = self._discovery
            if discovery is not None and self._discovered(discovery, msg):
                return
            if self.on_message is not None:
                self.on_message(msg)
        except Exception:  # a bad message must never kill paho's thread (docs/architecture.md#threads)
            log.exception("mqtt_message_failed", topic=msg.topic)

    def _discovered(self, discovery: _Discovery, msg: mqtt.MQTTMessage) -> bool:
        parts = msg.topic.split("/")
        if len(parts) != 3 or parts[0] != discovery.root or parts[2] != "$state":
            return False
        if msg.payload and parts[1] != DISCOVERY_BARRIER:
            with self._cond:
                discovery.states[parts[1]] = bytes(msg.payload).decode("utf-8", "replace")
            if not msg.retain:
                discovery.live.set()
        return True


def _settle(future: Future[None], *, error: BaseException | None = None) -> None:
    with contextlib.suppress(InvalidStateError):  # already settled (closed, or a late duplicate)
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
