"""The retained ``$health`` document: a dead or sick bridge is visible although values are retained.

Published at ``homie/<device_id>/$health`` every fast cycle, at most every ``HEALTH_EVERY_S``.
A reader compares ``published_at`` with the clock: a document minutes old means a dead bridge
(its will only says ``lost`` once the broker notices the dropped session).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .spec import Tier

HEALTH_EVERY_S = 5.0


def _iso(wall: float | None) -> str | None:
    return None if wall is None else datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class PollStats:
    """The bridge's counters for ``$health``: plain fields, each written without a lock.

    Several threads write them (docs/architecture.md#threads): the poll thread the poll counters,
    the main thread the first poll's and ``watchdog_resets``, paho's thread ``writes_refused``
    and ``writes_failed`` (validation, a line already down), the bus worker ``writes`` and the
    same two for a write that failed on the line; ``last_error`` any of them, the latest trouble
    winning. Two threads incrementing the same counter at the same instant could lose one count:
    a figure in ``$health`` may be one short, nothing depends on it being exact.
    """

    cycles: int = 0
    good_cycles: int = 0
    failed_cycles: int = 0
    failed_chunks: int = 0
    transactions: int = 0
    missing_registers: int = 0
    last_good_wall: float | None = None  # time.time() of the last cycle with at least one answer
    last_good_mono: float | None = None
    last_cycle_s: float = 0.0  # wall time of the last full (all tiers) read
    last_error: str | None = None
    writes: int = 0
    writes_refused: int = 0
    writes_failed: int = 0
    watchdog_resets: int = 0
    # Per tier, the longest time between two good reads: a value is never older than this (the
    # goal: within twice the tier's interval, however busy the line is; issue 15).
    longest_gap_s: dict[Tier, float] = field(default_factory=dict)
    rereads: int = 0  # reads of what a raw write affects, instead of polling every tier again
    started_mono: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)


def health_document(
    *,
    state: str,
    poll: PollStats,
    bus: dict[str, float | int],
    mqtt: dict[str, int],
    worker: dict[str, float | int],
    passthrough: dict[str, int] | None = None,
    vports: dict[str, int] | None = None,
    now_mono: float | None = None,
) -> str:
    """The JSON payload (keys sorted, so equal documents compare equal)."""
    now = time.monotonic() if now_mono is None else now_mono
    doc: dict[str, object] = {
        "uptime_s": round(now - poll.started_mono, 1),
        "started_at": _iso(poll.started_wall),
        "published_at": _iso(time.time()),
        "state": state,
        "last_good_poll": _iso(poll.last_good_wall),
        "last_error": poll.last_error,
        "bus": {k: round(v, 4) if isinstance(v, float) else v for k, v in bus.items()},
        "poll": {
            "cycles": poll.cycles,
            "good_cycles": poll.good_cycles,
            "failed_cycles": poll.failed_cycles,
            "failed_chunks": poll.failed_chunks,
            "transactions": poll.transactions,
            "missing_registers": poll.missing_registers,
            "last_cycle_s": round(poll.last_cycle_s, 3),
            "writes": poll.writes,
            "writes_refused": poll.writes_refused,
            "writes_failed": poll.writes_failed,
            "watchdog_resets": poll.watchdog_resets,
            "rereads": poll.rereads,
            "longest_gap_s": {tier.value: round(gap, 3) for tier, gap in poll.longest_gap_s.items()},
        },
        "mqtt": mqtt,
        "worker": {k: round(v, 4) if isinstance(v, float) else v for k, v in worker.items()},
    }
    if passthrough is not None:
        doc["passthrough"] = passthrough
    if vports is not None:  # only with virtual ports configured: clients connected, requests served
        doc["vports"] = vports
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))
