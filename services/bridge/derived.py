"""Values users computed by hand from the registers: water-side ΔT and the coefficient of performance.

Both are pure functions of the decoded values of the words read (through the register map,
docs/protocol.md#register-map); None means "cannot be known from these words", and the property is
then left out of the update.
"""

from __future__ import annotations

from collections.abc import Mapping

from aurora import registers as regs

BTUH_PER_WATT = 3.412141633  # 1 W = 3.412 BTU/h
COP_LIMIT = 20.0  # a COP above this is a measuring glitch
COP_FORMAT = f"0:{COP_LIMIT:g}"


def _number(address: int, words: Mapping[int, int]) -> float | None:
    value = regs.reading(address, words)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def water_delta_t(words: Mapping[int, int]) -> float | None:
    """Entering minus leaving water (1111 − 1110), °F: positive while heating extracts heat from
    the loop, negative while cooling rejects heat into it. None when a sensor reads "not present"."""
    entering, leaving = _number(1111, words), _number(1110, words)
    if entering is None or leaving is None:
        return None
    return round(entering - leaving, 1)


def cop(words: Mapping[int, int]) -> float | None:
    """Coefficient of performance of the running heat pump: heat delivered ÷ electricity used.

    Heating: (heat of extraction + total power) ÷ total power, the extracted heat plus the
    electricity that ends up as heat. Cooling: heat of rejection minus total power, ÷ total power.
    Total power is the unit's own measurement (1152-53: compressor, blower, aux heat, pump);
    heat of extraction/rejection (1154-57, BTU/h) come from the refrigeration monitor. 0.0 while
    the compressor is off (nothing is moved); None when the monitor gives no usable figure.
    """
    if not (regs.is_set(30, "cc", words) or regs.is_set(30, "cc2", words)):
        return 0.0
    watts = _number(1152, words)
    if watts is None or watts <= 0:
        return None
    cooling = regs.is_set(30, "rv", words)
    heat = _number(1156 if cooling else 1154, words)
    if heat is None:
        return None
    moved_w = heat / BTUH_PER_WATT - watts if cooling else heat / BTUH_PER_WATT + watts
    if moved_w <= 0:
        return None
    return round(min(moved_w / watts, COP_LIMIT), 1)
