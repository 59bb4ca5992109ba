"""Request frames that tests of the RTU framing share."""

from __future__ import annotations

# An FC 66 read whose first 40 bytes end in a valid CRC (found by trying random reads: about 1
# in 1,100 of this size has such a prefix); taken for the request, the reply held 18 words for 59.
CRC_PREFIX = [
    222,
    226,
    301,
    316,
    318,
    380,
    390,
    460,
    482,
    535,
    552,
    554,
    568,
    603,
    637,
    646,
    691,
    776,
    782,
    791,
]
CRC_PREFIX += [809, 830, 880, 889, 925, 936, 1092, 1094, 1101, 1107, 1111, 1117, 1179, 1256, 1297, 1331, 1343]
CRC_PREFIX += [1390, 1420, 1435, 1438, 1447, 1467, 1505, 1509, 1516, 1518, 1584, 1609, 1617, 1680, 1712, 1715]
CRC_PREFIX += [1720, 1833, 1879, 1904, 1911, 1948]
