"""Values users computed by hand from the registers: water-side ΔT and the coefficient of performance.

Both are pure functions of the raw words (registers as in docs/protocol.md#register-map); None means "cannot
be known from these words", and the property is then left out of the update.
"""

from __future__ import annotations

from collections.abc import Mapping

from aurora import registers as regs

BTUH_PER_WATT = 3.412141633  # 1 W = 3.412 BTU/h
_COMPRESSOR = 0x01 | 0x02  # reg 30: cc, cc2
_REVERSING_VALVE = 0x04  # reg 30: rv set = cooling


def water_delta_t(words: Mapping[int, int]) -> float | None:
    """Entering minus leaving water (1111 − 1110), °F: positive while heating extracts heat from
    the loop, negative while cooling rejects heat into it. None when a sensor reads "not present"."""
    entering = regs.signed_tenths(words[1111])
    leaving = regs.signed_tenths(words[1110])
    if entering is None or leaving is None:
        return None
    return round(float(entering) - float(leaving), 1)


def cop(words: Mapping[int, int]) -> float | None:
    """Coefficient of performance of the running heat pump: heat delivered ÷ electricity used.

    Heating: (heat of extraction + total power) ÷ total power, the extracted heat plus the
    electricity that ends up as heat. Cooling: heat of rejection minus total power, ÷ total power.
    Total power is the unit's own measurement (1152-53: compressor, blower, aux heat, pump);
    heat of extraction/rejection (1154-57, BTU/h) come from the refrigeration monitor. 0.0 while
    the compressor is off (nothing is moved); None when the monitor gives no usable figure.
    """
    outputs = words[30]
    if not outputs & _COMPRESSOR:
        return 0.0
    watts = regs.uint32(words[1152], words[1153])
    if watts <= 0:
        return None
    if outputs & _REVERSING_VALVE:
        moved_w = regs.int32(words[1156], words[1157]) / BTUH_PER_WATT - watts
    else:
        moved_w = regs.int32(words[1154], words[1155]) / BTUH_PER_WATT + watts
    if moved_w <= 0:
        return None
    # a COP above 20 is a measuring glitch ($format 0:20)
    return round(min(float(moved_w) / float(watts), 20.0), 1)
