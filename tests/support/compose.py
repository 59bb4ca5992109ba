"""compose.yaml read the way ``docker compose`` reads it, so a test can run each service locally.

Handles what this project's file uses: YAML anchors and merge keys, ``$$`` and ``${VAR}``,
``${VAR:-default}`` / ``${VAR-default}`` interpolation, entrypoint + command, environment as a
mapping or a list, short volume syntax, and CMD healthchecks. The image's own ``ENV`` lines come
from the Dockerfile's last stage (``image_environment``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_VARIABLE = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<colon>:?)-(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_]\w*))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution: ``$$`` is ``$``; unset variables are empty."""

    def substitute(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        name = match["braced"] or match["bare"]
        value = env.get(name)
        if match["default"] is not None and (value is None or (match["colon"] and value == "")):
            return match["default"]
        return value or ""

    return _VARIABLE.sub(substitute, text)


def _interpolate_all(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_all(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_all(value, env) for key, value in node.items()}
    return node


@dataclass(frozen=True, slots=True)
class Mount:
    """One short-syntax volume: ``source:target[:ro]``."""

    source: str
    target: str
    read_only: bool


@dataclass(frozen=True, slots=True)
class Service:
    """What a container of one service would run, after interpolation."""

    name: str
    entrypoint: tuple[str, ...]
    command: tuple[str, ...]
    environment: dict[str, str]
    mounts: tuple[Mount, ...]
    healthcheck: tuple[str, ...] | None  # the command of a CMD healthcheck
    image: str
    profiles: tuple[str, ...]

    @property
    def argv(self) -> tuple[str, ...]:
        """What the container runs: entrypoint + command."""
        return (*self.entrypoint, *self.command)

    def run_argv(self, *args: str) -> tuple[str, ...]:
        """``docker compose run SERVICE ARGS...``: ARGS replace the command."""
        return (*self.entrypoint, *args) if args else self.argv


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _environment(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    return dict(item.split("=", 1) for item in _as_list(value))


def _mount(text: str) -> Mount:
    parts = text.split(":")
    return Mount(parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(","))


def _healthcheck(value: Any) -> tuple[str, ...] | None:
    if not value or not value.get("test"):
        return None
    test = _as_list(value["test"])
    if test[0] == "CMD":
        return tuple(test[1:])
    if test[0] == "CMD-SHELL":
        return ("sh", "-c", test[1])
    return None


def load_compose(path: Path, env: Mapping[str, str] | None = None) -> dict[str, Service]:
    """The services of ``path`` with variables from ``env`` (default: none set)."""
    document = _interpolate_all(yaml.safe_load(path.read_text(encoding="utf-8")), env or {})
    services = {}
    for name, spec in document["services"].items():
        services[name] = Service(
            name=name,
            entrypoint=tuple(_as_list(spec.get("entrypoint"))),
            command=tuple(_as_list(spec.get("command"))),
            environment=_environment(spec.get("environment")),
            mounts=tuple(_mount(v) for v in _as_list(spec.get("volumes"))),
            healthcheck=_healthcheck(spec.get("healthcheck")),
            image=str(spec.get("image", "")),
            profiles=tuple(_as_list(spec.get("profiles"))),
        )
    return services


def image_environment(dockerfile: Path) -> dict[str, str]:
    """``ENV KEY=VALUE ...`` of the Dockerfile's last stage (values without spaces or quotes)."""
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    last_stage = re.split(r"^FROM\s", text, flags=re.MULTILINE)[-1]
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV\s+(.*)$", last_stage, flags=re.MULTILINE):
        for pair in line.split():
            key, _, value = pair.partition("=")
            env[key] = value
    return env
