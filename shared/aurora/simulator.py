"""The ABC board as a ModBus slave over a register map: what ``aurora_sim`` serves (no I/O here).

It answers FC 3, 6, 16, 65, 66, 67, 68 for slaves 1 (AID tool) and 2 (AWL). Like a real board it
refuses reads of more than 100 registers and registers it does not have; it mirrors the write-only
thermostat and zone registers into the registers they are read back from.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from . import rtu
from .errors import FrameError

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3
WF_READS = (rtu.FunctionCode.READ_RANGES, rtu.FunctionCode.READ_REGISTERS)


@dataclass(slots=True)
class BoardQuirks:
    """How this board differs from a 7 Series ABC: field behaviour the sim can reproduce."""

    refuse_wf_codes: bool = False  # commercial 17X553 boards: IllegalFunction for 65/66
    silent_wf_codes: bool = False  # boards that never answer 65/66


def _set_bits(word: int, mask: int, value: int) -> int:
    return (word & ~mask) | (value & mask)


class SimulatedAbc:
    """Register store plus request handling; thread-safe, so a test can read what was written."""

    def __init__(
        self,
        registers: Mapping[int, int],
        *,
        slaves: tuple[int, ...] = (1, 2),
        quirks: BoardQuirks | None = None,
    ) -> None:
        self._registers = dict(registers)
        self.slaves = slaves
        self.quirks = quirks or BoardQuirks()
        self._lock = threading.Lock()
        self.writes: list[tuple[int, int]] = []  # every (address, value) written, in order

    # ------------------------------------------------------------ the register store

    def get(self, address: int) -> int | None:
        """The raw word at ``address``, or None when the board has no such register."""
        with self._lock:
            return self._registers.get(address)

    def snapshot(self) -> dict[int, int]:
        """A copy of every register."""
        with self._lock:
            return dict(self._registers)

    def set(self, address: int, value: int) -> None:
        """Change a register as the unit itself would (no write mirroring)."""
        with self._lock:
            self._registers[address] = value & 0xFFFF

    def _write(self, address: int, value: int) -> None:
        self._registers[address] = value
        self.writes.append((address, value))
        self._mirror(address, value)

    def _mirror(self, address: int, value: int) -> None:
        """Write-only registers show up in the registers the AID tool reads them back from."""
        regs = self._registers
        if address == 12619:
            regs[745] = value
        elif address == 12620:
            regs[746] = value
        elif address == 12606:
            regs[12006] = _set_bits(regs.get(12006, 0), 0x0700, value << 8)
        elif address == 12621:
            fan = {0: 0, 1: 0x80, 2: 0x100}.get(value, 0)
            regs[12005] = _set_bits(regs.get(12005, 0), 0x0180, fan)
        elif address == 12622:
            regs[12005] = _set_bits(regs.get(12005, 0), 0x0E00, (value // 5) << 9)
        elif address == 12623:
            regs[12005] = _set_bits(regs.get(12005, 0), 0x7000, (max(value // 5 - 1, 0)) << 12)
        elif 21202 <= address <= 21252 and (address - 21202) % 9 <= 5:
            self._mirror_zone((address - 21202) // 9, (address - 21202) % 9, value)
        elif address == 21114:
            regs[31109] = value
        elif address == 21115:
            regs[31110] = value
        elif address == 323 and value != 0x7FFF and 325 in regs:
            regs[325] = value  # a manual pump speed is what the VS pump then runs at
        elif address == 47 and value == 0x5555:
            for counter in range(601, 700):  # clear fault history: counters of known codes to 0
                if regs.get(counter, 0xFFFF) != 0xFFFF:
                    regs[counter] = 0
        # 112, 321, 322, 340-347, 400, 401, 12309 and 12310 read back from the written register

    def _mirror_zone(self, zone: int, offset: int, value: int) -> None:
        regs = self._registers
        c1, c2 = 31008 + 3 * zone, 31009 + 3 * zone
        # mode: bits 8-10 of configuration 2, so eheat (4) reads back (docs/architecture.md#original-bridge
        # C8)
        if offset == 0:
            regs[c2] = _set_bits(regs.get(c2, 0), 0x0700, (value & 7) << 8)
        elif offset == 1:  # heating set point: 5 low bits in config 2, the 6th is config 1's bit 0
            t = max(0, min(63, value // 10 - 36))
            regs[c2] = _set_bits(regs.get(c2, 0), 0xF800, (t & 0x1F) << 11)
            regs[c1] = _set_bits(regs.get(c1, 0), 0x0001, t >> 5)
        elif offset == 2:  # cooling set point: bits 1-6 of config 1
            t = max(0, min(63, value // 10 - 36))
            regs[c1] = _set_bits(regs.get(c1, 0), 0x007E, t << 1)
        elif offset == 3:
            fan = {0: 0, 1: 0x80, 2: 0x100}.get(value, 0)
            regs[c1] = _set_bits(regs.get(c1, 0), 0x0180, fan)
        elif offset == 4:
            regs[c1] = _set_bits(regs.get(c1, 0), 0x0E00, (value // 5) << 9)
        elif offset == 5:
            regs[c1] = _set_bits(regs.get(c1, 0), 0x7000, max(value // 5 - 1, 0) << 12)

    # ------------------------------------------------------------ requests

    def respond(self, request: rtu.Request) -> bytes | None:
        """The reply frame to ``request``, or None when the board stays silent."""
        if request.slave not in self.slaves:
            return None
        f = request.function
        if f in WF_READS and self.quirks.silent_wf_codes:
            return None
        if f in WF_READS and self.quirks.refuse_wf_codes:
            return rtu.encode_exception(request, ILLEGAL_FUNCTION)
        with self._lock:
            if f in (rtu.FunctionCode.READ_HOLDING, *WF_READS):
                if not 1 <= request.register_count <= rtu.MAX_READ_REGISTERS:
                    return rtu.encode_exception(request, ILLEGAL_VALUE)
                try:
                    values = [self._registers[a] for a in request.addresses]
                except KeyError:
                    return rtu.encode_exception(request, ILLEGAL_ADDRESS)
                return rtu.encode_reply(request, values)
            if f in (
                rtu.FunctionCode.WRITE_SINGLE,
                rtu.FunctionCode.WRITE_MULTIPLE,
                rtu.FunctionCode.WRITE_REGISTERS,
            ):
                if any(a not in self._registers for a, _ in request.writes):
                    return rtu.encode_exception(request, ILLEGAL_ADDRESS)
                for address, value in request.writes:
                    self._write(address, value)
                return rtu.encode_reply(request)
            if f == rtu.FunctionCode.UNKNOWN_68:
                return rtu.encode_reply(request)
        return rtu.encode_exception(request, ILLEGAL_FUNCTION)

    def respond_to_frame(self, frame: bytes) -> bytes | None:
        """Decode a request frame and answer it; a garbled frame gets no answer, like a real slave."""
        try:
            return self.respond(rtu.decode_request(frame))
        except FrameError:
            return None


# ---------------------------------------------------------------- a unit that looks alive


@dataclass(frozen=True, slots=True)
class _Wave:
    address: int
    base: float  # raw units
    amplitude: float
    period_s: float
    signed: bool = False


# Temperatures in tenths of °F, watts as 32-bit pairs: slow waves with different periods.
_WAVES = (
    _Wave(1111, 480, 25, 900),  # entering water
    _Wave(1110, 420, 30, 900),  # leaving water
    _Wave(747, 705, 8, 1800),  # ambient
    _Wave(502, 705, 8, 1800),
    _Wave(742, 350, 60, 3600, signed=True),  # outdoor
    _Wave(740, 700, 10, 1200),  # entering air
    _Wave(900, 960, 40, 600),  # leaving air
    _Wave(31007, 702, 6, 1500),
    _Wave(31010, 688, 6, 1700),
    _Wave(31013, 715, 6, 1900),
    _Wave(1114, 1240, 40, 2400),  # DHW
    _Wave(3001, 6, 3, 600),  # compressor speed
    _Wave(1117, 85, 10, 700),  # waterflow
)
_WATTS = ((1146, 2100, 700, 600), (1148, 180, 40, 600), (1164, 90, 30, 700))


class Drift:
    """Moves temperatures, power and speed along slow waves so a demo looks alive."""

    def __init__(self, abc: SimulatedAbc, *, power: bool = True) -> None:
        self.abc = abc
        self.power = power  # False: a PowerProfile holds the power readings

    def step(self, t: float) -> None:
        """Set the drifting registers for time ``t`` (seconds)."""
        for w in _WAVES:
            if self.abc.get(w.address) is None:
                continue
            value = round(w.base + w.amplitude * math.sin(2 * math.pi * t / w.period_s))
            self.abc.set(w.address, value & 0xFFFF if w.signed else max(value, 0))
        if not self.power:
            return
        total = 0
        for address, base, amplitude, period in _WATTS:
            watts = max(0, round(base + amplitude * math.sin(2 * math.pi * t / period)))
            total += watts
            if self.abc.get(address) is not None:
                self.abc.set(address, watts >> 16)
                self.abc.set(address + 1, watts & 0xFFFF)
        if self.abc.get(1152) is not None:
            self.abc.set(1152, total >> 16)
            self.abc.set(1153, total & 0xFFFF)
        if self.abc.get(3422) is not None:
            self.abc.set(3422, 0)
            self.abc.set(3423, round(2100 + 700 * math.sin(2 * math.pi * t / 600)) & 0xFFFF)


# ---------------------------------------------------------------- a known power profile

# What ``aurora_sim --power`` sets: name → (register of the 32-bit pair, part of the total 1152)
POWER_REGISTERS: Mapping[str, tuple[int, bool]] = {
    "compressor": (1146, True),
    "blower": (1148, True),
    "aux": (1150, True),
    "pump": (1164, True),
    "extraction": (1154, False),  # heat of extraction, BTU/h
    "rejection": (1156, False),  # heat of rejection, BTU/h
}


@dataclass(frozen=True, slots=True)
class PowerStep:
    """From ``after_s`` seconds on, these readings (W; BTU/h for extraction and rejection)."""

    after_s: float
    readings: Mapping[str, int]


def parse_power_step(text: str) -> PowerStep:
    """``[AFTER_S@]NAME=VALUE[,NAME=VALUE...]``, e.g. ``compressor=3000,blower=200`` or
    ``60@compressor=6000``; ValueError names what is wrong."""
    when, at, rest = text.strip().rpartition("@")
    try:
        after = float(when) if at else 0.0
    except ValueError:
        raise ValueError(f"{when!r} is not a number of seconds") from None
    if not math.isfinite(after) or after < 0:
        raise ValueError(f"{when!r} is not a number of seconds")
    readings: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if not eq or name not in POWER_REGISTERS:
            raise ValueError(f"{part!r}: use NAME=VALUE with NAME one of {', '.join(POWER_REGISTERS)}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{part!r}: {value!r} is not a whole number") from None
        if not 0 <= number <= 0x7FFFFFFF:
            raise ValueError(f"{part!r}: {number} is out of range")
        readings[name] = number
    if not readings:
        raise ValueError(f"{text!r} names no reading: e.g. compressor=3000,blower=200")
    return PowerStep(after, readings)


class PowerProfile:
    """Holds the energy monitor's readings at given values, changing them on a schedule, so a
    test knows the exact integral. The total (1152) is always compressor + blower + aux + pump."""

    def __init__(self, abc: SimulatedAbc, steps: list[PowerStep]) -> None:
        self.abc = abc
        self.steps = sorted(steps, key=lambda s: s.after_s)
        self.current = -1

    def step(self, t: float) -> PowerStep | None:
        """Apply the readings due at ``t`` seconds; the step applied now, or None (no change)."""
        due = max((i for i, s in enumerate(self.steps) if s.after_s <= t), default=-1)
        if due <= self.current:
            return None
        for index in range(self.current + 1, due + 1):  # later steps override earlier ones
            for name, value in self.steps[index].readings.items():
                self._set(POWER_REGISTERS[name][0], value)
        self.current = due
        total = sum(self._get(address) for address, part in POWER_REGISTERS.values() if part)
        self._set(1152, total)
        return self.steps[due]

    def _get(self, address: int) -> int:
        high, low = self.abc.get(address), self.abc.get(address + 1)
        return 0 if high is None or low is None else (high << 16) | low

    def _set(self, address: int, value: int) -> None:
        self.abc.set(address, value >> 16)
        self.abc.set(address + 1, value & 0xFFFF)
