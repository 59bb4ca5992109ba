"""Component detection (docs/architecture.md#detection) and the :class:`Unit`: the detected heat pump as Homie
nodes and properties, the registers to poll per tier, and the writes each ``/set`` payload makes.

Pure code: the runtime passes a ``read(ranges)`` callable and publishes what the Unit returns.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from aurora import registers as regs
from aurora.errors import AuroraError, ExceptionReply
from aurora.logs import get_logger
from aurora.readplan import Depth, ReadPlan, Rules, run, spans_of
from aurora.records import Record

from .components import Components
from .spec import NodeSpec, PropertySpec, Setter, Tier, Words

__all__ = ["DETECTION_RANGES", "Components", "Setter", "Tier", "Unit", "detect", "device_id_for"]

log = get_logger(__name__)  # structlog imported when it first logs (issue 15)

# docs/architecture.md#detection step 1, plus the component status/version block 800-813 and the
# IZ2 zone count in the same transaction (the original read each flag with its own FC 3 request,
# and the zone count after them): 44 registers, one read. Every unit scanned has 483, with an IZ2
# or without (tests/data); one that refused it would be read range by range.
DETECTION_RANGES: Sequence[tuple[int, int]] = (
    (2, 1),  # ABC program version
    (33, 1),  # ABC DIP switches
    (88, 22),  # program 88-91, model 92-103, serial 105-109
    (404, 1),  # blower type
    (412, 2),  # energy monitor type, pump type
    (483, 1),  # IZ2 zone count (used only with an IZ2)
    (800, 14),  # thermostat, AXB, IZ2 status and versions (800-813)
    (1103, 1),  # AXB DIP switches
    (1114, 1),  # DHW water temperature: plausible → DHW fitted
)
_IDENTITY = ((88, 22),)
ZONE_COUNT = 483
MAX_ZONES = 6  # IZ2 zone registers exist for zones 1..6 (docs/protocol.md#zones)
_REMOVED, _MISSING = 3, 0xFFFF  # component status (docs/architecture.md#detection): 3 removed, 0xFFFF missing


def device_id_for(serial: str) -> str:
    """``aurora-<serial>`` as a valid Homie ID (docs/architecture.md#original-bridge R10: the original aborted
    on other characters)."""
    from . import homie  # homie_spec: not needed before detection has read the unit (issue 15)

    return homie.homie_id(f"aurora-{serial}") if serial.strip() else "aurora-unknown"


ReadFn = Callable[[Sequence[tuple[int, int]]], Mapping[int, int]]


def _read_planned(
    read: ReadFn, ranges: Sequence[tuple[int, int]], depth: Depth, *, quiet: bool = False
) -> dict[int, int]:
    """``ranges`` read through the read plan (docs/protocol.md#fallback): one request if the board
    takes it; refused, range by range, and with ``Depth.REGISTERS`` a refused range down to its
    registers. ``read`` may leave out registers it found absent. A silence or a garbled reply
    raises: a register that did not answer is not one the unit lacks, and detecting without it
    would drop a component for the bridge's whole life."""
    plan = ReadPlan(ranges, Rules(depth=depth, silent_limit=1))
    result = run(plan, lambda chunk: read(chunk.items))
    for start, count, err in result.failed.spans():
        if not isinstance(err, ExceptionReply):
            raise err
        if not quiet:
            log.warning("detection_registers_refused", start=start, count=count, error=str(err))
    return result.values


def _read_all(read: ReadFn) -> dict[int, int]:
    """All detection ranges in one read; if the board refuses it, down to the registers it has."""
    return _read_planned(read, DETECTION_RANGES, Depth.REGISTERS)


def _installed(words: Words, address: int) -> bool:
    # docs/architecture.md#original-bridge R11: 0xFFFF ("missing") counts as absent, not installed like in the
    # original
    status = words.get(address)
    return status is not None and status not in (_REMOVED, _MISSING)


def _version(words: Words, address: int) -> float:
    raw = words.get(address)
    return 0.0 if raw is None or raw == _MISSING else raw / 100


def components_from(words: Words, zone_count: int = 0) -> Components:
    """The Components that the detection words describe (docs/architecture.md#detection)."""
    if any(a not in words for a in range(88, 110) if a != 104):
        raise AuroraError("the unit's identity (registers 88-109) was not read")
    axb = _installed(words, 806)
    dip = words.get(33)
    return Components(
        serial=regs.string([words[a] for a in range(105, 110)]),
        model=regs.string([words[a] for a in range(92, 104)]),
        program=regs.string([words[a] for a in range(88, 92)]),
        abc_version=_version(words, 2),
        thermostat=_installed(words, 800),
        thermostat_version=_version(words, 801),
        axb=axb,
        axb_version=_version(words, 807),
        iz2=_installed(words, 812),
        iz2_version=_version(words, 813),
        zone_count=zone_count,
        # docs/architecture.md#original-bridge R8: "manual" crashed the original
        dip=None if dip is None or dip == 0x7FFF else dip,
        axb_dip=words.get(1103),
        energy_monitor=words.get(412, 0),
        blower_type=words.get(404, 0),
        pump_type=words.get(413, 0),
        dhw=axb and regs.sensor_reading(1114, words) is not None,  # a fitted DHW temperature sensor
    )


def detect(
    read: Callable[[Sequence[tuple[int, int]]], Mapping[int, int]],
    *,
    device_name: str = "WaterFurnace",
    on_nodes: Callable[[tuple[NodeSpec, ...]], None] | None = None,
) -> Unit:
    """Read the unit's identity and components and build its Unit.

    ``read(ranges)`` returns raw words by address. Raises AuroraError when the identity cannot be
    read; an IZ2 whose zone count cannot be read gets no zones (logged). ``on_nodes`` gets the
    components' nodes before the presence checks, which may still take sensors out of them.
    """
    words = _read_all(read)
    # Not imported with this module: the bridge's main thread imports the node modules while the
    # first read is on the line (issue 15: start to ready).
    from .properties import build_nodes

    zones = 0
    probe = components_from(words)
    if probe.awl_iz2:
        if ZONE_COUNT in words:
            zones = words[ZONE_COUNT]
        else:  # refused: the unit gets no zones
            log.warning("zone_count_unreadable", register=ZONE_COUNT)
        if not 0 <= zones <= MAX_ZONES:
            log.warning("zone_count_implausible", zones=zones, using=0)
            zones = 0
    components = components_from(words, zones)
    nodes = build_nodes(components)
    if on_nodes is not None:
        on_nodes(nodes)
    presence = dict(words)
    presence.update(_read_presence(read, nodes, known=words))
    unit = Unit.build(components, name=device_name, presence=presence, nodes=nodes)
    log.info(
        "unit_detected",
        device_id=unit.device_id,
        program=components.program,
        model=components.model,
        nodes=[n.id for n in unit.nodes],
    )
    return unit


def _read_presence(read: ReadFn, nodes: Sequence[NodeSpec], known: Words) -> dict[int, int]:
    """The words that decide which optional sensors the unit has, but for those ``known`` already
    (one read, or range by range if the board refuses it; a refused range decides nothing, and
    its sensors stay)."""
    wanted = {a for node in nodes for spec in node.properties if spec.present for a in spec.registers}
    wanted -= known.keys()
    if not wanted:
        return {}
    return _read_planned(read, spans_of(wanted), Depth.ITEMS, quiet=True)


def settled_properties(nodes: Sequence[NodeSpec]) -> tuple[NodeSpec, ...]:
    """The nodes with only the properties no presence check can take out: every unit of these
    components has them, whatever its sensors read."""
    return tuple(
        node.replace(properties=tuple(p for p in node.properties if p.present is None)) for node in nodes
    )


def _fitted(nodes: Sequence[NodeSpec], words: Words) -> tuple[tuple[NodeSpec, ...], list[str]]:
    """The nodes without the sensors that ``words`` show the unit does not have, and their paths."""
    kept: list[NodeSpec] = []
    absent: list[str] = []
    for node in nodes:
        props = []
        for spec in node.properties:
            known = all(a in words for a in spec.registers)
            if spec.present is not None and known and not spec.present(words):
                absent.append(spec.path)
            else:
                props.append(spec)
        kept.append(node.replace(properties=tuple(props)))
    return tuple(kept), absent


class Unit(Record):
    """A detected heat pump: its Homie tree, poll sets, setters and HA discovery.

    A record, not a dataclass: detection imports this module before its first request goes
    out (issue 15: start to ready)."""

    _fields = ("device_id", "name", "components", "nodes")
    __slots__ = (*_fields, "_by_path", "_description", "_tiers")

    def __init__(
        self, *, device_id: str, name: str, components: Components, nodes: tuple[NodeSpec, ...]
    ) -> None:
        self.device_id, self.name, self.components, self.nodes = device_id, name, components, nodes
        self._tiers: dict[int, Tier] = {}
        self._by_path: dict[str, PropertySpec] = {}
        self._description: list[tuple[str, str]] | None = None

    @classmethod
    def build(
        cls,
        components: Components,
        *,
        name: str = "WaterFurnace",
        presence: Words | None = None,
        nodes: tuple[NodeSpec, ...] | None = None,
    ) -> Unit:
        """The Unit for detected components; with ``presence`` (words read at start-up), without
        the sensors the unit does not have. ``nodes``: ``build_nodes(components)`` if already built."""
        from .properties import build_nodes, register_tiers

        if nodes is None:
            nodes = build_nodes(components)
        if presence is not None:
            nodes, absent = _fitted(nodes, presence)
            if absent:
                log.info("sensors_absent", count=len(absent), properties=absent[:10])
        unit = cls(device_id=device_id_for(components.serial), name=name, components=components, nodes=nodes)
        unit._tiers = register_tiers(nodes)
        unit._by_path = {spec.path: spec for node in nodes for spec in node.properties}
        return unit

    def properties(self) -> list[PropertySpec]:
        """Every property, in publishing order."""
        return list(self._by_path.values())

    def spec(self, node_prop: str) -> PropertySpec | None:
        """The property at ``<node>/<prop>``, or None."""
        return self._by_path.get(node_prop)

    def registers(self, tier: Tier) -> frozenset[int]:
        """Addresses to poll in ``tier``; each register sits in exactly one tier (the fastest
        that needs it), so ``values()`` wants the merged latest words of all tiers."""
        return frozenset(a for a, t in self._tiers.items() if t == tier)

    def description(self) -> list[tuple[str, str]]:
        """(topic suffix under ``homie/<device_id>/``, payload) of every Homie attribute, in
        publishing order; ``$state`` is not included."""
        if self._description is None:  # the tree never changes after detection
            from . import homie
            from .health import HEALTH_EVERY_S  # datetime and json: not needed to detect

            self._description = homie.description(
                self.device_id, self.name, self.nodes, stats_interval_s=HEALTH_EVERY_S
            )
        return list(self._description)

    def values(self, words: Mapping[int, int]) -> dict[str, str]:
        """``<node>/<prop>`` → payload for each property whose registers are all in ``words``."""
        from . import homie

        return homie.values(self.nodes, words)

    def setter(self, node_prop: str) -> Setter | None:
        """The Setter of a settable property, else None."""
        spec = self._by_path.get(node_prop)
        return None if spec is None else spec.setter

    def settable(self) -> list[str]:
        """``<node>/<prop>`` of every settable property."""
        return [path for path, spec in self._by_path.items() if spec.setter is not None]

    def hass_discovery(
        self,
        *,
        homie_root: str = "homie",
        prefix: str = "homeassistant",
        migrate: bool = True,
        existing: Collection[str] | None = None,
    ) -> list[tuple[str, str]]:
        """(topic, payload) to publish retained, in order: HA device-based discovery, and with
        ``migrate`` the Ruby gem's per-entity topics (migration marker first, empty payload last).

        ``existing``: the retained topics seen at start-up; when given, only those of the gem's
        topics are migrated (nothing to migrate after the first run).
        """
        from . import hass  # built when it is published, not at detection (issue 15)

        return hass.discovery(self, homie_root=homie_root, prefix=prefix, migrate=migrate, existing=existing)
