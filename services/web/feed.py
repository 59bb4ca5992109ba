"""The live side in MQTT mode: one paho client (user ``web``) that mirrors ``homie/<dev>/#`` and
publishes the settings page's ``/set`` commands, which the bridge validates (docs/architecture.md#set-path).

paho calls back on its own thread; every change is handed to the event loop, which alone touches
the :class:`HomieMirror`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from aurora.errors import AuroraError, BusError, UsageError
from aurora.mqtt import (
    MqttSettings,
    client_id,
    closed_before_connack,
    connect_failure,
    login_refused,
    make_client,
)

log = structlog.get_logger("aurora.web")

DISCOVERY_S = 2.0  # retained $state topics arrive right after the subscription; then serve anyway
DISCOVERY_GRACE_S = 0.5  # after the first device's retained $state, how long others may follow
# QoS 0 for the tree we display: after a reconnect the bridge republishes its whole description
# while the broker sends the retained tree, and at QoS 1 mosquitto queues at most 1000 messages per
# client and then drops ("Outgoing messages are being dropped"), $state included. A display needs
# no redelivery: a resubscription brings the retained current values anyway.
TREE_QOS = 0
REDISCOVER_S = 30.0  # while no device is known: how often to say so again


class HomieFeed:
    """Subscribes to one device's Homie tree and forwards each message to ``deliver``.

    ``deliver(topic, payload)`` runs on the event loop ``loop``; so does ``on_device(id)`` when the
    device was discovered, before any message of its tree is delivered, and ``on_link(up)`` when
    the broker connection comes or goes (the page then says the values are stale).
    """

    def __init__(
        self,
        settings: MqttSettings,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[str, str], None],
        *,
        on_device: Callable[[str], None] | None = None,
        on_link: Callable[[bool], None] | None = None,
        root: str = "homie",
    ) -> None:
        self.settings = settings
        self.root = root
        self.device: str | None = None
        self._loop = loop
        self._deliver = deliver
        self._on_device = on_device
        self._on_link = on_link
        self._client = make_client(settings, client_id("web"))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._refused: str | None = None
        self._closed_early: str | None = None  # the broker closed before its first CONNACK
        self._ever_connected = False
        self._lock = threading.Lock()
        self._pending: dict[int, Future[None]] = {}
        self._early: dict[int, Any] = {}
        self._found: dict[str, float] = {}

    # ---------------------------------------------------------------- paho thread

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object = None
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._connected.set()
            return
        if not self._ever_connected:
            self._ever_connected = True
            client.enable_logger(logging.getLogger("paho"))  # start() disabled it while connecting
        topic = f"{self.root}/{self.device}/#" if self.device else f"{self.root}/+/$state"
        client.subscribe(topic, qos=TREE_QOS)
        log.info("mqtt_connected", broker=self.settings.url, subscribed=topic)
        self._connected.set()
        self._link(up=True)

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object = None) -> None:
        if not self._ever_connected:
            if self._refused is None:
                self._closed_early = str(reason)
            self._connected.set()  # start() raises the one error that says why
            return
        if not self._stopping.is_set():
            log.warning("mqtt_disconnected", broker=self.settings.url, reason=str(reason))
        self._link(up=False)

    def _link(self, *, up: bool) -> None:
        if self._on_link is not None:
            self._loop.call_soon_threadsafe(self._on_link, up)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        payload = msg.payload.decode("utf-8", errors="replace")
        if self.device is None:
            parts = msg.topic.split("/")
            if len(parts) == 3 and parts[2] == "$state" and payload:
                self._found.setdefault(parts[1], time.monotonic())
            return
        self._loop.call_soon_threadsafe(self._deliver, msg.topic, payload)

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: Any, _p: object = None) -> None:
        with self._lock:
            future = self._pending.pop(mid, None)
            if future is None:
                self._early[mid] = reason  # acknowledged before publish() returned its mid
                return
        _settle(future, reason)

    # ---------------------------------------------------------------- caller's thread

    def start(self, device: str | None, timeout_s: float = 10.0) -> str | None:
        """Connect, find the device if none was named, subscribe to its tree; its id, or None while
        no device has appeared (discovery then goes on in the background)."""
        self.device = device
        self._client.disable_logger()  # each failed attempt would log; the error raised says why
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._client.connect(self.settings.host, self.settings.port, keepalive=30)
                break
            except ConnectionRefusedError as err:
                # A broker started at the same time as us (compose) may not listen yet.
                if time.monotonic() + 0.5 > deadline or self._stopping.wait(0.5):
                    raise connect_failure(self.settings, err) from err
            except (OSError, ssl.SSLError) as err:
                raise connect_failure(self.settings, err) from err
            except ValueError as err:
                raise BusError(f"{self.settings.url}: {err}") from err
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            self.stop()
            raise BusError(f"{self.settings.url}: no answer from the broker within {timeout_s:g} s")
        if self._refused:
            self.stop()
            raise login_refused(self.settings, self._refused)
        if self._closed_early is not None:
            self.stop()
            raise closed_before_connack(self.settings, self._closed_early)
        if device is None:
            try:
                found = self._discover(DISCOVERY_S)
            except UsageError:
                self.stop()
                raise
            if found is None:
                # The bridge may start after us (compose starts both at once): serve the pages now
                # and pick the device up when it appears.
                log.warning("waiting_for_device", broker=self.settings.url, hint="is the bridge running?")
                threading.Thread(target=self._discover_later, name="discovery", daemon=True).start()
                return None
            self._adopt(found)
        return self.device

    def _adopt(self, device: str) -> None:
        self.device = device
        if self._on_device is not None:  # queued ahead of the tree's first message
            self._loop.call_soon_threadsafe(self._on_device, device)
        self._client.unsubscribe(f"{self.root}/+/$state")
        self._client.subscribe(f"{self.root}/{device}/#", qos=TREE_QOS)
        log.info("device_found", device=device)

    def _discover_later(self) -> None:
        while not self._stopping.is_set():
            try:
                found = self._discover(REDISCOVER_S)
            except UsageError as err:
                log.error("device_ambiguous", error=str(err))
                continue
            if found is not None:
                self._adopt(found)
                return

    def _discover(self, timeout_s: float) -> str | None:
        """The one device whose ``$state`` the broker holds; None when none appeared in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if self._found and time.monotonic() - min(self._found.values()) >= DISCOVERY_GRACE_S:
                break
            self._stopping.wait(0.05)
        devices = sorted(self._found)
        if not devices:
            return None
        if len(devices) > 1:
            raise UsageError(
                f"several devices on the broker ({', '.join(devices)}): name one in the URL, "
                f"e.g. .../{self.root}/{devices[0]}/$modbus"
            )
        return devices[0]

    def publish(self, topic: str, payload: str) -> Future[None]:
        """Publish at QoS 1; the future fails when the broker refuses it (MQTT 5 reason code)."""
        future: Future[None] = Future()
        # Never hold our lock while paho runs: its network thread holds paho's own lock when it
        # calls on_publish, which takes ours; the other order would deadlock the two threads.
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            future.set_exception(BusError(f"not connected to the broker ({mqtt.error_string(info.rc)})"))
            return future
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._pending[info.mid] = future
                return future
        _settle(future, early)
        return future

    def stop(self) -> None:
        """Disconnect and stop paho's thread."""
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()


def _settle(future: Future[None], reason: Any) -> None:
    if getattr(reason, "is_failure", False):
        future.set_exception(AuroraError(f"the broker refused the command: {reason}"))
    else:
        future.set_result(None)
