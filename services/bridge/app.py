"""The bridge's life: start-up, the threads it starts, shutdown (docs/architecture.md#threads).

Start-up order: the unit is detected first (retried with backoff for as long as it takes: the
device id comes from its serial number; the first attempt runs from before this module is
imported, :mod:`.early`), then MQTT is connected, earlier retained topics are
scanned (with the first attempt: as soon as its first read gave the serial number, while it
reads on), and the tree is published; nothing is wiped before there is something to replace it
(docs/architecture.md#original-bridge R2). The first poll reads meanwhile, only what detection
did not; the ``bridge_ready`` log line says how long each step took from the process start.

The work itself lives beside this module: the poll thread in :mod:`.polling`, a ``/set``'s path in
:mod:`.writes`, health and recovery in :mod:`.watchdog`, what they share in :mod:`.state`.
Nothing exits on bad data: a failed poll is logged, counted and retried (unlike the original,
docs/architecture.md#original-bridge R1-R3).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import paho.mqtt.client as mqtt
import structlog
from aurora.bus import Bus
from aurora.errors import AuroraError, UsageError
from aurora.logs import Repeats
from aurora.mqtt import bridge_client_id, make_client
from aurora.urls import redact

from . import homie
from .device import Unit, device_id_for
from .early import EarlyStart, detection_read
from .effects import WriteEffects
from .metering import EnergyRecorder, max_gap_for
from .poller import PollReport
from .polling import PollLoop
from .publisher import Publisher
from .spec import NodeSpec, Tier
from .state import BridgeConfig, Shared
from .systemd import sd_notify
from .vport import VirtualPorts
from .watchdog import Watchdog
from .worker import BusWorker
from .writes import Writes

if TYPE_CHECKING:
    from .passthrough import PassThrough

__all__ = ["Bridge", "BridgeConfig", "sd_notify"]

log = structlog.get_logger(__name__)

DETECT_MAX_BACKOFF_S = 60.0

ReadRanges = Callable[[Sequence[tuple[int, int]]], Mapping[int, int]]


class EarlyMqtt(NamedTuple):
    """The broker session opened during detection: for which device, and its retained scan
    (None: stopped before it was made)."""

    device_id: str
    publisher: Publisher
    earlier: dict[str, bytes] | None


class Detect(Protocol):
    """How the unit is found: ``device.detect``, or a test's stand-in."""

    def __call__(self, read: ReadRanges, *, device_name: str) -> Unit: ...


