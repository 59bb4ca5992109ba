"""Which registers a raw write affects: what the bridge re-reads after a ``$modbus`` or
virtual-port write instead of polling every tier again (issue 15).

A write-only register shows its new value elsewhere (12619, the heating set point, is read back
at 745): the property whose setter writes a register says where. The setters are asked which
registers they write by encoding the payloads their own Homie description allows (``$format``),
so this table follows the node specs without a second list to keep in step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from aurora.query import with_continuations

from .spec import PropertySpec


class _AnyWords(Mapping[int, int]):
    """Words for a read-modify-write setter to encode against: every register reads 0."""

    def __getitem__(self, address: int) -> int:
        return 0

    def __contains__(self, address: object) -> bool:
        return isinstance(address, int)

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _payloads(spec: PropertySpec) -> list[str]:
    """Payloads the property's description allows: its options, or its range's ends."""
    if spec.datatype == "boolean":
        return ["true", "false"]
    fmt = spec.format or ""
    if spec.datatype == "enum":
        return [option for option in fmt.split(",") if option]
    if spec.datatype in ("integer", "float") and ":" in fmt:
        low, _, high = fmt.partition(":")
        return [low, high]
    return []


def written_by(spec: PropertySpec) -> frozenset[int]:
    """The registers the property's setter writes for any payload it accepts."""
    setter = spec.setter
    if setter is None:
        return frozenset()
    words = _AnyWords()
    written: set[int] = set()
    for payload in _payloads(spec):
        try:
            written.update(address for address, _ in setter.encode(setter.parse(payload), words))
        except Exception:  # a payload this setter refuses tells nothing; the others do
            continue
    return frozenset(written)


class WriteEffects:
    """Register → the registers to read again after a raw write to it."""

    def __init__(self, properties: Iterable[PropertySpec]) -> None:
        self._effects: dict[int, set[int]] = {}
        for spec in properties:
            if spec.setter is None:
                continue
            shown = set(spec.registers) | set(spec.setter.readback())
            for address in written_by(spec):
                self._effects.setdefault(address, set()).update(shown)

    def reread(self, written: Iterable[int]) -> list[int]:
        """The registers of every property that shows a written register, beside the written
        ones (those the write job itself read back): empty when the write shows only itself."""
        done = set(written)
        wanted: set[int] = set()
        for address in done:
            wanted |= self._effects.get(address, set())
        return [a for a in with_continuations(wanted) if a not in done]
