"""The poll schedule as a policy (sans-io): each tier's interval, what is due when, and what a raw
write makes due (docs/architecture.md#value-path).

The poll thread asks ``next(now)`` and does what it says: read what a raw write affected, read the
due tiers, or sleep. Other threads only tell the schedule what happened (``wrote``, ``force_all``);
nothing here reads the line or knows a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .effects import WriteEffects
from .spec import Tier

__all__ = ["DEFAULT_INTERVALS_S", "Idle", "PollSchedule", "PollStep", "ReadTiers", "Reread", "Tier"]

DEFAULT_INTERVALS_S: Mapping[Tier, float] = {Tier.FAST: 5.0, Tier.MEDIUM: 30.0, Tier.SLOW: 300.0}
MAX_IDLE_S = 1.0  # the poll thread looks again at least this often (a stop, a missed wake-up)


@dataclass(frozen=True, slots=True)
class Reread:
    """Read these registers now: a raw write changed what they show."""

    addresses: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ReadTiers:
    """Read these tiers now, in one pass (tiers due together cost fewer transactions)."""

    tiers: tuple[Tier, ...]


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing is due: wait this long, or until ``wrote`` or ``force_all`` wakes the poll thread."""

    seconds: float


PollStep = Reread | ReadTiers | Idle


class PollSchedule:
    """When each tier is next due, and which registers a raw write asks to read again.

    Thread-safe: the poll thread asks ``next`` and reports ``done``; the bus worker (line back up,
    a raw write), paho's thread (reconnect) and the watchdog call ``force_all`` and ``wrote``.
    """

    def __init__(self, intervals_s: Mapping[Tier, float] = DEFAULT_INTERVALS_S) -> None:
        missing = [tier.value for tier in Tier if tier not in intervals_s]
        if missing:
            raise ValueError(f"no poll interval for tier {', '.join(missing)}")
        self.intervals_s: dict[Tier, float] = {tier: float(intervals_s[tier]) for tier in Tier}
        self.next_due: dict[Tier, float] = {}
        self.effects: WriteEffects | None = None  # set once the unit is known
        self._reread: set[int] = set()
        self._lock = threading.Lock()
        self.wake = threading.Event()  # set when something became due before the planned time

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """Every tier, fastest first."""
        return tuple(self.intervals_s)

    def interval_s(self, tier: Tier) -> float:
        """Seconds between two reads of ``tier``."""
        return self.intervals_s[tier]

    def passes(self, tiers: tuple[Tier, ...], *, flooded: bool) -> list[tuple[Tier, ...]]:
        """How to read ``tiers`` due together: in one pass (fewer transactions), or, while
        requests wait at the bus worker (``flooded``), one pass a tier, fastest first. Under a
        flood the poll goes in pieces, a few a second, and in one pass the fast tier's values
        would wait for every register of the slower ones (at 200 clients its gap reached 10 s,
        2 x its interval; issue 15)."""
        if not flooded or len(tiers) < 2:
            return [tiers]
        return [(tier,) for tier in sorted(tiers, key=self.interval_s)]

    # ------------------------------------------------------------ what is due

    def next(self, now: float) -> PollStep:
        """What the poll thread should do at ``now``: re-reads first, then the due tiers."""
        with self._lock:
            if self._reread:
                wanted, self._reread = tuple(sorted(self._reread)), set()
                return Reread(wanted)
        tiers = self.due(now)
        if tiers:
            return ReadTiers(tuple(tiers))
        return Idle(min(self.sleep_s(now), MAX_IDLE_S))

    def due(self, now: float) -> list[Tier]:
        """The tiers due at ``now`` (all of them the first time)."""
        with self._lock:
            return [tier for tier in self.intervals_s if self.next_due.get(tier, 0.0) <= now]

    def sleep_s(self, now: float) -> float:
        """Seconds until the next tier is due (0 when one is due already)."""
        with self._lock:
            if not self.next_due:
                return 0.0
            return max(0.0, min(self.next_due.get(t, 0.0) for t in self.intervals_s) - now)

    # ------------------------------------------------------------ what happened

    def done(self, tiers: Iterable[Tier], started: float) -> None:
        """Schedule the next read of ``tiers`` one interval after this one started (no drift)."""
        with self._lock:
            for tier in tiers:
                interval = self.intervals_s[tier]
                due = self.next_due.get(tier, started) + interval
                # After an outage, don't fire a burst of catch-up cycles: start again from now.
                self.next_due[tier] = due if due > started else started + interval

    def force_all(self) -> None:
        """Make every tier due now (the line came back, MQTT reconnected, the watchdog reset)."""
        with self._lock:
            self.next_due.clear()
        self.wake.set()

    def wrote(self, written: Iterable[int]) -> bool:
        """A raw write changed ``written``: the registers it shows up in (``effects.py``) are due
        now, the tiers stay as they are. True when that made anything due."""
        wanted = self.effects.reread(written) if self.effects is not None else []
        if not wanted:
            return False
        with self._lock:
            self._reread.update(wanted)
        self.wake.set()
        return True
