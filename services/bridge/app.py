"""The bridge's wiring: bus worker, detection, MQTT session, tiered polling, writes, watchdog, health.

Threads: the bus worker (the only one touching the line), paho's network thread (callbacks only
queue work), the poll thread, and the main thread running start-up, the watchdog and the health
document. Nothing here exits on bad data: a failed poll is logged, counted and retried (unlike the
original, docs/architecture.md#original-bridge R1-R3).

Start-up order: the unit is detected first (retried with backoff for as long as it takes: the
device id comes from its serial number), then MQTT is connected, earlier retained topics are
scanned, and the tree is published; nothing is wiped before there is something to replace it (R2).
The first poll reads only what detection did not, while MQTT connects and the scan runs; the
``bridge_ready`` log line says how long each step took from the process start.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from aurora import status
from aurora.bus import Bus
from aurora.errors import AuroraError, BusError, BusTimeout, ExceptionReply, FrameError, UsageError
from aurora.logs import Repeats
from aurora.mqtt import MqttSettings, bridge_client_id, make_client
from aurora.query import plan_chunks
from aurora.urls import redact
from paho.mqtt.enums import MQTTProtocolVersion

from . import homie
from .effects import WriteEffects
from .health import HEALTH_EVERY_S, PollStats, health_document
from .metering import EnergyRecorder, max_gap_for
from .poller import PollReport, TierSchedule, WordCache, read_words
from .publisher import Publisher
from .vport import VirtualPorts, VportConfig
from .worker import BusWorker, Priority

log = structlog.get_logger(__name__)

TIER_NAMES = ("fast", "medium", "slow")
DETECT_MAX_BACKOFF_S = 60.0
STUCK_JOB_S = 60.0  # no transaction lasts this long (retries included); the line is wedged
MQTT_ACK_STALE_S = 90.0
STATUS_LOG_EVERY_S = 3600.0
WATCHDOG_MIN_S = 5.0  # never reset the line more often than this, whatever the intervals
_MAX_LOGGED_PAYLOAD = 64
WRITE_RESULT = "$write-result"  # each /set command's outcome (docs/writes.md)


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """Everything the command line decides (see cli.py for the defaults and env variables)."""

    port: str
    mqtt: MqttSettings
    device_name: str = "WaterFurnace"
    homie: bool = True
    home_assistant: bool = True
    intervals_s: Mapping[str, float] = field(
        default_factory=lambda: {"fast": 5.0, "medium": 30.0, "slow": 300.0}
    )
    debug_modbus: bool = False
    allow_raw_writes: bool = False
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5
    homie_root: str = "homie"
    ha_prefix: str = "homeassistant"
    latency_s: float = 0.5
    watchdog_cycles: int = 6
    vports: VportConfig = field(default_factory=VportConfig)  # virtual ports: off unless configured
    energy_state: str | None = None  # the energy counters' file ({device}: the id); None: broker only
    energy_max_gap_s: float | None = None  # None: a few fast intervals (metering.max_gap_for)
    status_file: str | None = None  # for the container healthcheck; None: aurora.status.default_path()


def sd_notify(message: str) -> bool:
    """Tell systemd (``Type=notify``, ``WatchdogSec=``) how the bridge is; a no-op elsewhere.

    Returns whether a message was sent. ``NOTIFY_SOCKET`` may name an abstract socket (``@…``).
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), target)
    except OSError as err:
        log.warning("sd_notify_failed", error=str(err))
        return False
    return True


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


def _shown(payload: str) -> str:
    return payload if len(payload) <= _MAX_LOGGED_PAYLOAD else payload[:_MAX_LOGGED_PAYLOAD] + "…"


