"""The bridge's side of the energy counters: which unit has them, where their state is kept, when
it is saved, and what the poll feeds in (the counting itself is :mod:`.energy`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from .energy import EnergyMeter, channels_for, load_state, save_state

if TYPE_CHECKING:
    from .device import Unit

log = structlog.get_logger(__name__)

SAVE_EVERY_S = 120.0  # the file is the fallback; the broker holds the counters after every poll
GAP_CYCLES = 5  # "a few poll intervals": a longer silence adds nothing
MIN_GAP_S = 3.0


def max_gap_for(fast_interval_s: float) -> float:
    """The longest interval between two fast polls that is still integrated."""
    return max(GAP_CYCLES * fast_interval_s, MIN_GAP_S)


class EnergyRecorder:
    """The meter of one unit, fed by the fast poll, saved to ``path`` (None: no file)."""

    def __init__(self, unit: Unit, *, path: Path | None, max_gap_s: float) -> None:
        self.node = "energy"
        self.meter = EnergyMeter(channels_for(pump=unit.components.pump is not None), max_gap_s=max_gap_s)
        self.path = path
        self._lock = threading.Lock()  # polls feed (poll thread, main at start-up); values go out from any
        self._saved = time.monotonic()
        self._save_failed = False

    @staticmethod
    def wanted(unit: Unit) -> bool:
        """Whether ``unit`` has an energy node (it measures power: register 412 = 2)."""
        return unit.spec("energy/electrical-total") is not None

    def restore(self, retained: Mapping[str, bytes], root: str) -> None:
        """Carry on from the state file and the retained values found at start-up."""
        prefix = f"{root}/{self.node}/"
        published = {
            topic[len(prefix) :]: payload.decode("utf-8", "replace")
            for topic, payload in retained.items()
            if topic.startswith(prefix) and "/" not in topic[len(prefix) :]
        }
        saved = load_state(self.path) if self.path is not None else None
        with self._lock:
            self.meter.restore(saved, published)
            totals = {k: round(v, 3) for k, v in self.meter.totals.items()}
        log.info(
            "energy_restored",
            from_file=saved is not None,
            from_broker=sum(1 for k in published if k in self.meter.ids),
            kwh=totals,
            state_file=str(self.path) if self.path else None,
        )

    def feed(self, words: Mapping[int, int]) -> None:
        """One poll's fresh words (ignored unless the fast tier was read)."""
        with self._lock:
            self.meter.add_words(words, mono=time.monotonic(), wall=time.time())
        if time.monotonic() - self._saved >= SAVE_EVERY_S:
            self.save()

    def values(self) -> dict[str, str]:
        """``energy/<property>`` → payload."""
        with self._lock:
            return {f"{self.node}/{k}": v for k, v in self.meter.values(time.time()).items()}

    def save(self) -> None:
        """Write the state file now; a failure is logged once and the broker stays the store."""
        self._saved = time.monotonic()
        if self.path is None:
            return
        with self._lock:
            state = self.meter.state()
        try:
            save_state(self.path, state)
        except OSError as err:
            if not self._save_failed:
                log.warning(
                    "energy_state_not_saved",
                    path=str(self.path),
                    error=str(err),
                    hint="the counters still survive restarts through the broker's retained values; "
                    "set --energy-state to a writable file",
                )
            self._save_failed = True
        else:
            if self._save_failed:
                log.info("energy_state_saved_again", path=str(self.path))
            self._save_failed = False
