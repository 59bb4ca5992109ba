"""Write services/sim/demo.yml: a made-up 7 Series unit (VS drive, AXB, IntelliZone 2 with three
zones, DHW, VS pump, energy monitoring). Every register of ``valid`` exists, so ``aurora_fetch SIM
valid`` reads it in full; the serial number and dealer are invented, never a real user's.

Run: .venv/bin/python scripts/make_demo_dump.py
"""

from __future__ import annotations

from pathlib import Path

from aurora.registers import REGISTER_RANGES
from aurora.render import render_yaml

OUT = Path(__file__).resolve().parent.parent / "services" / "sim" / "demo.yml"


def text(address: int, value: str, length: int) -> dict[int, int]:
    """ASCII, two characters a register, padded with spaces (docs/protocol.md#conversions)."""
    padded = value.ljust(2 * length)[: 2 * length].encode("ascii")
    return {address + i: padded[2 * i] << 8 | padded[2 * i + 1] for i in range(length)}


def pair(address: int, value: int) -> dict[int, int]:
    """32-bit value, high word first."""
    value &= 0xFFFFFFFF
    return {address: value >> 16, address + 1: value & 0xFFFF}


def zone(z: int, *, ambient: int, heat: int, cool: int, mode: int, call: int, size: int) -> dict[int, int]:
    """IZ2 zone z (1-based): write registers and the configuration words they read back as
    (docs/protocol.md#conversions, docs/protocol.md#zones)."""
    h, c = heat - 36, cool - 36
    config1 = (c << 1) | (h >> 5)
    config2 = ((h & 0x1F) << 11) | ((mode & 3) << 8) | 0x10 | (call << 1)
    config3 = (size << 3) | ((100 // 3) << 8)
    w = 21202 + 9 * (z - 1)
    return {
        w: mode, w + 1: heat * 10, w + 2: cool * 10, w + 3: 0, w + 4: 0, w + 5: 0,
        31007 + 3 * (z - 1): ambient, 31008 + 3 * (z - 1): config1, 31009 + 3 * (z - 1): config2,
        31200 + 3 * (z - 1): config3,
    }  # fmt: skip


def demo_registers() -> dict[int, int]:
    """Every valid register, zero unless set below."""
    regs = {a: 0 for start, end in REGISTER_RANGES for a in range(start, end + 1)}
    regs.update(
        {
            1: 0, 2: 308, 4: 0x7FFF, 5: 240, 6: 0, 9: 120, 15: 30, 16: 242, 17: 0,
            19: 612, 20: 598, 21: 700, 25: 0, 26: 0, 27: 9, 28: 17,
            30: 0x0009,  # cc + blower: heating, stage 1
            31: 0x0191,  # lps and hps closed, y1, g
            32: 0x7FFF, 33: 0x57, 36: 2,
            110: 0, 112: 240, 209: 0,
            321: 25, 322: 75, 323: 0x7FFF, 324: 0, 325: 50,
            340: 3, 341: 5, 342: 9, 344: 5, 346: 0, 347: 10, 362: 0,
            400: 1, 401: 1300, 402: 0, 403: 2, 404: 1, 412: 2, 413: 3, 416: 0, 417: 100, 418: 100,
            419: 100, 460: 102, 461: 0, 462: 5, 483: 3,
            501: 680, 502: 705, 564: 6, 565: 3, 567: 705,
            605: 1, 642: 3, 699: 2,
            740: 700, 741: 45, 742: 350, 745: 680, 746: 740, 747: 705,
            800: 3, 801: 0, 803: 3, 806: 1, 807: 220, 809: 3, 812: 1, 813: 206,
            815: 1, 816: 301, 817: 301, 818: 1, 819: 200, 820: 200, 824: 1, 825: 110, 827: 1, 828: 211,
            900: 960, 901: 1100, 903: 70, 908: 45, 909: 0,
            1103: 0x0002, 1104: 0x0003,
            1105: 15, 1106: 0, 1107: 85, 1108: 0, 1109: 950, 1110: 420, 1111: 480, 1112: 960,
            1113: 400, 1114: 1240, 1115: 2800, 1116: 1100, 1117: 85, 1119: 250,
            1124: 380, 1125: 70, 1126: 0, 1134: 1050, 1135: 80, 1136: 60,
            3000: 6, 3001: 6, 3002: 0x7FFF, 3027: 6,
            3322: 2800, 3323: 1100, 3325: 1500, 3326: 700, 3327: 1100, 3330: 480, 3331: 240, 3332: 60,
            3522: 1050, 3523: 340, 3524: 50, 3808: 45, 3903: 450, 3904: 0, 3905: 380, 3906: 70,
            12005: 0, 12006: 0x0300, 12309: 0x8000, 12310: (40 << 8) | 55,
            21114: 0x8000, 21115: (40 << 8) | 55,
            31003: 350, 31005: (2 << 8) | 3, 31109: 0x8000, 31110: (40 << 8) | 55,
        }
    )  # fmt: skip
    regs.update(text(88, "ABCVSP", 4))
    regs.update(text(92, "NVZ036TR1CTL", 12))
    regs.update(text(105, "2611000042", 5))
    regs.update(pair(1146, 2100) | pair(1148, 180) | pair(1150, 0) | pair(1152, 2370))
    regs.update(pair(1154, 31000) | pair(1156, 0) | pair(1164, 90) | pair(3422, 2100) | pair(3424, 240))
    regs.update(zone(1, ambient=702, heat=68, cool=75, mode=3, call=2, size=1))
    regs.update(zone(2, ambient=688, heat=66, cool=76, mode=3, call=0, size=2))
    regs.update(zone(3, ambient=715, heat=70, cool=74, mode=1, call=2, size=1))
    regs.update(text(31400, "Demo Geothermal Co", 13))
    regs.update(text(31413, "555-0100", 8))
    regs.update(text(31421, "1 Example Way", 13))
    regs.update(text(31434, "Springfield", 13))
    regs.update(text(31447, "service@example.com", 13))
    regs.update(text(31460, "example.com", 13))
    return regs


def main() -> None:
    """Write the dump."""
    header = "# aurora_sim's built-in demo unit: made up, see scripts/make_demo_dump.py\n"
    OUT.write_text(header + render_yaml(demo_registers()) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
