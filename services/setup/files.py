"""Write files and directories atomically with a given mode and owner; report what changed.

Ownership is only changed when running as root (a user cannot give files away); otherwise the
files stay with the user who ran the setup, which is what a broker run by that user needs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Action = Literal["created", "updated", "kept"]


@dataclass(frozen=True, slots=True)
class Owner:
    """Numeric owner and group to give a path; None leaves that part as it is."""

    uid: int | None = None
    gid: int | None = None


KEEP = Owner()


def can_chown() -> bool:
    return os.geteuid() == 0


def _apply(path: Path, mode: int, owner: Owner) -> None:
    if can_chown() and (owner.uid is not None or owner.gid is not None):
        os.chown(path, -1 if owner.uid is None else owner.uid, -1 if owner.gid is None else owner.gid)
    os.chmod(path, mode)


def ensure_dir(path: Path, mode: int, owner: Owner = KEEP) -> None:
    """Create ``path`` (and its parents, with default modes) and set its mode and owner."""
    path.mkdir(parents=True, exist_ok=True)
    _apply(path, mode, owner)


def write_file(path: Path, data: bytes, mode: int, owner: Owner = KEEP) -> Action:
    """Write ``data`` unless the file already holds exactly that; always fix mode and owner.

    The new content is written to a temporary file in the same directory, given its mode and
    owner, and renamed over the old one, so no reader ever sees a half-written or too-open file.
    """
    try:
        unchanged = path.read_bytes() == data
        existed = True
    except FileNotFoundError:
        unchanged = existed = False
    if unchanged:
        _apply(path, mode, owner)
        return "kept"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        _apply(Path(tmp), mode, owner)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return "updated" if existed else "created"


def read_text(path: Path) -> str | None:
    """The file's text, or None if it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
