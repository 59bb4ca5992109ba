"""Homie 4.0 description and value messages for a unit, made from the description table with
homie-spec's Device/Node/Property model (docs/architecture.md#homie-tree), its deviations corrected here:

* topics keep their case and are built from validated IDs (homie-spec lower-cases whole topics
  and accepts any ID);
* ``$state`` is left to the runtime: homie-spec emits ``init`` and ``ready`` around the
  description, but ``ready`` belongs after the values (docs/architecture.md#homie-tree);
* ``$homie`` comes first and ``$extensions`` is always published (required by Homie 4.0), which
  neither homie-spec nor the original did (docs/architecture.md#original-bridge U5). An empty retained payload
  would delete the topic, so the bridge implements one extension, ``org.homie.legacy-stats``
  (``$stats/interval`` here, ``$stats/uptime`` with the health document);
* ``$retained`` and ``$settable`` are sent only when they differ from the defaults, as the
  original did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from aurora.errors import UsageError
from homie_spec.devices import Device
from homie_spec.messages import Message
from homie_spec.nodes import Node
from homie_spec.properties import Datatype, Property

from .spec import NodeSpec, PropertySpec

HOMIE_VERSION = "4.0.0"
IMPLEMENTATION = "aurora-suite"
_ID = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_DATATYPES = {
    "integer": Datatype.INTEGER,
    "float": Datatype.FLOAT,
    "boolean": Datatype.BOOLEAN,
    "enum": Datatype.ENUM,
    "string": Datatype.STRING,
}
_DEVICE_ORDER = ("$homie", "$name", "$extensions", "$implementation", "$nodes")
# Homie 4 extension id:version:[homie versions]; its attributes are $stats/interval and $stats/uptime
EXTENSIONS = "org.homie.legacy-stats:0.1.1:[4.x]"
STATS_INTERVAL = "$stats/interval"
STATS_UPTIME = "$stats/uptime"


MAX_SET_PAYLOAD = 64  # longer than any value a property takes: refused before it is parsed
# Homie 4.0 payload grammar (its "Payload" section): ASCII digits only, a leading "-" and no "+",
# no surrounding whitespace; a float has digits on both sides of its ".".
_SET_GRAMMAR: Mapping[str, re.Pattern[str]] = {
    "integer": re.compile(r"-?[0-9]+"),
    "float": re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"),
    "boolean": re.compile(r"true|false"),
}


def set_payload_error(datatype: str, payload: str) -> str | None:
    """Why ``payload`` is not a Homie 4.0 ``datatype`` value, or None when it is one.

    Only the grammar: ranges, steps and enum options are the setter's to check.
    """
    if len(payload) > MAX_SET_PAYLOAD:
        return f"a payload of {len(payload)} characters is longer than any {datatype} value"
    if payload != payload.strip():
        return "surrounding whitespace is not part of a Homie value"
    grammar = _SET_GRAMMAR.get(datatype)
    if grammar is not None and not grammar.fullmatch(payload):
        return f"{payload!r} is not a Homie {datatype} (ASCII digits, e.g. 72 or 72.5)"
    return None


def is_homie_id(text: str) -> bool:
    """Homie 4 topic ID: lower-case letters, digits and inner hyphens."""
    return _ID.fullmatch(text) is not None


def homie_id(text: str) -> str:
    """``text`` made a valid Homie ID: lower-cased, runs of other characters become one hyphen.

    Raises UsageError when nothing usable is left.
    """
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not cleaned:
        raise UsageError(f"{text!r} gives no usable Homie ID")
    return cleaned


def _property(spec: PropertySpec) -> Property:
    return Property(
        name=spec.name,
        get=lambda: "",  # values come from the raw words, see values()
        datatype=_DATATYPES[spec.datatype],
        retained=None if spec.retained else False,
        settable=True if spec.setter else None,
        unit=spec.unit,
        formatOf=spec.format,
    )


def _device(device_id: str, name: str, nodes: Sequence[NodeSpec]) -> Device:
    for node in nodes:
        if not is_homie_id(node.id):
            raise ValueError(f"node id {node.id!r} is not a Homie ID")
        for spec in node.properties:
            if not is_homie_id(spec.id):
                raise ValueError(f"property id {spec.path!r} is not a Homie ID")
    return Device(
        id=device_id,
        name=name,
        nodes={
            n.id: Node(name=n.name, typeOf=n.type, properties={p.id: _property(p) for p in n.properties})
            for n in nodes
        },
        implementation=IMPLEMENTATION,
    )


def _suffix(message: Message, device_prefix: str) -> str:
    # homie-spec's Message.topic lower-cases the whole topic; rebuild it from the parts instead
    full = f"{message.prefix}/{message.topic_}" if message.prefix else message.topic_
    return full[len(device_prefix) + 1 :].rstrip("/")


def description(
    device_id: str, name: str, nodes: Sequence[NodeSpec], *, stats_interval_s: float = 5.0
) -> list[tuple[str, str]]:
    """(suffix under ``homie/<device_id>/``, payload) for every device, node and property
    attribute, in publishing order; no ``$state`` (the runtime owns it), nor ``$stats/uptime``
    (it changes: the runtime publishes it every ``stats_interval_s``)."""
    if not is_homie_id(device_id):
        raise ValueError(f"device id {device_id!r} is not a Homie ID")
    device = _device(device_id, name, nodes)
    prefix = f"{device.prefix}/{device.id}"
    head: dict[str, str] = {"$extensions": EXTENSIONS}
    rest: list[tuple[str, str]] = []
    for message in device.messages():
        suffix = _suffix(message, prefix)
        if suffix == "$state":
            continue
        if suffix in _DEVICE_ORDER:
            head[suffix] = message.payload
        else:
            rest.append((suffix, message.payload))
    head["$homie"] = HOMIE_VERSION
    stats = [(STATS_INTERVAL, str(max(1, round(stats_interval_s))))]
    return [(key, head[key]) for key in _DEVICE_ORDER if key in head] + stats + rest


def values(nodes: Iterable[NodeSpec], words: Mapping[int, int]) -> dict[str, str]:
    """``<node>/<prop>`` → payload for every retained property whose registers are all in words."""
    out: dict[str, str] = {}
    for node in nodes:
        for spec in node.properties:
            if not spec.retained:
                continue
            payload = spec.payload(words)
            if payload is not None:
                out[spec.path] = payload
    return out