def process_age_s() -> float | None:
    """Seconds since this process started (Linux: /proc), or None where that cannot be known."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _preload(module: str) -> None:
    """Import ``module`` now (on a thread of its own); a later import of it is then free."""
    with contextlib.suppress(ImportError):  # the importer that needs it reports this itself
        importlib.import_module(module)


class Bridge:
    """One heat pump on one broker: ``run(stop)`` until ``stop`` is set; returns an exit status."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        opener: Callable[[], Bus] | None = None,
        detect: Detect | None = None,
        client_factory: Callable[..., mqtt.Client] = make_client,
        early: EarlyStart | None = None,
    ) -> None:
        """``early``: the worker and the first detection attempt, started before this module was
        imported (cli.py); ``opener`` and ``detect`` then serve the later attempts only."""
        self.config = config
        if opener is None:
            from aurora.ports import open_bus
            from aurora.transport import preload_retries

            preload_retries()

            def opener() -> Bus:
                return open_bus(config.port, latency_s=config.latency_s, debug=config.debug_modbus)

        if detect is None:
            from . import device

            detect = device.detect
        self._detect_fn = detect
        self._client_factory = client_factory
        self._early = early
        self._early_mqtt: Future[EarlyMqtt | None] | None = None
        self._settle: Callable[[], None] = early.settle if early is not None else lambda: None
        self._first_attempt_won = False  # detection succeeded at its first attempt
        if early is not None:
            self.worker = early.worker
        else:
            self.worker = BusWorker(opener, on_line_state=self._line_state)
        self.shared = Shared(config, self.worker, threading.Event())
        self.cache, self.stats, self.schedule = self.shared.cache, self.shared.stats, self.shared.schedule
        self.ready = self.shared.ready
        self.polling = PollLoop(self.shared)
        self.writes = Writes(self.shared)
        self.worker.on_answering = self.writes.unit_answers
        if early is not None:  # its worker may run already: told of the line once all above exists
            early.on_line_state = self._line_state
        self.watchdog = Watchdog(self.shared, self.polling, sections=self._health_sections)
        self.passthrough: PassThrough | None = None
        self.vports: VirtualPorts | None = None
        self._detect_failures = Repeats("detect_failed")  # an outage: one line, then one a minute
        self._detected: dict[int, int] = {}  # words the last detection attempt read
        self._marks: dict[str, float] = {}  # start-up steps, monotonic (logged once ready)
        self._described = threading.Event()  # the description is out: the first poll may publish

    # ------------------------------------------------------------ the whole life

    def run(self, stop: threading.Event) -> int:
        """Start, serve until ``stop``, shut down cleanly. 0 on a clean stop, 1 when the bus worker
        died (a bug: the service manager should restart the bridge), 2 on a usage error."""
        self.shared.stop = stop
        self._mark("run")
        if self._early is None:
            self.worker.start()
        else:
            self._marks["detection_started"] = self._early.started
            # MQTT connects and the retained scan runs as soon as the first read gave the device
            # id, while detection reads on (issue 15).
            mqtt_early: Future[EarlyMqtt | None] = Future()
            serial, nodes = self._early.serial, self._early.nodes

            def connect() -> None:
                try:
                    mqtt_early.set_result(self._connect_early(serial, nodes))
                except BaseException as err:  # then run connects as it would without
                    mqtt_early.set_exception(err)

            self._early_mqtt = mqtt_early
            threading.Thread(target=connect, name="mqtt-early", daemon=True).start()
        # The $modbus pass-through is needed only once the tree is out: imported while detection
        # waits on the line, not after the first poll (issue 15: start to ready).
        threading.Thread(
            target=_preload, args=(f"{__package__}.passthrough",), name="preload", daemon=True
        ).start()
        try:
            unit = self._detect_unit()
        except UsageError as err:
            log.error("bad_port", port=redact(self.config.port), error=str(err))
            self._drop_early_mqtt()
            self.worker.stop()
            return 2
        if unit is None:  # stopped while the unit was not answering
            self._drop_early_mqtt()
            self.worker.stop()
            log.info("bridge_stopped", during="detection")
            return 0
        self.shared.unit = unit
        self._mark("detected")
        # The first poll reads while MQTT connects and the broker's retained topics are scanned:
        # the two used to run one after the other (issue 15: start to ready). It is asked for
        # first: the line waits for nothing else.
        first = self.polling.start_first(
            self._detected, on_read=lambda: self._mark("first_poll_read"), described=self._described
        )
        properties = getattr(unit, "properties", None)  # a test's stand-in may have none
        self.shared.schedule.effects = WriteEffects(properties()) if properties is not None else None
        try:
            if not self._start_vports():
                self._drop_early_mqtt()
                return 2
            earlier = self._take_early_mqtt(unit)
            if earlier is None and not stop.is_set():
                self._start_mqtt()
                self._mark("mqtt_connected")
            if not stop.is_set():
                self._publish_tree(first, earlier)
                self.polling.start()
                self.watchdog.watch()
        finally:
            self._shutdown()
        return self.watchdog.exit_code

    def _detect_unit(self) -> Unit | None:
        """Detect the unit's components, retrying with backoff until it answers (R2: never give up)."""
        backoff = 1.0
        early, self._early = self._early, None
        while not self.shared.stop.is_set():
            self._detected = {}  # a failed attempt's words are older than the next attempt's
            try:
                if early is not None:  # the first attempt, started before the MQTT stack was imported
                    self._detected = early.words
                    attempt, early = early.attempt, None
                    try:
                        unit = attempt.result()
                    except BaseException:
                        self._settle()  # the retries are no start-up race
                        raise
                    self._first_attempt_won = True
                else:
                    read = detection_read(self.worker, self.shared.stop, self._detected)
                    unit = self._detect_fn(read, device_name=self.config.device_name)
            except Exception as err:
                if self.shared.stop.is_set():
                    # A stop cut the detection's reads short ("the bridge is stopping"): not a failure.
                    log.info("detect_stopped", reason=str(err))
                    return None
                if isinstance(err, UsageError) and self.worker.stats.reconnects == 0:
                    raise  # the port itself is wrong: the user has to fix the command line
                if isinstance(err, AuroraError):
                    why = str(err)
                else:  # bad data must not end the process (R1)
                    if not self._detect_failures.failing:
                        log.exception("detect_failed_unexpectedly")  # a bug: its traceback, once
                    why = f"{type(err).__name__}: {err}"
                self._detect_failures.failed(why, port=redact(self.config.port), retry_in_s=backoff)
            else:
                self._detect_failures.recovered("detect_recovered")
                return unit  # device.detect logged what it found
            finally:
                self.shared.cache.update(self._detected)
            self.stats.last_error = f"unit not answering at start-up: {why}"
            self.watchdog.write_status("init")
            self.shared.stop.wait(backoff)
            backoff = min(backoff * 2, DETECT_MAX_BACKOFF_S)
        return None

    def _start_vports(self) -> bool:
        """Serve the virtual ports (if configured) once the unit answers, before MQTT: ModBus tools
        share the line even while the broker is away. False when a port cannot be bound."""
        config = self.config.vports
        if not config.enabled:
            return True
        ports = VirtualPorts(config, self.worker, on_written=self.polling.absorb_raw_write)
        try:
            ports.start()
        except OSError as err:
            log.error("vport_bind_failed", error=str(err), rtu=config.rtu, modbus_tcp=config.modbus_tcp)
            return False
        self.vports = ports
        return True

    # ------------------------------------------------------------ MQTT and the tree

    def _start_mqtt(self) -> None:
        shared = self.shared
        shared.root = f"{self.config.homie_root}/{shared.detected.device_id}"
        pub = shared.publisher = self._publisher(shared.detected.device_id)
        self._wait_connected(pub)

    def _publisher(self, device_id: str) -> Publisher:
        """The broker session of the device ``device_id``, connecting in the background."""
        root = f"{self.config.homie_root}/{device_id}"
        serial = device_id.removeprefix("aurora-")
        pub = Publisher(
            self.config.mqtt,
            # One id per heat pump (bridges on one broker never collide) that no other account
            # can know, so none can take it over (aurora.mqtt.bridge_client_id).
            bridge_client_id(serial, self.config.mqtt.username, self.config.mqtt.password),
            state_topic=f"{root}/$state",
            protocol=self.config.protocol,
            client_factory=self._client_factory,
        )
        pub.on_reconnect = self._on_reconnect
        pub.start()
        return pub

    def _wait_connected(self, pub: Publisher) -> bool:
        """Wait for the broker (for as long as it takes, logging now and then); False on a stop."""
        waited = time.monotonic()
        while not pub.wait_connected(1.0):
            if self.shared.stop.is_set():
                return False
            if time.monotonic() - waited > 30:
                log.warning("mqtt_waiting", broker=self.config.mqtt.url)
                waited = time.monotonic()
        return True

    def _scan(self, pub: Publisher, device_id: str) -> dict[str, bytes]:
        """The retained topics an earlier run left (the tree and its HA discovery)."""
        root = f"{self.config.homie_root}/{device_id}"
        scan = [f"{root}/#", f"{self.config.ha_prefix}/+/{device_id}/#"]
        # The scan ends when this comes back (no other account may read the bridge's replies).
        earlier = pub.scan_retained(scan, self.shared.stop, marker=f"{root}/$modbus/response/bridge/scan")
        self._mark("scanned")
        return earlier

    def _connect_early(
        self, serial: Future[str | None], nodes: Future[tuple[NodeSpec, ...] | None]
    ) -> EarlyMqtt | None:
        """Thread of its own: connect and scan for the device id of the serial number detection's
        first read gave, while detection reads the rest (issue 15: start to ready), then describe
        what ``nodes`` settle. None without a serial number."""
        number = serial.result()
        if number is None:
            return None
        device_id = device_id_for(number)
        pub = self._publisher(device_id)
        try:
            if not self._wait_connected(pub):
                return EarlyMqtt(device_id, pub, None)
            self._mark("mqtt_connected")
            earlier = self._scan(pub, device_id)
            self._describe_settled(pub, device_id, nodes)
            return EarlyMqtt(device_id, pub, earlier)
        except BaseException:
            pub.abandon()  # run then connects as it would without
            raise

    def _describe_settled(
        self, pub: Publisher, device_id: str, nodes: Future[tuple[NodeSpec, ...] | None]
    ) -> None:
        """After the scan: ``$state init`` and the attributes of the properties every unit of the
        detected components has (most of the description), while the presence checks read on.
        The broker then takes them during detection instead of after it, when the line has only
        the first poll left to read (issue 15: ``ready`` waited for paho to send them); the rest
        of the tree follows in ``_publish_tree`` (``retain`` sends only what this run has not)."""
        found = nodes.result()
        if not self.config.homie or found is None or self.shared.stop.is_set():
            return
        from . import homie
        from .device import settled_properties
        from .health import HEALTH_EVERY_S

        root = f"{self.config.homie_root}/{device_id}"
        described = homie.description(
            device_id, self.config.device_name, settled_properties(found), stats_interval_s=HEALTH_EVERY_S
        )
        pub.set_state("init")
        # Property attributes only: a node's $properties and the device's attributes wait for
        # the presence checks.
        pub.retain_many(
            (f"{root}/{suffix}", payload) for suffix, payload in described if suffix.count("/") == 2
        )
        self._mark("described")

    def _take_early_mqtt(self, unit: Unit) -> dict[str, bytes] | None:
        """The early session, if it is this unit's and detection succeeded at its first attempt:
        the retained scan it made (None: connect and scan now). Any other is closed unused."""
        future, self._early_mqtt = self._early_mqtt, None
        if future is None:
            return None
        # Woken by the session itself, not at a tick: a scan of an earlier run's retained tree
        # often ends just after detection, and a 0.5 s tick added up to 0.5 s to every restart.
        while not wait([future], timeout=0.5).done:  # the broker away: wait as _start_mqtt would
            if self.shared.stop.is_set():
                with contextlib.suppress(Exception):
                    future.result(timeout=2.0)  # its wait for the broker ends on the stop too
                break
        got = future.result() if future.done() and future.exception() is None else None
        if got is None:
            return None
        if self.shared.stop.is_set():  # shut down as any other session (_shutdown)
            self.shared.publisher = got.publisher
            return None
        if got.device_id != unit.device_id or not self._first_attempt_won or got.earlier is None:
            got.publisher.abandon()
            return None
        self.shared.publisher, self.shared.root = got.publisher, f"{self.config.homie_root}/{unit.device_id}"
        return got.earlier

    def _drop_early_mqtt(self) -> None:
        """Close the early session unused (detection stopped or refused the port)."""
        future, self._early_mqtt = self._early_mqtt, None
        if future is not None and future.done() and future.exception() is None:
            got = future.result()
            if got is not None:
                got.publisher.abandon()

    def _tree_topics(self) -> set[str]:
        """Topics of this run's tree, published or not (a value not read yet is not stale); with
        --no-homie the values only, so that an earlier run's attributes are cleared."""
        root = self.shared.root
        topics = {f"{root}/$state", f"{root}/$health"}
        if self.config.homie:
            topics.add(f"{root}/{homie.STATS_UPTIME}")
        for suffix, _ in self.shared.detected.description():
            if self.config.homie:
                topics.add(f"{root}/{suffix}")
            if suffix.endswith("/$datatype"):
                topics.add(f"{root}/{suffix.removesuffix('/$datatype')}")
        return topics

    def _publish_tree(
        self, first: tuple[Future[PollReport], float] | None = None, earlier: dict[str, bytes] | None = None
    ) -> None:
        """Homie start-up order: $state init, description, values, /set subscriptions, ready.

        ``first``: the first poll, already reading (its values are published only here, after
        the description); ``earlier``: the retained scan, if made already."""
        shared, cfg = self.shared, self.config
        pub, unit, root = shared.publisher, shared.detected, shared.root
        assert pub is not None
        if earlier is None:
            earlier = self._scan(pub, unit.device_id)
        self._start_energy(earlier)
        pub.set_state("init")
        if cfg.homie:
            pub.retain_many((f"{root}/{suffix}", payload) for suffix, payload in unit.description())
        migrated: set[str] = set()
        if cfg.home_assistant:
            # Only the gem's topics still retained are migrated: none after the first start
            discovery = unit.hass_discovery(homie_root=cfg.homie_root, prefix=cfg.ha_prefix, existing=earlier)
            pub.retain_many(discovery)
            migrated = {topic for topic, _ in discovery}  # cleared by the migration already
        if first is not None:
            # The values of what detection read (most of the first poll's registers) go out now,
            # behind the description, while the first poll reads the rest: the broker takes them
            # meanwhile, and only the rest is left to publish before ready (issue 15).
            shared.publish_values()
            self._described.set()
        every = list(shared.schedule.tiers)
        if first is None:
            good = self.polling.poll(every, time.monotonic())
        else:
            good = self.polling.poll(every, first[1], pending=first[0])
        keep = pub.owned() | self._tree_topics() | migrated
        stale = sorted(t for t in earlier if t not in keep and "/$modbus" not in t)
        for topic in stale:
            pub.retain(topic, "")
        if stale:
            log.info("stale_topics_cleared", count=len(stale), first=stale[:5])
        self._subscribe()
        pub.set_state("ready" if good else "alert")
        self.watchdog.publish_health(force=True)
        self._mark("ready")
        self._settle()
        shared.ready.set()
        sd_notify("READY=1")
        self._log_startup()

    def _mark(self, step: str) -> None:
        self._marks[step] = time.monotonic()

    def _log_startup(self) -> None:
        """How long each start-up step took: a slow start shows where its time went."""
        age = process_age_s()
        now = time.monotonic()
        origin = now - age if age is not None else self._marks.get("run", now)
        steps = {step: round(at - origin, 3) for step, at in self._marks.items()}
        log.info("bridge_ready", since_process_start_s=round(now - origin, 3), steps_s=steps)

    def _start_energy(self, retained: Mapping[str, bytes]) -> None:
        """The energy counters, carrying on from the state file and the broker's retained values."""
        shared, cfg = self.shared, self.config
        unit = shared.detected
        if not EnergyRecorder.wanted(unit):
            return
        gap = cfg.energy_max_gap_s or max_gap_for(cfg.intervals_s[Tier.FAST])
        path = Path(cfg.energy_state.replace("{device}", unit.device_id)) if cfg.energy_state else None
        shared.energy = EnergyRecorder(unit, path=path, max_gap_s=gap)
        shared.energy.restore(retained, shared.root)

    def _subscribe(self) -> None:
        pub, root = self.shared.publisher, self.shared.root
        assert pub is not None
        from .passthrough import PassThrough  # preloaded on a thread of its own at start

        passthrough = self.passthrough = PassThrough(
            worker=self.worker,
            publish=pub.publish,
            root=root,
            allow_raw_writes=self.config.allow_raw_writes,
            cache=self.shared.cache.lookup,
            on_written=self.polling.absorb_raw_write,
        )
        filters = list(passthrough.subscriptions())
        # $modbus/<N>/set lies under the commands' <root>/+/+/set below: subscribed twice, MQTT 5
        # would deliver it twice (one copy per matching subscription) and write it twice. That
        # subscription brings it; this route, added first, takes it by topic.
        raw_sets = f"{root}/$modbus/+/set"
        pub.route(
            [f for f in filters if f != raw_sets],
            passthrough.handle,
            lambda topic: any(mqtt.topic_matches_sub(f, topic) for f in filters),
        )

        # Every command under the root, so one to a node this unit lacks (a typo, a zone it does
        # not have) is answered too: refused, "no such property".
        def is_set(topic: str) -> bool:
            parts = topic[len(root) + 1 :].split("/")
            return (
                topic.startswith(root + "/")
                and len(parts) == 3
                and not parts[0].startswith("$")
                and parts[2] == "set"
            )

        pub.route([f"{root}/+/+/set"], self.writes.on_set, is_set)

    def _on_reconnect(self) -> None:
        """paho thread, after the republish: poll everything soon so values are fresh, and say
        how the bridge is now ($health is not republished from the cache: it would be stale)."""
        self.shared.schedule.force_all()
        self.watchdog.publish_health(force=True)

    def _line_state(self, up: bool, why: str | None) -> None:
        """Worker thread: the line went down (alert at once) or came back (ready after a good poll)."""
        shared = self.shared
        if not up:
            shared.stats.last_error = why
            if shared.publisher is not None and shared.publisher.connected:
                shared.publisher.set_state("alert")  # also during start-up: better than a stuck init
        else:
            # A reopened line may lead to a rebooted or replaced board: ask again for every register.
            shared.missing.clear()
            shared.schedule.force_all()

    def _health_sections(self) -> dict[str, dict[str, int] | None]:
        """The pass-through's and the virtual ports' parts of ``$health``."""
        return {
            "passthrough": dict(self.passthrough.counters) if self.passthrough is not None else None,
            "vports": self.vports.health() if self.vports is not None else None,
        }

    def health(self) -> str:
        """The health document as published."""
        return self.watchdog.health()

    def _shutdown(self) -> None:
        shared = self.shared
        self._settle()
        sd_notify("STOPPING=1")
        shared.stop.set()
        self.polling.join(5)
        self.writes.close()
        if self.vports is not None:
            self.vports.stop()
        self.worker.stop()
        if self.passthrough is not None:
            self.passthrough.close()  # after the worker: the requests it failed are answered
        if shared.energy is not None:
            shared.energy.save()
        if shared.publisher is not None:
            shared.publisher.stop("disconnected")
            log.info("bridge_stopped")