class Bridge:
    """One heat pump on one broker: ``run(stop)`` until ``stop`` is set; returns an exit status."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        opener: Callable[[], Bus] | None = None,
        detect: Callable[..., Any] | None = None,
        tiers: Mapping[str, Any] | None = None,
        client_factory: Callable[..., mqtt.Client] = make_client,
    ) -> None:
        self.config = config
        if opener is None:
            from aurora.transport import open_bus, preload_retries

            preload_retries()

            def opener() -> Bus:
                return open_bus(config.port, latency_s=config.latency_s, debug=config.debug_modbus)

        if detect is None or tiers is None:
            from . import device

            detect = detect or device.detect
            tiers = tiers or {name: device.Tier[name.upper()] for name in TIER_NAMES}
        self._detect_fn = detect
        self.tiers = dict(tiers)
        self._client_factory = client_factory
        self.worker = BusWorker(opener, on_line_state=self._line_state)
        self.cache = WordCache()
        self.stats = PollStats()
        self.missing: set[int] = set()
        self.unit: Any = None
        self.publisher: Publisher | None = None
        self.root = ""
        self.schedule = TierSchedule({name: config.intervals_s[name] for name in self.tiers})
        self.ready = threading.Event()  # the first publish of the tree is done
        self._stop = threading.Event()
        self._poll_thread: threading.Thread | None = None
        self._heartbeat = time.monotonic()
        self._last_health = 0.0
        self._last_reset = time.monotonic()
        self._republish = False
        self._wake = threading.Event()  # the poll loop has a re-read to do
        self._reread: set[int] = set()  # registers a raw write affected, read by the poll loop
        self._reread_lock = threading.Lock()
        self._effects: WriteEffects | None = None
        self._tier_read: dict[str, float] = {}  # monotonic time of each tier's last good read
        self._values_lock = threading.Lock()
        self.passthrough: Any = None
        self.vports: VirtualPorts | None = None
        self.energy: EnergyRecorder | None = None
        self._exit_code = 0
        self._detected: dict[int, int] = {}  # words the last detection attempt read
        self._marks: dict[str, float] = {}  # start-up steps, monotonic (logged once ready)
        self._last_status = time.monotonic()
        # An outage logs what is wrong once, then a summary a minute (issue 18), not a line a poll.
        self._detect_failures = Repeats("detect_failed")
        self._poll_failures = Repeats("poll_failed")
        self._status_path = Path(config.status_file) if config.status_file else status.default_path()
        self._told_systemd = ""

    # ------------------------------------------------------------ the whole life

    def run(self, stop: threading.Event) -> int:
        """Start, serve until ``stop``, shut down cleanly. 0 on a clean stop, 1 when the bus worker
        died (a bug: the service manager should restart the bridge), 2 on a usage error."""
        self._stop = stop
        self._mark("run")
        self.worker.start()
        # The $modbus pass-through is needed only once the tree is out: imported while detection
        # waits on the line, not after the first poll (issue 15: start to ready).
        threading.Thread(target=_preload, args=(f"{__package__}.passthrough",), daemon=True).start()
        try:
            self.unit = self._detect_unit()
        except UsageError as err:
            log.error("bad_port", port=redact(self.config.port), error=str(err))
            self.worker.stop()
            return 2
        if self.unit is None:  # stopped while the unit was not answering
            self.worker.stop()
            return 0
        self._mark("detected")
        properties = getattr(self.unit, "properties", None)  # a test's stand-in may have none
        self._effects = WriteEffects(properties()) if properties is not None else None
        # The first poll reads while MQTT connects and the broker's retained topics are scanned:
        # the two used to run one after the other (issue 15: start to ready).
        first = self._start_first_poll()
        try:
            if not self._start_vports():
                return 2
            self._start_mqtt()
            self._mark("mqtt_connected")
            if not stop.is_set():
                self._publish_tree(first)
                self._poll_thread = self._start_poller()
                self._watch()
        finally:
            self._shutdown()
        return self._exit_code

    def _detect_unit(self) -> Any:
        """Detect the unit's components, retrying with backoff until it answers (R2: never give up)."""
        backoff = 1.0
        while not self._stop.is_set():
            self._detected = {}  # a failed attempt's words are older than the next attempt's
            try:
                unit = self._detect_fn(self._detect_read, device_name=self.config.device_name)
            except UsageError as err:
                if self.worker.stats.reconnects == 0:
                    raise  # the port itself is wrong: the user has to fix the command line
                why = str(err)
                self._detect_failures.failed(why, port=redact(self.config.port), retry_in_s=backoff)
            except AuroraError as err:
                why = str(err)
                self._detect_failures.failed(why, port=redact(self.config.port), retry_in_s=backoff)
            except Exception as err:  # bad data must not end the process (R1)
                if not self._detect_failures.failing:
                    log.exception("detect_failed_unexpectedly")  # a bug: its traceback, once
                why = f"{type(err).__name__}: {err}"
                self._detect_failures.failed(why, port=redact(self.config.port), retry_in_s=backoff)
            else:
                self._detect_failures.recovered("detect_recovered")
                return unit  # device.detect logged what it found
            self.stats.last_error = f"unit not answering at start-up: {why}"
            self._write_status("init")
            self._stop.wait(backoff)
            backoff = min(backoff * 2, DETECT_MAX_BACKOFF_S)
        return None

    def _detect_read(self, ranges: Sequence[tuple[int, int]]) -> Mapping[int, int]:
        addresses = [a for start, count in ranges for a in range(start, start + count)]
        report = read_words(self.worker, addresses, stop=self._stop)
        self.cache.update(report.words)
        self._detected.update(report.words)
        lost = [err for err in report.failed.values() if not isinstance(err, ExceptionReply)]
        if lost:
            # A register that timed out is not a register the unit lacks: detecting without it
            # would drop a component for the bridge's whole life. Try the detection again.
            raise BusTimeout(f"detection read incomplete: {lost[0]}")
        return report.words

    def _start_vports(self) -> bool:
        """Serve the virtual ports (if configured) once the unit answers, before MQTT: ModBus tools
        share the line even while the broker is away. False when a port cannot be bound."""
        config = self.config.vports
        if not config.enabled:
            return True
        ports = VirtualPorts(config, self.worker, on_written=self._absorb_raw_write)
        try:
            ports.start()
        except OSError as err:
            log.error("vport_bind_failed", error=str(err), rtu=config.rtu, modbus_tcp=config.modbus_tcp)
            return False
        self.vports = ports
        return True

    # ------------------------------------------------------------ MQTT and the tree

    def _start_mqtt(self) -> None:
        unit = self.unit
        self.root = f"{self.config.homie_root}/{unit.device_id}"
        serial = unit.device_id.removeprefix("aurora-")
        self.publisher = Publisher(
            self.config.mqtt,
            # One id per heat pump (bridges on one broker never collide) that no other account
            # can know, so none can take it over (aurora.mqtt.bridge_client_id).
            bridge_client_id(serial, self.config.mqtt.username, self.config.mqtt.password),
            state_topic=f"{self.root}/$state",
            protocol=self.config.protocol,
            client_factory=self._client_factory,
        )
        self.publisher.on_reconnect = self._on_reconnect
        self.publisher.start()
        waited = time.monotonic()
        while not self.publisher.wait_connected(1.0):
            if self._stop.is_set():
                return
            if time.monotonic() - waited > 30:
                log.warning("mqtt_waiting", broker=self.config.mqtt.url)
                waited = time.monotonic()

    def _tree_topics(self) -> set[str]:
        """Topics of this run's tree, published or not (a value not read yet is not stale)."""
        topics = {f"{self.root}/$state", f"{self.root}/$health", f"{self.root}/{homie.STATS_UPTIME}"}
        for suffix, _ in self.unit.description():
            topics.add(f"{self.root}/{suffix}")
            if suffix.endswith("/$datatype"):
                topics.add(f"{self.root}/{suffix.removesuffix('/$datatype')}")
        return topics

    def _start_first_poll(self) -> tuple[Future[PollReport], float]:
        """Read every tier on a thread of its own; ``_publish_tree`` publishes what it read.

        Registers detection has just read (most of them: the presence checks read the sensors)
        are not read again: their words count as this poll's (issue 15: start to ready)."""
        future: Future[PollReport] = Future()
        started = time.monotonic()
        addresses = self._addresses(list(self.tiers))
        known = {a: w for a, w in self._detected.items() if a in addresses}
        addresses -= known.keys()

        def read() -> None:
            try:
                if addresses:
                    report = read_words(self.worker, addresses, missing=self.missing, stop=self._stop)
                else:
                    report = PollReport({})
                words = {**known, **report.words}
                self._mark("first_poll_read")
                future.set_result(replace(report, words=words))
            except BaseException as err:  # _poll takes it as a failed read
                future.set_exception(err)

        threading.Thread(target=read, name="first-poll", daemon=True).start()
        return future, started

    def _publish_tree(self, first: tuple[Future[PollReport], float] | None = None) -> None:
        """Homie start-up order: $state init, description, values, /set subscriptions, ready.

        ``first``: the first poll, already reading (its values are published only here, after
        the description)."""
        pub, unit, cfg = self.publisher, self.unit, self.config
        assert pub is not None
        scan = [f"{self.root}/#", f"{cfg.ha_prefix}/+/{unit.device_id}/#"]
        # The scan ends when this comes back (no other account may read the bridge's replies).
        earlier = pub.scan_retained(scan, self._stop, marker=f"{self.root}/$modbus/response/bridge/scan")
        self._mark("scanned")
        self._start_energy(earlier)
        pub.set_state("init")
        if cfg.homie:
            pub.retain_many((f"{self.root}/{suffix}", payload) for suffix, payload in unit.description())
        migrated: set[str] = set()
        if cfg.home_assistant:
            # Only the gem's topics still retained are migrated: none after the first start
            discovery = unit.hass_discovery(homie_root=cfg.homie_root, prefix=cfg.ha_prefix, existing=earlier)
            pub.retain_many(discovery)
            migrated = {topic for topic, _ in discovery}  # cleared by the migration already
        if first is None:
            good = self._poll(list(self.tiers), time.monotonic())
        else:
            good = self._poll(list(self.tiers), first[1], pending=first[0])
        keep = pub.owned() | self._tree_topics() | migrated
        stale = sorted(t for t in earlier if t not in keep and "/$modbus" not in t)
        for topic in stale:
            pub.retain(topic, "")
        if stale:
            log.info("stale_topics_cleared", count=len(stale), first=stale[:5])
        self._subscribe()
        pub.set_state("ready" if good else "alert")
        self._publish_health(force=True)
        self._mark("ready")
        self.ready.set()
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
        if not EnergyRecorder.wanted(self.unit):
            return
        cfg = self.config
        gap = cfg.energy_max_gap_s or max_gap_for(cfg.intervals_s["fast"])
        path = Path(cfg.energy_state.replace("{device}", self.unit.device_id)) if cfg.energy_state else None
        self.energy = EnergyRecorder(self.unit, path=path, max_gap_s=gap)
        self.energy.restore(retained, self.root)

    def _subscribe(self) -> None:
        pub = self.publisher
        assert pub is not None
        try:
            from .passthrough import PassThrough
        except ImportError:  # the $modbus pass-through is optional; the bridge runs without it
            log.warning("passthrough_unavailable")
        else:
            self.passthrough = PassThrough(
                worker=self.worker,
                publish=pub.publish,
                root=self.root,
                allow_raw_writes=self.config.allow_raw_writes,
                cache=self.cache.lookup,
                on_written=self._absorb_raw_write,
            )
            filters = list(self.passthrough.subscriptions())
            # $modbus/<N>/set lies under the commands' <root>/+/+/set below: subscribed twice, MQTT 5
            # would deliver it twice (one copy per matching subscription) and write it twice. That
            # subscription brings it; this route, added first, takes it by topic.
            raw_sets = f"{self.root}/$modbus/+/set"
            pub.route(
                [f for f in filters if f != raw_sets],
                self.passthrough.handle,
                lambda topic: any(mqtt.topic_matches_sub(f, topic) for f in filters),
            )

        # Every command under the root, so one to a node this unit lacks (a typo, a zone it does
        # not have) is answered too: refused, "no such property".
        def is_set(topic: str) -> bool:
            parts = topic[len(self.root) + 1 :].split("/")
            return (
                topic.startswith(self.root + "/")
                and len(parts) == 3
                and not parts[0].startswith("$")
                and parts[2] == "set"
            )

        pub.route([f"{self.root}/+/+/set"], self._on_set, is_set)

    def _absorb_raw_write(self, words: Mapping[int, int]) -> None:
        """Worker thread: a $modbus write changed registers. Publish what that changes now, and
        have the poll loop read again what the write affects (a write-only register shows up
        elsewhere: 12619 → 745); the rest of the poll schedule stays as it is (issue 15)."""
        self.cache.update(words)
        self.publish_values()
        wanted = self._effects.reread(words) if self._effects is not None else []
        if not wanted:
            return
        with self._reread_lock:
            self._reread.update(wanted)
        self._wake.set()

    def _take_reread(self) -> list[int]:
        with self._reread_lock:
            wanted, self._reread = sorted(self._reread), set()
        return wanted

    def _do_reread(self, addresses: Iterable[int]) -> None:
        """Poll thread: read what a raw write affected, and publish it."""
        started = time.monotonic()
        try:
            report = read_words(self.worker, addresses, missing=self.missing, stop=self._stop)
        except AuroraError as err:
            log.warning("reread_failed", error=str(err))
            return
        self.stats.rereads += 1
        self.stats.transactions += report.transactions
        self.cache.update(report.words, at=started)
        self.publish_values()

    def _on_reconnect(self) -> None:
        """paho thread, after the republish: poll everything soon so values are fresh, and say
        how the bridge is now ($health is not republished from the cache: it would be stale)."""
        self.schedule.force_all()
        self._publish_health(force=True)

    # ------------------------------------------------------------ polling

    def _start_poller(self) -> threading.Thread:
        thread = threading.Thread(target=self._poll_loop, name="poller", daemon=True)
        thread.start()
        return thread

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                self._heartbeat = now
                reread = self._take_reread()
                if reread:
                    self._do_reread(reread)
                    continue
                tiers = self.schedule.due(now)
                if not tiers:
                    self._wake.wait(min(self.schedule.sleep_s(now), 1.0))
                    self._wake.clear()
                    continue
                self._poll(tiers, now)
            except Exception:  # _poll never raises; this guards the loop itself (R1)
                log.exception("poll_loop_failed")
                self._stop.wait(1.0)

    def _addresses(self, tiers: Iterable[str]) -> set[int]:
        addresses: set[int] = set()
        for name in tiers:
            addresses |= set(self.unit.registers(self.tiers[name]))
        return addresses

    def _poll(self, tiers: list[str], started: float, pending: Future[PollReport] | None = None) -> bool:
        """One read of ``tiers`` (or the one ``pending`` is making); publishes changed values.
        Never raises; True when anything answered."""
        self.stats.cycles += 1
        good = False
        try:
            if pending is not None:
                report = pending.result()
            else:
                addresses = self._addresses(tiers)
                report = read_words(self.worker, addresses, missing=self.missing, stop=self._stop)
        except BusError as err:
            self._poll_failed(str(err))
        except Exception as err:  # bad data, a bug in a decoder: log, count, carry on (R1)
            if not self._poll_failures.failing:
                log.exception("poll_failed_unexpectedly")  # a bug: its traceback, once per outage
            self._poll_failed(f"{type(err).__name__}: {err}")
        else:
            good = self._poll_done(report, len(tiers) == len(self.tiers), started)
        self.schedule.done(tiers, started)
        if good:
            now = time.monotonic()
            for name in tiers:
                last = self._tier_read.get(name)
                if last is not None:
                    self.stats.longest_gap_s[name] = max(self.stats.longest_gap_s.get(name, 0.0), now - last)
                self._tier_read[name] = now
        return good

    def _poll_failed(self, why: str) -> None:
        if self._stop.is_set():
            return
        self.stats.failed_cycles += 1
        self.stats.last_error = why
        self._poll_failures.failed(why, port=redact(self.config.port))
        if self.publisher is not None and self.ready.is_set():
            self.publisher.set_state("alert")

    def _poll_done(self, report: PollReport, full: bool, started: float) -> bool:
        self.stats.transactions += report.transactions
        self.stats.failed_chunks += report.failed_chunks
        self.stats.missing_registers = len(self.missing)
        if not report.words:
            self._poll_failed("no register answered")
            return False
        self.cache.update(report.words, at=started)  # a write's read-back since then wins
        if self.energy is not None:
            self.energy.feed(report.words)  # this poll's own words: a cached value is no sample
        self.stats.good_cycles += 1
        self.stats.last_good_wall = time.time()
        self.stats.last_good_mono = time.monotonic()
        if full:
            self.stats.last_cycle_s = time.monotonic() - started
        self._poll_failures.recovered("poll_recovered")
        if report.failed:
            self.stats.last_error = (
                f"{len(report.failed)} registers failed: {next(iter(report.failed.values()))}"
            )
        else:
            self.stats.last_error = None  # $health tells what is wrong now, not what once was
        self.publish_values()
        if self.publisher is not None and self.ready.is_set():
            self.publisher.set_state("ready")
        return True

    def publish_values(self) -> int:
        """Publish every value that changed since it was last sent (all of them after a reset)."""
        if self.publisher is None:
            return 0
        with self._values_lock:
            force, self._republish = self._republish, False
            try:
                values = self.unit.values(self.cache.words())
                if self.energy is not None:
                    values.update(self.energy.values())
            except Exception as err:  # a decoder choking on a word must not stop the bridge
                log.exception("values_failed")
                self.stats.last_error = f"decoding failed: {err}"
                return 0
            return self.publisher.retain_many(
                ((f"{self.root}/{key}", payload) for key, payload in values.items()), force=force
            )

    # ------------------------------------------------------------ writes

    def _on_set(self, msg: mqtt.MQTTMessage) -> None:
        """paho thread: validate, queue the write at WRITE priority, return (never blocks).

        Every command ends in one outcome on ``$write-result`` (docs/writes.md): ``applied`` with
        the value read back, ``refused`` with the reason (nothing written), or ``failed`` when the
        unit did not answer. A refused or failed command also republishes the property's current
        value, so a client that showed the new value at once (Home Assistant) snaps back.
        """
        node_prop = msg.topic[len(self.root) + 1 : -len("/set")]
        if msg.retain:
            # A retained command would be replayed on every restart: refuse it (and it was cleared).
            shown = _shown(msg.payload.decode("utf-8", errors="replace"))
            log.warning(
                "set_ignored_retained",
                property=node_prop,
                value=shown,
                reason="a retained command would be replayed on every restart",
            )
            return
        try:
            payload = msg.payload.decode("utf-8")
        except UnicodeDecodeError:
            self._refuse(node_prop, repr(msg.payload[:_MAX_LOGGED_PAYLOAD]), "the payload is not UTF-8 text")
            return
        spec = self.unit.spec(node_prop)
        setter = None if spec is None else spec.setter
        if setter is None:
            why = "no such property" if spec is None else "a read-only property"
            self._refuse(node_prop, payload, why)
            return
        wrong = homie.set_payload_error(spec.datatype, payload)
        if wrong is not None:  # checked before any parsing: a 5,000-digit number costs nothing
            self._refuse(node_prop, payload, wrong)
            return
        try:
            writes = list(setter.writes(payload, self.cache.words()))
        except UsageError as err:
            self._refuse(node_prop, payload, str(err))
            return
        except Exception as err:
            log.exception("set_failed_to_encode", property=node_prop, value=_shown(payload))
            self._refuse(node_prop, payload, f"internal error: {type(err).__name__}")
            return
        if not writes:
            log.info("set_unchanged", property=node_prop, value=_shown(payload))
            self._outcome(node_prop, payload, "applied", value=self._republish_property(node_prop))
            return
        if not self.worker.line_up:
            # Queued, it would run whenever the line comes back, maybe hours later: refuse it now.
            self._failed(node_prop, payload, "no answer from the heat pump: the line is down")
            return
        readback = sorted(setter.readback())
        log.info("set_requested", property=node_prop, value=_shown(payload), writes=writes)

        def job(bus: Bus) -> tuple[dict[int, int], list[str]]:
            for address, word in writes:
                bus.write_register(address, word)
            words: dict[int, int] = {}
            lost: list[str] = []
            for chunk in plan_chunks(readback):
                try:
                    words.update(zip(chunk.addresses, chunk.read(bus), strict=True))
                except (ExceptionReply, FrameError, BusError) as err:
                    log.warning("readback_failed", registers=str(chunk), error=str(err))
                    lost.append(str(err))
            return words, lost

        def done(future: Any) -> None:  # runs on the worker thread; publish only queues
            try:
                words, lost = future.result()
            except ExceptionReply as err:  # an answer: the board would not take it
                self._refuse(node_prop, payload, f"the heat pump refused it: {err}")
                return
            except Exception as err:
                self.stats.last_error = f"write failed: {err}"
                self._failed(node_prop, payload, f"no answer from the heat pump: {err}")
                return
            self.stats.writes += 1
            self.cache.update(words)
            self.publish_values()
            value = self._republish_property(node_prop)  # even unchanged: the command concluded
            written = [[address, word] for address, word in writes]
            if lost:
                reason = f"written, but the read-back did not answer: {lost[0]}"
                self._outcome(node_prop, payload, "unconfirmed", value=value, written=written, reason=reason)
            else:
                self._outcome(node_prop, payload, "applied", value=value, written=written)
            log.info("set_done", property=node_prop, value=_shown(payload), published=value)

        self.worker.submit(job, Priority.WRITE).add_done_callback(done)

    def _refuse(self, node_prop: str, payload: str, reason: str) -> None:
        """A command that is not written: logged with the reason, answered, the value republished."""
        self.stats.writes_refused += 1
        log.warning("set_refused", property=node_prop, value=_shown(payload), reason=reason)
        value = self._republish_property(node_prop)
        self._outcome(node_prop, payload, "refused", value=value, reason=reason)

    def _failed(self, node_prop: str, payload: str, reason: str) -> None:
        self.stats.writes_failed += 1
        log.error("set_failed", property=node_prop, value=_shown(payload), error=reason)
        value = self._republish_property(node_prop)
        self._outcome(node_prop, payload, "failed", value=value, reason=reason)

    def _republish_property(self, node_prop: str) -> str | None:
        """Publish a property's current value again (retained, even unchanged); the value or None."""
        spec = self.unit.spec(node_prop)
        if spec is None or not spec.retained or self.publisher is None:
            return None
        try:
            payload: str | None = spec.payload(self.cache.words())
        except Exception:  # a decoder choking on a word must not stop the answer
            log.exception("values_failed", property=node_prop)
            return None
        if payload is not None:
            self.publisher.retain(f"{self.root}/{node_prop}", payload, force=True)
        return payload

    def _outcome(
        self,
        node_prop: str,
        payload: str,
        result: str,
        *,
        value: str | None = None,
        reason: str | None = None,
        written: list[list[int]] | None = None,
    ) -> None:
        """One ``$write-result`` message (QoS 1, not retained) for one command."""
        if self.publisher is None:
            return
        document: dict[str, Any] = {"property": node_prop, "payload": _shown(payload), "result": result}
        if value is not None:
            document["value"] = value
        if reason is not None:
            document["reason"] = reason
        if written is not None:
            document["written"] = written
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        self.publisher.publish(f"{self.root}/{WRITE_RESULT}", text, qos=1)

    # ------------------------------------------------------------ line state, watchdog, health

    def _line_state(self, up: bool, why: str | None) -> None:
        """Worker thread: the line went down (alert at once) or came back (ready after a good poll)."""
        if not up:
            self.stats.last_error = why
            if self.publisher is not None and self.publisher.connected:
                self.publisher.set_state("alert")  # also during start-up: better than a stuck init
        else:
            # A reopened line may lead to a rebooted or replaced board: ask again for every register.
            self.missing.clear()
            self.schedule.force_all()

    def _watch(self) -> None:
        """Main thread until stop: health document, and recovery when something stalls (R3)."""
        fast = self.config.intervals_s["fast"]
        every = min(fast, HEALTH_EVERY_S)
        while not self._stop.wait(every):
            try:
                self._watchdog(time.monotonic())
                self._publish_health()
                self._log_status(time.monotonic())
                if self.worker.alive():
                    # systemd's watchdog (WatchdogSec=) restarts a bridge whose main loop hangs.
                    sd_notify("WATCHDOG=1")
            except Exception:  # the watchdog itself must never die
                log.exception("watchdog_failed")

    def _watchdog(self, now: float) -> None:
        fast = self.config.intervals_s["fast"]
        stale_s = max(self.config.watchdog_cycles * fast, WATCHDOG_MIN_S)
        worker, pub = self.worker, self.publisher
        assert pub is not None
        if not worker.alive():
            log.error("worker_died")  # cannot happen by design; let the service manager restart us
            self._exit_code = 1
            self._stop.set()
            return
        if worker.busy_since is not None and now - worker.busy_since > STUCK_JOB_S:
            worker.force_close("one job ran for over a minute")
        if self._poll_thread is not None and not self._poll_thread.is_alive():
            log.error("poller_died_restarting")
            self._poll_thread = self._start_poller()
        # Any answered transaction proves the line alive: $modbus clients keeping the bus busy can
        # delay polls, and that is no reason to reset the line under them.
        last_good = max(self.stats.last_good_mono or self.stats.started_mono, worker.last_success or 0.0)
        if worker.line_up and now - last_good > stale_s and now - self._last_reset > stale_s:
            self._last_reset = now
            self.stats.watchdog_resets += 1
            log.warning("watchdog_bus_reset", silent_s=round(now - last_good, 1))
            worker.reset(f"no good poll for {now - last_good:.0f} s")
            self._republish = True
            self.schedule.force_all()
        if not pub.paho_thread_alive():
            pub.restart_loop()
        elif (
            pub.connected
            and pub.counters.published > pub.counters.acked  # something is waiting for its PUBACK
            and pub.counters.last_ack
            and now - pub.counters.last_ack > max(MQTT_ACK_STALE_S, 3 * stale_s)
        ):
            # $health goes out every few seconds: minutes without a PUBACK on a session that
            # looks connected is a half-open connection (R3); paho reconnects once it breaks.
            pub.kick()
            pub.counters.last_ack = now

    def _log_status(self, now: float) -> None:
        """One INFO line an hour: a log that only ever shows trouble cannot tell "fine" from "dead"."""
        if now - self._last_status < STATUS_LOG_EVERY_S:
            return
        self._last_status = now
        bus = self.worker.stats
        log.info(
            "bridge_status",
            state=self.publisher.state if self.publisher else "init",
            good_cycles=self.stats.good_cycles,
            failed_cycles=self.stats.failed_cycles,
            transactions=bus.transactions,
            retries=bus.retries,
            timeouts=bus.timeouts,
            reconnects=bus.reconnects,
            writes=self.stats.writes,
            watchdog_resets=self.stats.watchdog_resets,
        )

    def health(self) -> str:
        """The health document as published."""
        pub = self.publisher
        counters = pub.counters if pub else None
        passthrough = getattr(self.passthrough, "counters", None)
        return health_document(
            state=pub.state if pub else "init",
            poll=self.stats,
            bus=self.worker.stats.as_dict(),
            mqtt={
                "connected": int(bool(pub and pub.connected)),
                "connects": counters.connects if counters else 0,
                "reconnects": max(0, counters.connects - 1) if counters else 0,
                "published": counters.published if counters else 0,
                "refused": counters.refused if counters else 0,
            },
            worker={
                "longest_wait_s": self.worker.longest_wait_s,
                "coalesced": self.worker.coalesced,
                "most_polls_waited": self.worker.most_polls_waited,
                "most_transactions_waited": self.worker.most_transactions_waited,
                # the longest wait of any write, interactive, bulk and poll job (the bench flags them)
                **{f"longest_wait_{k}_s": v for k, v in self.worker.longest_waits_s.items()},
                "merged_transactions": self.worker.merged_transactions,
                "merged_jobs": self.worker.merged_jobs,
                "merge_fallbacks": self.worker.merge_fallbacks,
                "pending": self.worker.pending(),
                "line_up": int(self.worker.line_up),
            },
            passthrough=dict(passthrough) if isinstance(passthrough, Mapping) else None,
            vports=self.vports.health() if self.vports is not None else None,
        )

    def _publish_health(self, force: bool = False) -> None:
        pub = self.publisher
        self._write_status(pub.state if pub is not None else "init")
        if pub is None or not self.root:
            return
        if not pub.connected:
            return  # queued, it would reach the broker after the outage, stale: skip it
        now = time.monotonic()
        if not force and now - self._last_health < HEALTH_EVERY_S * 0.9:
            return
        self._last_health = now
        pub.retain(f"{self.root}/$health", self.health(), force=True, cache=False)
        if self.config.homie:  # the legacy-stats extension announced in $extensions
            uptime = round(time.monotonic() - self.stats.started_mono)
            pub.retain(f"{self.root}/{homie.STATS_UPTIME}", str(uptime), force=True)

    def _write_status(self, state: str) -> None:
        """The status file the container healthcheck reads, and systemd's STATUS= line."""
        error = self.stats.last_error if state != "ready" else None
        status.write_status(self._status_path, state, error)
        told = f"STATUS={state}" + (f": {error}" if error else "")
        if told != self._told_systemd and self.ready.is_set():  # READY=1 comes first
            self._told_systemd = told
            sd_notify(told)

    def _shutdown(self) -> None:
        sd_notify("STOPPING=1")
        self._stop.set()
        self._wake.set()
        if self._poll_thread is not None:
            self._poll_thread.join(5)
        if self.vports is not None:
            self.vports.stop()
        self.worker.stop()
        if self.passthrough is not None:
            self.passthrough.close()  # after the worker: the requests it failed are answered
        if self.energy is not None:
            self.energy.save()
        if self.publisher is not None:
            self.publisher.stop("disconnected")
            log.info("bridge_stopped")
