"""What the bridge detected at start-up (docs/architecture.md#detection): the unit's identity and its fitted
components, which decide the nodes and properties of the description table (docs/architecture.md#detection,
docs/architecture.md#homie-tree)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from aurora import registers as regs
from aurora.records import FrozenRecord

# docs/architecture.md#detection: program name → VS drive
VS_PROGRAMS = frozenset({"ABCVSP", "ABCVSPR", "ABCSPLVS"})


class Components(FrozenRecord):
    """The unit's identity and fitted components, decided once at start-up."""

    _fields = (
        "serial",
        "model",
        "program",
        "abc_version",
        "thermostat",
        "thermostat_version",
        "axb",
        "axb_version",
        "iz2",
        "iz2_version",
        "zone_count",
        "dip",
        "axb_dip",
        "energy_monitor",
        "blower_type",
        "pump_type",
        "dhw",
    )
    __slots__ = _fields
    serial: Final[str]
    model: Final[str]
    program: Final[str]
    abc_version: Final[float]
    thermostat: Final[bool]
    thermostat_version: Final[float]
    axb: Final[bool]
    axb_version: Final[float]
    iz2: Final[bool]
    iz2_version: Final[float]
    zone_count: Final[int]  # IZ2 zones (register 483), only with IZ2 ≥ 2.0
    # register 33; None when unreadable or 0x7FFF "manual" (docs/architecture.md#original-bridge R8)
    dip: Final[int | None]
    axb_dip: Final[int | None]  # register 1103
    energy_monitor: Final[int]  # register 412: 0 none, 1 compressor monitor, 2 energy monitor
    blower_type: Final[int]  # register 404
    pump_type: Final[int]  # register 413
    dhw: Final[bool]

    def __init__(
        self,
        *,
        serial: str,
        model: str = "",
        program: str = "",
        abc_version: float = 0.0,
        thermostat: bool = False,
        thermostat_version: float = 0.0,
        axb: bool = False,
        axb_version: float = 0.0,
        iz2: bool = False,
        iz2_version: float = 0.0,
        zone_count: int = 0,
        dip: int | None = None,
        axb_dip: int | None = None,
        energy_monitor: int = 0,
        blower_type: int = 0,
        pump_type: int = 0,
        dhw: bool = False,
    ) -> None:
        self.serial, self.model, self.program, self.abc_version = serial, model, program, abc_version
        self.thermostat, self.thermostat_version = thermostat, thermostat_version
        self.axb, self.axb_version, self.iz2, self.iz2_version = axb, axb_version, iz2, iz2_version
        self.zone_count, self.dip, self.axb_dip = zone_count, dip, axb_dip
        self.energy_monitor, self.blower_type, self.pump_type = energy_monitor, blower_type, pump_type
        self.dhw = dhw

    @property
    def awl_thermostat(self) -> bool:
        """A communicating thermostat new enough for the AWL registers (docs/architecture.md#detection)."""
        return self.thermostat and self.thermostat_version >= 3.0

    @property
    def awl_iz2(self) -> bool:
        """IntelliZone 2 ≥ 2.0: zones are read from the IZ2 registers."""
        return self.iz2 and self.iz2_version >= 2.0

    @property
    def awl_communicating(self) -> bool:
        """Set points, modes and humidity can be read and written."""
        return self.awl_thermostat or self.awl_iz2

    @property
    def awl_axb(self) -> bool:
        """AXB ≥ 2.0: leaving air, entering air at 740, pump speed at 325."""
        return self.axb and self.axb_version >= 2.0

    @property
    def vs_drive(self) -> bool:
        """A variable-speed compressor drive (docs/architecture.md#detection)."""
        return self.program in VS_PROGRAMS

    def _dip(self, key: str) -> regs.Field:
        """One DIP switch setting of register 33 as the map decodes it; None when unknown."""
        if self.dip is None:
            return None
        switches = regs.dip_switches(self.dip)
        return switches.get(key) if isinstance(switches, Mapping) else None

    @property
    def stages(self) -> int:
        """Compressor stages of a generic compressor: the DIP switch's 1 or 2 (unknown → 2)."""
        return 1 if self._dip("compressor") == 1 else 2

    @property
    def blower(self) -> Literal["ecm", "5speed", "psc"]:
        """Register 404: 1-2 ECM, 3 five-speed, else PSC."""
        return "ecm" if self.blower_type in (1, 2) else "5speed" if self.blower_type == 3 else "psc"

    @property
    def pump(self) -> Literal["vs", "generic"] | None:
        """Register 413 in 3..5 → VS pump; else a generic pump when there is an AXB."""
        if 3 <= self.pump_type <= 5:
            return "vs"
        return "generic" if self.axb else None

    @property
    def refrigeration_monitoring(self) -> bool:
        """412 ≥ 1 (docs/architecture.md#detection)."""
        return self.energy_monitor >= 1

    @property
    def energy_monitoring(self) -> bool:
        """412 = 2 (docs/architecture.md#detection)."""
        return self.energy_monitor == 2

    @property
    def humidifier(self) -> bool:
        """ABC accessory relay (DIP switches) set to humidifier."""
        return self._dip("accessory_relay") == "humidifier"

    @property
    def dehumidifier(self) -> bool:
        """AXB accessory relay 2 (register 1103) set to dehumidifier."""
        if not self.axb or self.axb_dip is None:
            return False
        return regs.axb_inputs(self.axb_dip).get("accessory_relay2") == "dehumidifier"

    @property
    def humidistat(self) -> bool:
        """The humidistat node exists (docs/architecture.md#detection)."""
        return self.humidifier or self.dehumidifier or self.awl_communicating
