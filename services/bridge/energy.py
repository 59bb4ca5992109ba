"""Energy counters: the unit's power readings integrated over the fast poll into kWh.

The heat pump measures power (registers 1146-1153 and 1164-1165, W) and the heat it moves (heat of
extraction 1154-1155 and rejection 1156-1157, BTU/h) but keeps no energy counter. The
:class:`EnergyMeter` integrates each fast poll's readings (trapezoids between two polls) into
counters that only ever grow:

* electrical: total (1152), compressor (1146), blower (1148), aux heat (1150), loop pump (1164);
* thermal heating delivered: heat of extraction + compressor power while the compressor heats
  (the heat taken from the loop plus the compressor's work, both end up in the house), plus the
  aux heater's power (resistance heat reaches the house whole);
* thermal cooling delivered: heat of rejection − compressor power while the compressor cools
  (what goes into the loop is the heat taken from the house plus the compressor's work).

Two polls further apart than ``max_gap_s`` (an outage of the line, the bridge or the machine) add
nothing: the power in between is unknown. The gap is logged once, when readings come back.

The meter also keeps the counters' values at the start of each local day (``days``), which gives
the energy of every day, today's COP and the web dashboard's daily bars. Its whole state is a small
JSON document (:meth:`EnergyMeter.state`), saved to a file; the published counters and the
retained ``history`` property let a bridge without that file start where the last one stopped.

Pure apart from :func:`load_state` and :func:`save_state` (the file) and one log line per gap.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aurora import registers as regs
from aurora.logs import get_logger

from .derived import BTUH_PER_WATT, COP_LIMIT

log = get_logger(__name__)  # structlog imported when it first logs (issue 15)

__all__ = ["BTUH_PER_WATT"]
MAX_PLAUSIBLE_W: Final = 200_000.0  # a 32-bit glitch reads millions of W; no home unit draws this
STATE_VERSION: Final = 1
HISTORY_DAYS: Final = 100  # day starts kept: the web's daily bars and a season of days
COP_MIN_KWH: Final = 0.05  # below this much electricity today the ratio means nothing yet
COP_MAX: Final = COP_LIMIT
FAST_MARKER: Final = 30  # system outputs: read by every fast poll (the unit's current mode)

Words = Mapping[int, int]


@dataclass(frozen=True, slots=True)
class Channel:
    """One counter: its Homie property id and name, and how its power comes from the words read
    (their decoded values, through the register map)."""

    id: str
    name: str
    kind: str  # "electrical" or "thermal"
    registers: tuple[int, ...]
    watts: Callable[[Words], float | None]


def _decoded(address: int, w: Words) -> float | None:
    value = regs.reading(address, w)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _u32(address: int) -> Callable[[Words], float | None]:
    return lambda w: _decoded(address, w)


def _compressor(w: Words) -> bool:
    return bool(regs.is_set(30, "cc", w) or regs.is_set(30, "cc2", w))


def _heating_w(w: Words) -> float | None:
    aux = _decoded(1150, w)
    if aux is None:
        return None
    if _compressor(w) and not regs.is_set(30, "rv", w):
        extracted, compressor = _decoded(1154, w), _decoded(1146, w)
        if extracted is None or compressor is None:
            return None
        return max(0.0, extracted / BTUH_PER_WATT) + compressor + aux
    return aux


def _cooling_w(w: Words) -> float | None:
    if _compressor(w) and regs.is_set(30, "rv", w):
        rejected, compressor = _decoded(1156, w), _decoded(1146, w)
        if rejected is None or compressor is None:
            return None
        return max(0.0, rejected / BTUH_PER_WATT - compressor)
    return 0.0


TOTAL = Channel("electrical-total", "Electricity Used", "electrical", (1152, 1153), _u32(1152))
COMPRESSOR = Channel(
    "electrical-compressor", "Compressor Electricity", "electrical", (1146, 1147), _u32(1146)
)
BLOWER = Channel("electrical-blower", "Blower Electricity", "electrical", (1148, 1149), _u32(1148))
AUX_HEAT = Channel("electrical-aux-heat", "Aux Heat Electricity", "electrical", (1150, 1151), _u32(1150))
PUMP = Channel("electrical-pump", "Loop Pump Electricity", "electrical", (1164, 1165), _u32(1164))
HEATING = Channel(
    "thermal-heating", "Heat Delivered", "thermal", (30, 1146, 1147, 1150, 1151, 1154, 1155), _heating_w
)
COOLING = Channel("thermal-cooling", "Cooling Delivered", "thermal", (30, 1146, 1147, 1156, 1157), _cooling_w)
THERMAL_IDS: Final = (HEATING.id, COOLING.id)


def channels_for(*, pump: bool) -> tuple[Channel, ...]:
    """The counters of a unit with an energy monitor; ``pump``: it measures its loop pump (1164)."""
    return (TOTAL, COMPRESSOR, BLOWER, AUX_HEAT, *((PUMP,) if pump else ()), HEATING, COOLING)


def powers(channels: Iterable[Channel], words: Words) -> dict[str, float | None]:
    """Each channel's power in W from one poll's words; None where a register was not read this
    time or the reading is implausible (then that channel's next interval adds nothing)."""
    out: dict[str, float | None] = {}
    for channel in channels:
        if any(a not in words for a in channel.registers):
            out[channel.id] = None
            continue
        out[channel.id] = _plausible(channel.watts(words))
    return out


def _plausible(watts: float | None) -> float | None:
    ok = watts is not None and math.isfinite(watts) and 0 <= watts <= MAX_PLAUSIBLE_W
    return watts if ok else None


@dataclass(slots=True)
class _Sample:
    mono: float | None  # None: restored from a saved state (another process's clock)
    wall: float
    watts: dict[str, float | None]


def local_day(wall: float) -> str:
    """The local calendar day (``YYYY-MM-DD``, the bridge's time zone) of a Unix time."""
    return dt.datetime.fromtimestamp(wall).date().isoformat()


class EnergyMeter:
    """Monotonic kWh counters over a stream of power samples (see the module docstring)."""

    def __init__(self, channels: Iterable[Channel], *, max_gap_s: float) -> None:
        self.channels = tuple(channels)
        self.ids = tuple(c.id for c in self.channels)
        self.max_gap_s = max_gap_s
        self.totals: dict[str, float] = dict.fromkeys(self.ids, 0.0)
        self.days: dict[str, dict[str, float]] = {}  # local day → totals at its first sample
        self.gaps = 0
        self.samples = 0
        self._last: _Sample | None = None

    # ------------------------------------------------------------ integrating

    def add_words(self, words: Words, *, mono: float, wall: float) -> bool:
        """Take one poll's raw words; False (nothing done) unless it read this meter's registers."""
        if FAST_MARKER not in words:
            return False  # not a fast poll: a medium or slow tier alone
        self.add(powers(self.channels, words), mono=mono, wall=wall)
        return True

    def add(self, watts: Mapping[str, float | None], *, mono: float, wall: float) -> None:
        """One sample of every channel's power (W) taken at ``mono`` (this process's monotonic
        clock) and ``wall`` (Unix time). Readings that are not a plausible power count as missing."""
        last = self._last
        sample = _Sample(mono, wall, {i: _plausible(watts.get(i)) for i in self.ids})
        self._last = sample
        self.samples += 1
        before = dict(self.totals)
        added = self._integrate(last, sample) if last is not None else {}
        day = local_day(wall)
        if day not in self.days:
            # The part of the interval before midnight belongs to the day before.
            share = 0.0
            if last is not None and added and wall > last.wall:
                midnight = dt.datetime.fromisoformat(day).timestamp()
                share = min(max((midnight - last.wall) / (wall - last.wall), 0.0), 1.0)
            self.days[day] = {i: before[i] + added.get(i, 0.0) * share for i in self.ids}
            self._trim_days()

    def _integrate(self, last: _Sample, sample: _Sample) -> dict[str, float]:
        """Add the trapezoid between two samples to the totals; kWh added per channel."""
        same_clock = last.mono is not None and sample.mono is not None
        elapsed = sample.mono - last.mono if same_clock else sample.wall - last.wall  # type: ignore[operator]
        if elapsed <= 0:
            return {}  # a clock that went backwards: this sample only starts the next interval
        if elapsed > self.max_gap_s:
            self.gaps += 1
            log.warning(
                "energy_gap",
                gap_s=round(elapsed, 1),
                max_gap_s=self.max_gap_s,
                counted_kwh=0,
                hint="no power readings in between: nothing is added for the gap",
            )
            return {}
        added: dict[str, float] = {}
        for channel_id in self.ids:
            before, now = last.watts.get(channel_id), sample.watts[channel_id]
            if before is None or now is None:
                continue
            added[channel_id] = (before + now) / 2 * elapsed / 3_600_000.0
            self.totals[channel_id] += added[channel_id]
        return added

    def _trim_days(self) -> None:
        for day in sorted(self.days)[:-HISTORY_DAYS]:
            del self.days[day]

    # ------------------------------------------------------------ what is published

    def today(self, wall: float) -> dict[str, float]:
        """kWh of each counter since the start of ``wall``'s local day (as far as it was seen)."""
        start = self.days.get(local_day(wall))
        if start is None:
            return dict.fromkeys(self.ids, 0.0)
        return {i: max(0.0, self.totals[i] - start.get(i, self.totals[i])) for i in self.ids}

    def cop_today(self, wall: float) -> float | None:
        """Heat and cooling delivered today ÷ electricity used today; None before enough was used."""
        today = self.today(wall)
        return _ratio(sum(today.get(i, 0.0) for i in THERMAL_IDS), today.get(TOTAL.id, 0.0))

    def cop_running(self) -> float | None:
        """The same ratio over the counters' whole life."""
        return _ratio(sum(self.totals.get(i, 0.0) for i in THERMAL_IDS), self.totals.get(TOTAL.id, 0.0))

    def values(self, wall: float) -> dict[str, str]:
        """Property id → Homie payload: the counters (kWh, 3 decimals: Wh), both COPs when known,
        and ``history``, the day starts as JSON."""
        out = {i: f"{self.totals[i]:.3f}" for i in self.ids}
        for key, cop in (("cop-today", self.cop_today(wall)), ("cop-running", self.cop_running())):
            if cop is not None:
                out[key] = f"{cop:.2f}"
        out["history"] = self.history()
        return out

    def history(self) -> str:
        """The retained ``history`` payload: ``{"channels": [...], "days": {day: [kWh, ...]}}``,
        each day's counter values at its first sample, oldest first."""
        days = {d: [round(start.get(i, 0.0), 3) for i in self.ids] for d, start in sorted(self.days.items())}
        return json.dumps({"channels": list(self.ids), "days": days}, separators=(",", ":"))

    # ------------------------------------------------------------ persistence

    def state(self) -> dict[str, Any]:
        """Everything needed to carry on after a restart, as JSON-ready data."""
        last = self._last
        return {
            "version": STATE_VERSION,
            "totals": dict(self.totals),
            "days": {d: dict(v) for d, v in sorted(self.days.items())},
            "last": None if last is None else {"wall": last.wall, "watts": dict(last.watts)},
        }

    def restore(self, saved: Mapping[str, Any] | None, published: Mapping[str, str]) -> None:
        """Start from a saved state and from what the broker still holds (``published``: property
        id → payload of the retained counters and ``history``), whichever counted further.

        Each counter takes the larger of the two, so neither a lost state file nor a broker without
        persistence resets it. The saved last sample is kept only when the file is at least as new
        as the broker's values: then a restart shorter than ``max_gap_s`` is bridged.
        """
        file_totals = _numbers(saved.get("totals") if saved else None)
        broker_totals = {i: v for i in self.ids if (v := _number(published.get(i))) is not None}
        for i in self.ids:
            self.totals[i] = max(file_totals.get(i, 0.0), broker_totals.get(i, 0.0), self.totals[i])
        days = _history_days(published.get("history"))
        if saved and isinstance(saved.get("days"), Mapping):
            days.update({str(d): _numbers(v) for d, v in saved["days"].items() if isinstance(v, Mapping)})
        self.days.update(days)
        self._trim_days()
        last = saved.get("last") if saved else None
        newest = all(file_totals.get(i, 0.0) >= broker_totals.get(i, 0.0) - 0.0005 for i in self.ids)
        if isinstance(last, Mapping) and newest and (wall := _number(last.get("wall"))) is not None:
            raw = last.get("watts")
            watts = {i: _number(raw.get(i)) if isinstance(raw, Mapping) else None for i in self.ids}
            self._last = _Sample(None, wall, watts)


def _ratio(thermal: float, electrical: float) -> float | None:
    if electrical < COP_MIN_KWH:
        return None
    return round(min(max(thermal / electrical, 0.0), COP_MAX), 2)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str | bytes):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _numbers(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): n for k, v in value.items() if (n := _number(v)) is not None}


def _history_days(payload: str | None) -> dict[str, dict[str, float]]:
    """The day starts of a retained ``history`` payload; {} when it is missing or malformed."""
    if not payload:
        return {}
    try:
        data = json.loads(payload)
        channels = [str(c) for c in data["channels"]]
        days = data["days"]
        return {
            str(day): {c: n for c, v in zip(channels, values, strict=False) if (n := _number(v)) is not None}
            for day, values in days.items()
            if isinstance(values, list)
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("energy_history_unreadable", hint="daily figures start again from today")
        return {}


# ---------------------------------------------------------------- the state file


def load_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none or it is unreadable (logged, never raised)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("energy_state_unreadable", path=str(path), error=str(err))
        return None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        log.warning("energy_state_unreadable", path=str(path), error="not an energy state of this version")
        return None
    return data


def save_state(path: Path, state: Mapping[str, Any]) -> None:
    """Write the state atomically (a crash leaves the old file or the new one, never half of one).

    Raises OSError when the directory cannot be made or written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".energy-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(state, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
