"""The bridge's MQTT session: last will, retained-topic cache, resubscribe and republish on connect.

The connection is ``aurora.mqtt.MqttConnection`` (paho's rules: reconnects, resubscription, socket
options, typed errors); paho runs its own thread (docs/architecture.md#threads): every method here
only queues and returns, callable from any thread, and nothing waits for a PUBACK. The cache
holds every retained topic this run owns, so a broker that lost them (restart without
persistence) gets them back on reconnect, and an unchanged value is never sent twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import structlog
from aurora.errors import BrokerError, LoginRefused
from aurora.logs import Repeats
from aurora.mqtt import MqttConnection, MqttSettings, make_client, shown_client_id
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.properties import Properties

log = structlog.get_logger(__name__)

MessageHandler = Callable[[mqtt.MQTTMessage], None]
SCAN_QUIET_S = 0.3  # retained messages arrive right after SUBACK; this long without one ends the scan
SCAN_MAX_S = 3.0
REFUSED_LOG_EVERY_S = 60.0
# The broker keeps the bridge's session (its subscriptions and the QoS 1 messages for it) this
# long after a disconnect, so a /set sent while the bridge reconnects (a broker restart, a network
# outage) is delivered and applied once when it is back (issue 11 #8); so is a /set sent while the
# bridge restarted (a container restart), once the unit's routes exist (route()). Older than this,
# the broker drops the session and its queue: a command never waits longer than 10 minutes.
SESSION_EXPIRY_S = 600
EARLY_MAX = 256  # session messages kept until their route exists (a /set burst while the bridge was away)


class _QuietPaho(logging.Filter):
    """paho logs "Client is not connected. Socket: None)" at ERROR for every failed reconnect,
    without the broker's address or the reason; the publisher reports those itself, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_PAHO_LOG = logging.getLogger("paho.bridge")
_PAHO_LOG.addFilter(_QuietPaho())


@dataclass(slots=True)
class MqttCounters:
    """For the health document."""

    connects: int = 0
    disconnects: int = 0
    published: int = 0
    acked: int = 0
    last_ack: float = 0.0  # time.monotonic() of the last PUBACK (or publish at QoS 0)
    refused: int = 0  # PUBACKs with a failure reason (MQTT 5: e.g. not authorized by the ACL)


