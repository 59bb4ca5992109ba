"""docs/architecture.md#threads stays true to the code: every thread the bridge starts by name is a
row of the table, every named row is a thread the bridge starts, and each row's "started by" names
code that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = ROOT / "services" / "bridge"


def _table() -> dict[str, list[str]]:
    """First cell → the other cells of each row of the threads table."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split('<a id="threads"></a>', 1)[1].split("<a id=", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[0] not in ("thread", "---"):
            rows[cells[0]] = cells[1:]
    return rows


def _started_threads() -> dict[str, str]:
    """Thread name → the bridge module that starts it (``Thread(name=…)``, ``thread_name_prefix=…``);
    a thread started without a name fails (a row could not name it)."""
    found: dict[str, str] = {}
    for path in sorted(BRIDGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not ast.unparse(node.func).endswith(
                ("Thread", "ThreadPoolExecutor")
            ):
                continue
            names = [
                k.value.value
                for k in node.keywords
                if k.arg in ("name", "thread_name_prefix") and isinstance(k.value, ast.Constant)
            ]
            assert names, f"{path.name}:{node.lineno}: a thread without a name"
            found[str(names[0])] = path.name
    return found


def test_every_thread_the_bridge_starts_is_in_the_table_and_no_other() -> None:
    named = {cell.strip("`") for cell in _table() if cell.startswith("`")}
    started = _started_threads()
    assert {"bus-worker", "poller", "first-poll"} <= set(started)  # the control: the finder finds
    assert set(started) == named, started


def test_the_code_each_row_names_exists() -> None:
    paths = [*BRIDGE.glob("*.py"), *(ROOT / "shared" / "aurora").rglob("*.py")]
    sources = {path: path.read_text(encoding="utf-8") for path in paths}
    modules = {path.name: text for path, text in sources.items() if path.parent == BRIDGE}
    everything = "\n".join(sources.values())
    for thread, (started_by, *_) in _table().items():
        for name in re.findall(r"`([A-Za-z_][\w.]*)`", started_by):
            if name.endswith(".py"):
                assert name in modules, (thread, name)
                continue
            *owner, attribute = name.split(".")
            where = modules.get(f"{owner[-1]}.py", everything) if owner else everything  # module.function
            assert re.search(rf"\b(def|class) {re.escape(attribute)}\b", where), (thread, name)
            if owner and f"{owner[-1]}.py" not in modules:
                assert re.search(rf"\bclass {re.escape(owner[-1])}\b", everything), (thread, name)
