"""What the bridge's threads share: its configuration, the detected unit, the raw-word cache, the
counters, the poll schedule, and the one way values reach the broker.

The thread table in docs/architecture.md#threads says which thread writes which of these. Each
piece is thread-safe on its own (the cache, the schedule, the publisher and the worker lock
inside); what several threads set together (``PollStats``) are counters and the last error, where
the last writer winning is what ``$health`` should show.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from aurora.mqtt import MqttSettings
from paho.mqtt.enums import MQTTProtocolVersion

from .health import PollStats
from .poller import WordCache
from .schedule import DEFAULT_INTERVALS_S, PollSchedule
from .spec import Tier
from .vport_config import VportConfig
from .worker import BusWorker

if TYPE_CHECKING:
    from .device import Unit
    from .metering import EnergyRecorder
    from .publisher import Publisher

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """Everything the command line decides (see cli.py for the defaults and env variables)."""

    port: str
    mqtt: MqttSettings
    device_name: str = "WaterFurnace"
    homie: bool = True
    home_assistant: bool = True
    intervals_s: Mapping[Tier, float] = field(default_factory=lambda: dict(DEFAULT_INTERVALS_S))
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


class Shared:
    """The state of one bridge run that more than one thread uses.

    ``unit``, ``root``, ``publisher`` and ``energy`` are set once by the main thread during
    start-up, before the threads that use them start; the rest is made here and never replaced.
    """

    def __init__(self, config: BridgeConfig, worker: BusWorker, stop: threading.Event) -> None:
        self.config = config
        self.worker = worker
        self.stop = stop
        self.cache = WordCache()
        self.stats = PollStats()
        self.schedule = PollSchedule(config.intervals_s)
        self.missing: set[int] = set()  # registers the board says it lacks: not asked for again
        self.ready = threading.Event()  # the first publish of the tree is done
        self.unit: Unit | None = None
        self.root = ""
        self.publisher: Publisher | None = None
        self.energy: EnergyRecorder | None = None
        self._values_lock = threading.Lock()
        self._republish = False

    @property
    def detected(self) -> Unit:
        """The unit; only asked for once detection found it."""
        if self.unit is None:
            raise RuntimeError("the unit is not detected yet")
        return self.unit

    def republish_all(self) -> None:
        """Send every value again with the next ``publish_values`` (after a line reset)."""
        self._republish = True

    def publish_values(self) -> int:
        """Publish every value that changed since it was last sent (all of them after a reset).

        Called by the poll thread, the bus worker (a write's read-back, a raw write) and paho's
        thread; the lock keeps two snapshots from being published out of order.
        """
        if self.publisher is None:
            return 0
        with self._values_lock:
            force, self._republish = self._republish, False
            try:
                values = self.detected.values(self.cache.words())
                if self.energy is not None:
                    values.update(self.energy.values())
            except Exception as err:  # a decoder choking on a word must not stop the bridge
                log.exception("values_failed")
                self.stats.last_error = f"decoding failed: {err}"
                return 0
            return self.publisher.retain_many(
                ((f"{self.root}/{key}", payload) for key, payload in values.items()), force=force
            )

    def republish_property(self, node_prop: str) -> str | None:
        """Publish a property's current value again (retained, even unchanged); the value or None."""
        spec = self.detected.spec(node_prop)
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
