"""The live side in MQTT mode: one paho client (user ``web``) that mirrors ``homie/<dev>/#`` and
publishes the settings page's ``/set`` commands, which the bridge validates (docs/architecture.md#set-path).

paho calls back on its own thread; every change is handed to the event loop, which alone touches
the :class:`HomieMirror`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

import paho.mqtt.client as mqtt
import structlog
from aurora.errors import AuroraError, PublishRefused, UsageError
from aurora.mqtt import MqttConnection, MqttSettings, choose_device, client_id

log = structlog.get_logger("aurora.web")

DISCOVERY_S = 2.0  # no retained $state yet: how long a starting bridge may take before we serve anyway
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
    ) -> None:
        self.settings = settings
        self.root = settings.root
        self.device: str | None = None
        self._loop = loop
        self._deliver = deliver
        self._on_device = on_device
        self._on_link = on_link
        self._mqtt = MqttConnection(settings, client_id("web"))
        self._mqtt.on_connected = self._on_connected
        self._mqtt.on_disconnected = self._on_disconnected
        self._mqtt.on_message = self._on_message
        self._stopping = threading.Event()

    # ---------------------------------------------------------------- paho thread

    def _on_connected(self, first: bool, session_present: bool) -> None:
        log.info("mqtt_connected", broker=self.settings.url, device=self.device)
        self._link(up=True)

    def _on_disconnected(self, reason: str) -> None:
        if not self._stopping.is_set():
            log.warning("mqtt_disconnected", broker=self.settings.url, reason=reason)
        self._link(up=False)

    def _link(self, *, up: bool) -> None:
        if self._on_link is not None:
            self._loop.call_soon_threadsafe(self._on_link, up)

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        if self.device is None:
            return
        self._loop.call_soon_threadsafe(
            self._deliver, msg.topic, msg.payload.decode("utf-8", errors="replace")
        )

    # ---------------------------------------------------------------- caller's thread

    def start(self, device: str | None, timeout_s: float = 10.0) -> str | None:
        """Connect, find the device if none was named, subscribe to its tree; its id, or None while
        no device has appeared (discovery then goes on in the background)."""
        # A broker started at the same time as us (compose) may not listen yet.
        self._mqtt.connect(timeout_s, retry_refused=True, stop=self._stopping)
        self._link(up=True)
        if device is not None:
            self._adopt(device)
            return device
        try:
            found = self._find(DISCOVERY_S, timeout_s)
        except AuroraError:
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

    def _find(self, wait_s: float, timeout_s: float = 10.0) -> str | None:
        """The one aurora device on the broker; None when none appeared within ``wait_s``."""
        found = self._mqtt.discover(self.root, timeout_s=timeout_s, wait_s=wait_s, stop=self._stopping)
        return choose_device(found, self.settings) if found else None

    def _adopt(self, device: str) -> None:
        self.device = device
        if self._on_device is not None:  # queued ahead of the tree's first message
            self._loop.call_soon_threadsafe(self._on_device, device)
        self._mqtt.keep([f"{self.root}/{device}/#"], qos=TREE_QOS)
        log.info("device_found", device=device)

    def _discover_later(self) -> None:
        while not self._stopping.is_set():
            try:
                found = self._find(REDISCOVER_S)
            except UsageError as err:
                log.error("device_ambiguous", error=str(err))
                self._stopping.wait(REDISCOVER_S)
                continue
            except AuroraError as err:  # the broker went away meanwhile: paho reconnects
                log.warning("discovery_failed", error=str(err))
                self._stopping.wait(1.0)
                continue
            if found is not None:
                self._adopt(found)
                return

    def publish(self, topic: str, payload: str) -> Future[None]:
        """Publish at QoS 1; the future fails when the broker refuses it (MQTT 5 reason code) or
        we are not connected (then it is not sent later either)."""
        future: Future[None] = Future()

        def settled(done: Future[None]) -> None:
            err = done.exception()
            if isinstance(err, PublishRefused):
                future.set_exception(AuroraError(f"the broker refused the command: {err.reason}"))
            elif err is not None:
                future.set_exception(err)
            else:
                future.set_result(None)

        self._mqtt.publish(topic, payload, qos=1, offline="fail").add_done_callback(settled)
        return future

    def stop(self) -> None:
        """Disconnect and stop paho's thread."""
        self._stopping.set()
        self._mqtt.close()
