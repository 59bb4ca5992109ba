"""A mirror of one device's Homie 4 tree (docs/architecture.md#homie-tree) as the web pages need it.

Pure: ``handle(topic, payload, now)`` updates the model and says what changed. Values of numbers
are also kept as a short history for the trend charts (in memory: history starts with the process).
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aurora.errors import UsageError

HISTORY_S: Final = 6 * 3600.0  # "the last hours" of the trend charts
SAMPLE_S: Final = 30.0  # at most one stored point per series and interval: 720 points for 6 h
MAX_STRING_SET: Final = 64

_PROPERTY_ATTRS: Final = frozenset({"$name", "$datatype", "$format", "$settable", "$unit", "$retained"})


@dataclass(slots=True)
class Prop:
    """One Homie property: its attributes (as far as the broker lets us read them) and value."""

    node: str
    id: str
    name: str = ""
    datatype: str = ""
    format: str = ""
    unit: str = ""
    settable: bool = False
    value: str | None = None
    changed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name or _humanise(self.id),
            "datatype": self.datatype,
            "format": self.format,
            "unit": self.unit,
            "settable": self.settable,
            "value": self.value,
            "t": round(self.changed, 3) if self.changed else None,  # when it last arrived
        }


@dataclass(slots=True)
class Node:
    """One Homie node (a component of the heat pump)."""

    id: str
    name: str = ""
    type: str = ""
    properties: list[str] = field(default_factory=list)


Change = (
    tuple[Literal["value"], dict[str, Any]]
    | tuple[Literal["meta"], None]
    | tuple[Literal["health"], dict[str, Any]]
    | tuple[Literal["outcome"], dict[str, Any]]
)
WRITE_RESULT: Final = "$write-result"  # the bridge's answer to each /set command (docs/writes.md)
_HEALTH_KEYS: Final = ("state", "last_good_poll", "last_error", "published_at")


def _humanise(identifier: str) -> str:
    """A label for a property whose ``$name`` we cannot read: ``leaving-water-temperature`` →
    ``Leaving water temperature``."""
    text = identifier.replace("-", " ")
    return text[:1].upper() + text[1:]


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(slots=True)
class HomieMirror:
    """The tree of ``<root>/<device>``: device attributes, nodes, properties, number histories."""

    device: str
    root: str = "homie"
    history_s: float = HISTORY_S
    sample_s: float = SAMPLE_S
    state: str = ""
    state_since: float = 0.0  # when $state last changed (time.time() here), 0 before the first
    health: dict[str, Any] = field(default_factory=dict)  # the bridge's last $health, in short
    name: str = ""
    link: bool = True  # whether our broker connection is up; False: every value may be stale
    link_since: float = 0.0  # when the link last went up or down
    node_order: list[str] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    props: dict[tuple[str, str], Prop] = field(default_factory=dict)
    history: dict[tuple[str, str], deque[tuple[float, float]]] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{self.root}/{self.device}/"

    def _prop(self, node: str, prop: str) -> Prop:
        key = (node, prop)
        if key not in self.props:
            self.props[key] = Prop(node, prop)
        return self.props[key]

    def _node(self, node: str) -> Node:
        if node not in self.nodes:
            self.nodes[node] = Node(node)
        return self.nodes[node]

    def handle(self, topic: str, payload: str, now: float) -> Change | None:
        """Take one message of the device's tree; what changed, or None for anything ignored."""
        if not topic.startswith(self.prefix):
            return None
        parts = topic[len(self.prefix) :].split("/")
        if parts[0].startswith("$"):
            return self._device_attr(parts, payload, now)
        if len(parts) == 2 and parts[1].startswith("$"):
            return self._node_attr(parts[0], parts[1], payload)
        if len(parts) == 2:
            return self._value(parts[0], parts[1], payload, now)
        if len(parts) == 3 and parts[2] in _PROPERTY_ATTRS:
            return self._prop_attr(parts[0], parts[1], parts[2], payload)
        return None  # /set commands, $modbus, anything deeper

    def _device_attr(self, parts: list[str], payload: str, now: float) -> Change | None:
        if len(parts) != 1:
            return None
        if parts[0] in ("$health", WRITE_RESULT):
            return self._document(parts[0], payload)
        if parts[0] == "$state":
            if payload != self.state:
                self.state_since = now
            self.state = payload
        elif parts[0] == "$name":
            self.name = payload
        elif parts[0] == "$nodes":
            self.node_order = [n for n in payload.split(",") if n]
        else:
            return None
        return ("meta", None)

    def _document(self, attr: str, payload: str) -> Change | None:
        """``$health`` (kept, in short) or a ``$write-result`` answer; None when not JSON."""
        try:
            doc = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(doc, dict):
            return None
        if attr == WRITE_RESULT:
            return ("outcome", doc)
        self.health = {k: doc.get(k) for k in _HEALTH_KEYS}
        return ("health", dict(self.health))

    def set_link(self, up: bool, now: float) -> None:
        """Our broker connection came (``up``) or went."""
        if up != self.link:
            self.link_since = now
        self.link = up

    def _node_attr(self, node: str, attr: str, payload: str) -> Change | None:
        item = self._node(node)
        if attr == "$name":
            item.name = payload
        elif attr == "$type":
            item.type = payload
        elif attr == "$properties":
            item.properties = [p for p in payload.split(",") if p]
        else:
            return None
        return ("meta", None)

    def _prop_attr(self, node: str, prop: str, attr: str, payload: str) -> Change:
        item = self._prop(node, prop)
        if attr == "$name":
            item.name = payload
        elif attr == "$datatype":
            item.datatype = payload
        elif attr == "$format":
            item.format = payload
        elif attr == "$unit":
            item.unit = payload
        elif attr == "$settable":
            item.settable = payload == "true"
        return ("meta", None)

    def _value(self, node: str, prop: str, payload: str, now: float) -> Change:
        item = self._prop(node, prop)
        item.value = payload
        item.changed = now
        self._record(node, prop, payload, now)
        return ("value", {"node": node, "prop": prop, "value": payload, "t": round(now, 3)})

    def _record(self, node: str, prop: str, payload: str, now: float) -> None:
        value = _number(payload)
        if value is None or payload in ("true", "false"):
            return
        series = self.history.setdefault((node, prop), deque())
        if len(series) >= 2 and series[-1][0] - series[-2][0] < self.sample_s:
            # The last point is provisional until it lies a whole interval after the one before:
            # it follows the newest value, so the chart ends at the current reading.
            series[-1] = (now, value)
        else:
            series.append((now, value))
        self._trim(series, now)

    def _trim(self, series: deque[tuple[float, float]], now: float) -> None:
        while series and now - series[0][0] > self.history_s:
            series.popleft()

    # ------------------------------------------------------------------ what the pages read

    def ordered_nodes(self) -> list[Node]:
        """Nodes in ``$nodes`` order, then any others seen (values before the attributes)."""
        ids = list(self.node_order) + sorted({n for n, _ in self.props} - set(self.node_order))
        return [self._node(n) for n in ids]

    def snapshot(self) -> dict[str, Any]:
        """The whole tree as JSON-ready data, nodes and properties in their published order."""
        nodes = []
        for node in self.ordered_nodes():
            listed = [p for p in node.properties if (node.id, p) in self.props]
            extra = sorted(p for n, p in self.props if n == node.id and p not in node.properties)
            nodes.append(
                {
                    "id": node.id,
                    "name": node.name or _humanise(node.id),
                    "type": node.type,
                    "properties": [self.props[(node.id, p)].as_dict() for p in listed + extra],
                }
            )
        return {
            "device": self.device,
            "name": self.name,
            "state": self.state,
            "state_since": round(self.state_since, 3) if self.state_since else None,
            "link": self.link,
            "link_since": round(self.link_since, 3) if self.link_since else None,
            "health": dict(self.health),
            "nodes": nodes,
        }

    def series(self, units: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Number histories as ``node/prop`` → {name, unit, points: [[t, v], …]}, optionally only
        those whose unit is one of ``units``."""
        wanted = None if units is None else set(units)
        out: dict[str, dict[str, Any]] = {}
        for (node, prop), points in self.history.items():
            info = self.props.get((node, prop))
            unit = info.unit if info else ""
            if wanted is not None and unit not in wanted:
                continue
            out[f"{node}/{prop}"] = {
                "name": (info.name if info and info.name else _humanise(prop)),
                "node": node,
                "unit": unit,
                "points": [[round(t, 3), v] for t, v in points],
            }
        return out

    def set_topic(self, node: str, prop: str) -> str:
        """The ``/set`` topic of a property."""
        return f"{self.prefix}{node}/{prop}/set"

    def check_set(self, node: str, prop: str, value: object) -> str:
        """The payload to publish for a new value, after the checks the bridge will make too
        (docs/architecture.md#set-path); UsageError names what is wrong."""
        item = self.props.get((node, prop))
        if item is None or not item.settable:
            raise UsageError(f"{node}/{prop} is not a settable property of {self.device}")
        return normalise(item, value)


def normalise(item: Prop, value: object) -> str:
    """Check ``value`` against the property's datatype and ``$format``; the Homie payload."""
    label = item.name or _humanise(item.id)
    text = ("true" if value else "false") if isinstance(value, bool) else str(value).strip()
    if item.datatype == "boolean":
        if text not in ("true", "false"):
            raise UsageError(f"{label}: {text!r} is not true or false")
        return text
    if item.datatype == "enum":
        options = [o for o in item.format.split(",") if o]
        if text not in options:
            raise UsageError(f"{label}: {text!r} is not one of {', '.join(options)}")
        return text
    if item.datatype in ("integer", "float"):
        number = _number(text)
        if number is None or (item.datatype == "integer" and not number.is_integer()):
            raise UsageError(
                f"{label}: {text!r} is not {'a whole number' if item.datatype == 'integer' else 'a number'}"
            )
        low, _, high = item.format.partition(":")
        # The bridge rounds a float to its register's step (tenths at least) before its range
        # check: 90.04 is 90.0, in range; the page allows the same half tenth
        slack = 0.05 if item.datatype == "float" else 0.0
        if item.format and ((low and number < float(low) - slack) or (high and number > float(high) + slack)):
            raise UsageError(f"{label}: {text} is outside {low}..{high}")
        return str(int(number)) if item.datatype == "integer" else repr(number)
    if len(text) > MAX_STRING_SET:
        raise UsageError(f"{label}: at most {MAX_STRING_SET} characters")
    return text
