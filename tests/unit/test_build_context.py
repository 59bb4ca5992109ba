"""The image's build context (.dockerignore) holds every file docker/Dockerfile copies and every
data file the wheel built inside the image ships (pyproject.toml): a file added to one and not to
the other fails `docker compose build` only, far from where it was added."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _allowed() -> list[str]:
    """The context's re-included patterns: .dockerignore excludes everything (`*`) first."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "the context starts from nothing and names what it sends"
    return [rule[1:].rstrip("/") for rule in rules if rule.startswith("!")]


def _in_context(path: str) -> bool:
    """Whether ``path`` is sent: matched, under a sent directory, or a directory holding one."""
    return any(
        fnmatch.fnmatch(path, p) or path.startswith(p + "/") or p.startswith(path + "/") for p in _allowed()
    )


def _copied() -> list[str]:
    """Every source of a COPY from the context in docker/Dockerfile."""
    sources: list[str] = []
    for line in (ROOT / "docker" / "Dockerfile").read_text().splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources += [w.rstrip("/") for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    copied = _copied()
    assert "pyproject.toml" in copied
    missing = [s for s in copied if not _in_context(s) or not (ROOT / s).exists()]
    assert not missing, f"COPY sources that .dockerignore leaves out (or that do not exist): {missing}"


def test_every_data_file_of_the_wheel_is_in_the_build_context() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    files = [f for group in project["tool"]["setuptools"]["data-files"].values() for f in group]
    assert files
    missing = [f for f in files if not _in_context(f)]
    assert not missing, f"the wheel's data files that .dockerignore leaves out: {missing}"