class Publisher:
    """One paho client for one device root (``homie/<device_id>``)."""

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        *,
        state_topic: str,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        client_factory: Callable[..., mqtt.Client] = make_client,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.state_topic = state_topic
        self.counters = MqttCounters()
        self.protocol = protocol
        # Homie's device lifecycle: the broker announces `lost` when we vanish (retained, QoS 1).
        # The session outlives a reconnect (SESSION_EXPIRY_S; MQTT 3.1.1: the broker's to expire).
        self._mqtt = MqttConnection(
            settings,
            client_id,
            protocol=protocol,
            persistent=True,
            session_expiry_s=SESSION_EXPIRY_S,
            will=(state_topic, "lost"),
            max_queued=20000,  # bounded: a long outage must not eat the Pi's RAM
            logger=_PAHO_LOG,
            client_factory=client_factory,
        )
        self._where = f"broker {settings.where}"
        self._connect_failures = Repeats("mqtt_connect_failed")
        self._refusals = Repeats("mqtt_refused")
        self._mqtt.on_connected = self._on_connected
        self._mqtt.on_connect_failed = self._on_connect_failed
        self._mqtt.on_disconnected = self._on_disconnected
        self._mqtt.on_message = self._on_message
        self._mqtt.on_published = self._on_published
        self._lock = threading.RLock()
        self._retained: dict[str, str] = {}  # topic -> payload, everything we own, in publish order
        self._routes: list[tuple[Callable[[str], bool], MessageHandler]] = []
        # What the broker queued in our session while no bridge ran arrives right after CONNACK,
        # before the unit's routes exist: kept (bounded) and handed to the route that takes it.
        self._early: deque[mqtt.MQTTMessage] = deque(maxlen=EARLY_MAX)
        self._state = "init"
        self._scan: dict[str, bytes] | None = None
        self._scan_last = 0.0
        self._scan_marker: str | None = None
        self._scan_marked = threading.Event()
        self.scan_marked = False  # the last scan ended on its marker, not on the quiet wait
        self._stopping = False
        self._refused_logged = -REFUSED_LOG_EVERY_S
        self.on_reconnect: Callable[[], None] | None = None  # after a reconnect's republish

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect in the background; paho retries forever with backoff (never raises here)."""
        log.info("mqtt_connecting", broker=self.settings.url, client_id=shown_client_id(self.client_id))
        self._mqtt.start()

    def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Whether the session is up (waits up to ``timeout_s``)."""
        return self._mqtt.wait_connected(timeout_s)

    @property
    def connected(self) -> bool:
        """Whether the last CONNACK was a success and no disconnect followed."""
        return self._mqtt.connected

    def stop(self, final_state: str = "disconnected", timeout_s: float = 3.0) -> None:
        """Publish ``final_state`` (Homie: ``disconnected`` on a clean shutdown), then DISCONNECT.

        Waiting for the PUBACK here is fine: this is the main thread, not a paho callback.
        """
        self._stopping = True
        sent = self._mqtt.publish(self.state_topic, final_state, qos=1, retain=True)
        if self.connected:
            # queued while disconnected, refused or not acknowledged: nothing more to do on the way out
            with contextlib.suppress(Exception):
                sent.result(timeout_s)
        self._mqtt.close()

    def abandon(self) -> None:
        """DISCONNECT without publishing a state: a session the bridge opened at start-up for a
        device it then did not publish (its detection failed or found another unit)."""
        self._stopping = True
        self._mqtt.close()

    def paho_thread_alive(self) -> bool:
        """Whether paho's network thread still runs (it can die on an unexpected error, paho #785)."""
        return self._mqtt.network_alive()

    def restart_loop(self) -> None:
        """Start paho's network thread again after it died (the watchdog's cure)."""
        log.warning("mqtt_loop_restart")
        self._mqtt.restart_loop()

    def kick(self) -> None:
        """Break a session that looks alive but acknowledges nothing; paho then reconnects itself."""
        log.warning("mqtt_session_kicked")
        self._mqtt.kick()

    # ------------------------------------------------------------ publishing

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Queue one message (non-blocking, any thread). Retained ones are not cached here."""
        self.counters.published += 1
        self._mqtt.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def retain(self, topic: str, payload: str, *, force: bool = False, cache: bool = True) -> bool:
        """Publish ``payload`` retained at QoS 1 when it differs from what this run last sent.

        An empty payload deletes the topic at the broker and forgets it. Returns whether it was sent.
        ``cache`` False: not republished after a reconnect (a document that would be stale by then).
        """
        with self._lock:
            if not force and self._retained.get(topic) == payload and payload:
                return False
            if not cache:
                self._retained.pop(topic, None)
            elif payload:
                self._retained[topic] = payload
            else:
                self._retained.pop(topic, None)
            self.publish(topic, payload, qos=1, retain=True)
            return True

    def retain_many(self, items: Iterable[tuple[str, str]], *, force: bool = False) -> int:
        """``retain`` for each (topic, payload); returns how many were sent."""
        return sum(self.retain(topic, payload, force=force) for topic, payload in items)

    def set_state(self, state: str) -> None:
        """Homie ``$state``: init, ready, alert, disconnected (``lost`` is the broker's will)."""
        with self._lock:
            changed = state != self._state
            self._state = state
            self.retain(self.state_topic, state, force=changed)
        if changed:
            log.info("homie_state", state=state)

    @property
    def state(self) -> str:
        """The last ``$state`` this run published."""
        return self._state

    def owned(self) -> set[str]:
        """Every retained topic this run publishes."""
        with self._lock:
            return set(self._retained)

    def forget_all(self) -> None:
        """Forget what was sent, so everything is sent again (the watchdog's republish)."""
        with self._lock:
            self._retained = {self.state_topic: self._state}

    # ------------------------------------------------------------ subscriptions

    def route(self, filters: Iterable[str], handler: MessageHandler, matches: Callable[[str], bool]) -> None:
        """Subscribe to ``filters`` (QoS 1) now and after every reconnect; ``handler`` gets the
        messages whose topic ``matches``; it runs on paho's thread and must not block."""
        new = list(filters)
        with self._lock:
            self._routes.append((matches, handler))
            waiting = [m for m in self._early if matches(m.topic)]
            for m in waiting:
                self._early.remove(m)
            # Under the lock, so a command arriving live now is handled after the queued ones
            for m in waiting:
                log.info("mqtt_queued_message", topic=m.topic)
                try:
                    handler(m)
                except Exception:  # as in _on_message: one bad message never stops the others
                    log.exception("mqtt_message_failed", topic=m.topic)
        self._mqtt.keep(new, qos=1)

    def scan_retained(
        self, filters: list[str], stop: threading.Event | None = None, *, marker: str | None = None
    ) -> dict[str, bytes]:
        """Retained messages under ``filters`` right now: subscribe, collect until quiet, unsubscribe.

        With ``marker`` (a topic under one of the filters that nobody else reads), a message sent
        there after the SUBACK ends the scan as soon as it comes back: mosquitto queues a
        subscription's retained messages before it answers SUBACK, so they all arrive before a
        message published after it. Without it, or when the broker drops the marker, the scan
        ends after SCAN_QUIET_S without a message (issue 15: that wait was most of start-up).
        """
        self._scan_marked.clear()
        with self._lock:
            self._scan = {}
            self._scan_marker = marker
        deadline = time.monotonic() + SCAN_MAX_S
        try:
            self._mqtt.subscribe(filters, 1, timeout_s=SCAN_MAX_S)
        except BrokerError as err:  # then the quiet wait ends it, with what came
            log.warning("mqtt_scan_subscribe_failed", error=str(err))
        self._scan_last = time.monotonic()
        if marker is not None:
            self._mqtt.publish(marker, b"", qos=1, retain=False)
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            quiet = time.monotonic() - self._scan_last
            if quiet >= SCAN_QUIET_S:
                break
            # polling a clock for the quiet end: no event marks "no more" without the marker
            if self._scan_marked.wait(SCAN_QUIET_S - quiet):
                break
        self._mqtt.forget(filters)
        with self._lock:
            found, self._scan = self._scan or {}, None
            self._scan_marker = None
        self.scan_marked = self._scan_marked.is_set()
        return found

    # ------------------------------------------------------------ paho callbacks (paho's thread)

    def _on_connected(self, first: bool, session_present: bool) -> None:
        self._refusals.recovered("mqtt_login_accepted", broker=self.settings.url)
        self._connect_failures.recovered("mqtt_reachable", broker=self.settings.url)
        self.counters.connects += 1
        log.info("mqtt_connected", broker=self.settings.url, first=first, session_present=session_present)
        if not first:
            with self._lock:
                # A restarted broker may have lost everything: $state init, the tree, then the state.
                state = self._state
                items = list(self._retained.items())
                self._mqtt.publish(self.state_topic, "init", qos=1, retain=True)
                for topic, payload in items:
                    if topic != self.state_topic:
                        self._mqtt.publish(topic, payload, qos=1, retain=True)
                self._mqtt.publish(self.state_topic, state, qos=1, retain=True)
            log.info("mqtt_republished", topics=len(items))
            if self.on_reconnect is not None:
                self.on_reconnect()

    def _on_connect_failed(self, err: BrokerError) -> None:
        if isinstance(err, LoginRefused):
            self._refusals.failed(
                f"{self._where}: {err}",
                broker=self.settings.url,
                hint="check the user name, AURORA_MQTT_PASSWORD_FILE and the broker's password file",
            )
        else:
            self._connect_failures.failed(str(err), broker=self.settings.url)

    def _on_disconnected(self, reason: str) -> None:
        if not self._stopping:
            self.counters.disconnects += 1
            log.warning("mqtt_disconnected", broker=self.settings.url, reason=reason)

    def _on_published(self, reason_code: object) -> None:
        self.counters.acked += 1
        self.counters.last_ack = time.monotonic()
        if getattr(reason_code, "is_failure", False):
            self.counters.refused += 1
            now = time.monotonic()
            if now - self._refused_logged > REFUSED_LOG_EVERY_S:  # every 5 s otherwise ($health)
                self._refused_logged = now
                log.error(
                    "mqtt_publish_refused",
                    reason=str(reason_code),
                    refused=self.counters.refused,
                    hint="check the broker's ACL for this user",
                )

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        """paho's thread; the adapter keeps an exception here from reaching it."""
        scan = self._scan
        if scan is not None and not msg.retain and msg.topic == self._scan_marker:
            self._scan_marked.set()
            return
        if scan is not None and msg.retain:
            self._scan_last = time.monotonic()
            if msg.payload:
                scan[msg.topic] = bytes(msg.payload)
            return
        with self._lock:
            routes = list(self._routes)
            taken = next((handler for matches, handler in routes if matches(msg.topic)), None)
            if taken is None and not msg.retain:
                self._early.append(msg)  # no route yet: route() hands it over
        if taken is not None:
            taken(msg)
