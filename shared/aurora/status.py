"""The bridge's status file: what a container healthcheck reads to tell a working bridge from one
that only holds its broker connection (its line down, the unit silent, a reconnect storm).

The bridge rewrites it every few seconds (atomically); ``python -m aurora.setup.healthcheck
connected 8883`` reads it when it exists. It holds no secrets: the state, the current error and
when it was written.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .options import env_value

STATUS_FILE_VAR = "AURORA_BRIDGE_STATUS_FILE"  # the bridge's --status-file (old name AURORA_STATUS_FILE)
STALE_S = 60.0  # written every ≤5 s: older than this, the bridge's main loop is stuck or gone


def default_path() -> Path:
    """``$AURORA_BRIDGE_STATUS_FILE``, else ``aurora-bridge.status`` in the temporary directory."""
    return Path(env_value(STATUS_FILE_VAR) or Path(tempfile.gettempdir()) / "aurora-bridge.status")


def write_status(path: Path, state: str, error: str | None) -> None:
    """Replace the file with the bridge's current state (never raises: a read-only or full
    filesystem costs the healthcheck its detail, not the bridge its work)."""
    doc = {"state": state, "error": error, "written_at": time.time(), "pid": os.getpid()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    """The status document, or None when there is none (or it cannot be read)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def problem(doc: dict[str, Any], now: float | None = None) -> str | None:
    """Why the bridge is unhealthy according to ``doc``, or None when it is ready and current."""
    written = doc.get("written_at")
    age = (time.time() if now is None else now) - written if isinstance(written, int | float) else None
    if age is None or age > STALE_S:
        return f"the bridge's status is {'unreadable' if age is None else f'{age:.0f} s old'}"
    state = doc.get("state")
    if state != "ready":
        return f"the bridge is {state}: {doc.get('error') or 'no good poll yet'}"
    return None
