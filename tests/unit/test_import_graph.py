"""The import graph of shared/aurora and services/*, read from the source (ast), not by importing it:
no module imports itself round a circle, services never import each other, protocol code knows
nothing of MQTT and MQTT code nothing of serial ports (docs/architecture.md#floors).

Every import counts, at the top of a module or inside a function, and those under
``if TYPE_CHECKING:`` too: a circle only the type checker walks is still two modules that cannot
be understood one without the other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Code that speaks the heat pump's protocol: it must work without paho installed.
PROTOCOL = ("aurora.rtu", "aurora.registers", "aurora.query", "aurora.transport", "aurora.bus")
# Code that speaks MQTT: it must work without pyserial (the web and the RPC client never open a port).
MQTT = ("aurora.mqtt", "aurora.mqtt_args", "aurora.rpc_client")
SERIAL = (
    "serial",
    "aurora.transport",
    "aurora.ports",
    "aurora.urlhandler",
    "aurora.sniffer",
    "aurora.monitor",
)
MQTT_LIBRARIES = ("paho", "aurora.mqtt", "aurora.mqtt_args", "aurora.rpc_client")


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@cache
def modules() -> Mapping[str, Path]:
    """Dotted name → file, as the package is installed (pyproject's package-dir)."""
    found: dict[str, Path] = {}
    roots = {"aurora": ROOT / "shared" / "aurora"}
    roots |= {
        f"aurora.{d.name}": d for d in sorted((ROOT / "services").iterdir()) if (d / "__init__.py").exists()
    }
    for package, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _imported(name: str, path: Path) -> Iterator[str]:
    """Every module name ``name``'s source imports (absolute), including ``from x import module``."""
    known = modules()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    yield f"{target}.{alias.name}"


@cache
def graph() -> Mapping[str, frozenset[str]]:
    """Module → every name it imports (the suite's own modules and third-party ones alike)."""
    return {name: frozenset(_imported(name, path)) for name, path in modules().items()}


def _internal(name: str) -> frozenset[str]:
    known = modules()
    return frozenset(m for m in graph()[name] if m in known and m != name)


def circles(edges: Mapping[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected parts of ``edges`` with more than one module: each an import
    circle (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                part: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.append(member)
                    if member == node:
                        break
                if len(part) > 1:
                    found.append(sorted(part))
    return found


def _service(name: str) -> str | None:
    """The service a module belongs to (``aurora.bridge.app`` → ``bridge``), None for the library."""
    services = {f"aurora.{d.name}" for d in (ROOT / "services").iterdir() if (d / "__init__.py").exists()}
    return next((s.removeprefix("aurora.") for s in services if _within(name, (s,))), None)


def _edges(sources: tuple[str, ...], targets: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name in modules()
        if _within(name, sources)
        for target in graph()[name]
        if _within(target, targets)
    )


# ---------------------------------------------------------------- the graph reader itself


def test_the_reader_sees_every_kind_of_import() -> None:
    """A graph that missed lazy, relative or TYPE_CHECKING imports would pass anything."""
    app = graph()["aurora.bridge.app"]
    assert "aurora.bridge.polling" in app  # from .polling import PollLoop
    assert "aurora.transport" in app  # imported inside Bridge.__init__
    assert "aurora.bridge.device" in graph()["aurora.bridge.state"]  # under TYPE_CHECKING
    assert "aurora.registers" in graph()["aurora.bridge.spec"]  # from aurora import registers
    assert "serial" in graph()["aurora.transport.streams"]
    assert "aurora.transport.serial_bus" in graph()["aurora.transport"]  # a package's own modules


def test_circles_are_found() -> None:
    """The finder on a made-up graph: one circle of three, one of two, a chain that is none."""
    fake = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d", "a"}, "f": {"a"}, "g": set()}
    assert [["a", "b", "c"], ["d", "e"]] == sorted(circles({k: frozenset(v) for k, v in fake.items()}))


# ---------------------------------------------------------------- the rules


def test_no_import_circles() -> None:
    assert [] == circles({name: _internal(name) for name in modules()})


def test_services_import_the_library_never_each_other() -> None:
    crossing = sorted(
        f"{name} imports {target}"
        for name in modules()
        if (own := _service(name)) is not None
        for target in graph()[name]
        if (other := _service(target)) is not None and other != own
    )
    assert [] == crossing


def test_protocol_code_knows_nothing_of_mqtt() -> None:
    assert [] == _edges(PROTOCOL, MQTT_LIBRARIES)


def test_mqtt_code_knows_nothing_of_serial_ports() -> None:
    assert [] == _edges(MQTT, SERIAL)


@pytest.mark.parametrize("module", ["aurora.transport", "aurora.query", "aurora.rtu", "aurora.registers"])
def test_importing_protocol_code_loads_no_paho(module: str) -> None:
    """What the source says, proven by the interpreter (the MQTT side's twin, no pyserial under
    ``import aurora.mqtt``, is tests/unit/test_mqtt_edge.py)."""
    loaded = "sorted(m for m in sys.modules if m == 'paho' or m.startswith('paho.'))"
    code = f"import sys, {module}; print({loaded}, {module!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert "[] True" == out.stdout.strip(), out.stdout
