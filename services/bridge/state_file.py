"""Where the energy counters' state file goes by default (the ``--energy-state`` default).

Apart from :mod:`.energy` so that the command line is read without importing what the counters
need (tempfile, datetime, json): the line is opened before that (issue 15: start to ready).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def default_state_path(device_id: str, environ: Mapping[str, str] = os.environ) -> Path:
    """Where the state file goes unless ``--energy-state`` says otherwise: systemd's
    ``$STATE_DIRECTORY``, else ``$XDG_STATE_HOME/aurora``, else ``~/.local/state/aurora``."""
    if environ.get("STATE_DIRECTORY"):
        base = Path(environ["STATE_DIRECTORY"].split(":")[0])
    elif environ.get("XDG_STATE_HOME"):
        base = Path(environ["XDG_STATE_HOME"]) / "aurora"
    else:
        base = Path(environ.get("HOME") or "~").expanduser() / ".local" / "state" / "aurora"
    return base / f"energy-{device_id}.json"
