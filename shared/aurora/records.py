"""Value objects without ``dataclasses``: equality, hash and repr from the fields a class names in
``__slots__``, as ``@dataclass(slots=True)`` generates them.

The protocol modules every tool imports (rtu, registers, readplan, query, bus) define their records
on these: importing ``dataclasses`` (and with it ``inspect``, ``ast``, ``dis``, ``tokenize``) and
generating the code of a dozen classes cost ``aurora_fetch`` ~15 ms of a ~45 ms start (issue 15).
Each class writes its ``__init__``; its fields are ``Final`` where the dataclass was frozen, so
mypy refuses an assignment as the dataclass did at run time.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["FrozenRecord", "Record"]


class Record:  # noqa: PLW1641 (__eq__ without __hash__: unhashable, as it is mutable)
    """The fields are what ``_fields`` names, in order (each class sets ``__slots__ = _fields``):
    ``==`` between two objects of the same class compares them, ``repr`` shows them; unhashable,
    as a mutable dataclass is."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()  # each class: its fields in order, and its __slots__

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({fields})"


class FrozenRecord(Record):
    """A :class:`Record` that is never changed once built: hashable by its fields (except those
    its class lists in ``_unhashed``, e.g. a mapping)."""

    __slots__ = ()
    _unhashed: ClassVar[tuple[str, ...]] = ()

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in self._fields if name not in self._unhashed))
