"""Validate MQTT discovery messages with Home Assistant's own discovery code.

Run by the Python of ``.venv-ha`` (Home Assistant pinned in ``tests/hass/requirements.txt``), never by
the project's venv: it imports only the standard library and ``homeassistant``, no project code,
because the two venvs are different Pythons.

stdin: a JSON list of ``[topic, payload]`` pairs as a bridge publishes them (payload ``""`` clears a
retained topic); a third item, ``[topic, payload, prefix]``, judges that message under its own
discovery prefix instead of ``--prefix`` (several bridges' messages in one run: starting Home
Assistant is most of a run's time). stdout: one JSON object::

    {"homeassistant": "2026.2.3", "ok": true, "messages": [
        {"topic": ..., "kind": "device" | "component" | "migrate" | "clear" | "topic", "ok": true,
         "error": null, "warnings": [], "components": {key: {"platform": ..., "ok": true,
         "error": null, "ignored": [], "warnings": []}}}]}

``ignored`` names the keys a platform schema silently dropped (HA's discovery schemas remove
unknown keys rather than refuse them); ``ok`` is about rejection only, so callers decide whether
an ignored key is a failure.

Each message goes through the same steps as HA's ``mqtt.discovery.async_start`` message handler:
the discovery topic regex, the ``migrate_discovery`` marker, abbreviation expansion,
``DEVICE_DISCOVERY_SCHEMA`` for a device payload, then per component the merge of the shared
device options, ``~`` expansion and the platform's ``DISCOVERY_SCHEMA`` (what
``async_setup_entity_entry_helper`` runs before it creates the entity). The helpers used are HA's
own, some private: the HA version is pinned, so a rename shows up as an import error here, not as
a silently weaker check. Warnings HA logs while validating (deprecated options, say) are reported
with the message they belong to, because HA accepts such a payload today and drops it later.

Exit status: 0 when every message passed, 1 when one did not, 2 on unreadable input.
Nothing here connects to a broker or installs anything: only schema code runs, inside the event
loop with a ``HomeAssistant`` instance on a throw-away config dir (``cv.template`` refuses to
validate outside it).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from homeassistant.components.mqtt import discovery
from homeassistant.components.mqtt.const import SUPPORTED_COMPONENTS
from homeassistant.components.mqtt.schemas import DEVICE_DISCOVERY_SCHEMA, MQTT_ORIGIN_INFO_SCHEMA
from homeassistant.const import __version__ as HA_VERSION  # noqa: N812 - HA's name for it
from homeassistant.core import HomeAssistant
from homeassistant.util.json import json_loads_object

# voluptuous is not imported here on purpose: HA's schemas raise its Invalid, and from 2026.x HA
# installs probatio in voluptuous' place when homeassistant is imported; every rejection is caught
# as an Exception and reported with its text.

DEVICE = "device"
# Platforms whose HA modules need packages tests/hass/requirements.txt leaves out on purpose (HA
# installs them at run time); a payload for one of them is reported as an error, never passed.
NOT_INSTALLED = {"camera": "numpy and PyAV", "image": "httpx"}


class _Collector(logging.Handler):
    """Keeps the WARNING and worse records HA logs while one schema runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def _captured() -> Iterator[list[str]]:
    """Collect HA's logged warnings and Python warnings raised inside the block."""
    collector = _Collector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield collector.messages
        collector.messages.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        root.removeHandler(collector)


def _error(exc: Exception) -> str:
    """The text HA would log for a rejected payload."""
    return f"{type(exc).__name__}: {exc}"


def _platform_schema(platform: str) -> Any:
    """The platform's discovery schema, as ``async_setup_entity_entry_helper`` applies it."""
    return importlib.import_module(f"homeassistant.components.mqtt.{platform}").DISCOVERY_SCHEMA


def _validate_component(platform: str, config: discovery.MQTTDiscoveryPayload) -> dict[str, Any]:
    """One component's config (abbreviations already expanded) through its platform's schema."""
    result: dict[str, Any] = {"platform": platform, "ok": True, "error": None, "ignored": []}
    with _captured() as logged:
        if discovery.TOPIC_BASE in config:
            discovery._replace_topic_base(config)
        try:
            if platform not in SUPPORTED_COMPONENTS:
                raise ValueError(f"platform {platform!r} is not supported by MQTT discovery")
            if platform in NOT_INSTALLED:
                raise ValueError(f"cannot validate {platform}: needs {NOT_INSTALLED[platform]}")
            validated = _platform_schema(platform)(config)
        except Exception as exc:  # any failure is a rejection to report
            result.update(ok=False, error=_error(exc))
        else:
            # Discovery schemas drop unknown keys (vol.REMOVE_EXTRA) instead of refusing them, so
            # a misspelt or removed option would pass unnoticed; name what HA threw away.
            result["ignored"] = sorted(set(config) - set(validated))
    result["warnings"] = logged
    return result


def _validate_device(payload: str) -> dict[str, Any]:
    """A ``<prefix>/device/.../config`` payload: the device schema, then every component."""
    result: dict[str, Any] = {"kind": DEVICE, "ok": True, "error": None, "components": {}}
    with _captured() as logged:
        try:
            document = discovery.MQTTDiscoveryPayload(json_loads_object(payload))
            if discovery._async_process_discovery_migration(document):
                result["kind"] = "migrate"
                return result
            discovery._replace_all_abbreviations(document)
            DEVICE_DISCOVERY_SCHEMA(document)
        except Exception as exc:  # HA drops the whole payload on any of these
            result.update(ok=False, error=_error(exc))
            return result
        finally:
            result["warnings"] = logged
    for key, raw in document["components"].items():
        config = discovery.MQTTDiscoveryPayload(dict(raw))
        platform = config.pop("platform")
        if not config:
            # A component reduced to its platform is HA's "remove this one" marker
            result["components"][key] = {
                "platform": platform,
                "ok": True,
                "error": None,
                "ignored": [],
                "warnings": [],
            }
            continue
        config["device"] = document["device"]
        config["origin"] = document.get("origin")
        discovery._merge_common_device_options(config, document)
        result["components"][key] = _validate_component(platform, config)
    result["ok"] = all(c["ok"] for c in result["components"].values())
    return result


def _validate_single(platform: str, payload: str) -> dict[str, Any]:
    """A single-component ``<prefix>/<platform>/.../config`` payload (or its migration marker)."""
    result: dict[str, Any] = {"kind": "component", "ok": True, "error": None, "warnings": []}
    try:
        config = discovery.MQTTDiscoveryPayload(json_loads_object(payload))
    except ValueError as exc:
        result.update(ok=False, error=_error(exc))
        return result
    with _captured() as logged:
        migrating = discovery._async_process_discovery_migration(config)
    result["warnings"] = logged
    if migrating:
        result["kind"] = "migrate"
        return result
    discovery._replace_all_abbreviations(config)
    if "origin" in config:
        try:
            MQTT_ORIGIN_INFO_SCHEMA(config["origin"])
        except Exception as exc:  # HA only logs the origin error, and drops the message
            result.update(ok=False, error=_error(exc))
            return result
    component = _validate_component(platform, config)
    result.update(
        ok=component["ok"],
        error=component["error"],
        ignored=component["ignored"],
        warnings=logged + component["warnings"],
    )
    return result


def validate(topic: str, payload: str, prefix: str) -> dict[str, Any]:
    """One published message, judged as HA's discovery subscriber would judge it."""
    base: dict[str, Any] = {"topic": topic}
    trimmed = topic.replace(f"{prefix}/", "", 1) if topic.startswith(f"{prefix}/") else None
    match = discovery.TOPIC_MATCHER.match(trimmed) if trimmed is not None else None
    if match is None:
        return base | {"kind": "topic", "ok": False, "error": "illegal discovery topic", "warnings": []}
    platform = match.group("component")
    if platform != DEVICE and platform not in SUPPORTED_COMPONENTS:
        error = f"{platform!r} is not a discovery component HA subscribes to"
        return base | {"kind": "topic", "ok": False, "error": error, "warnings": []}
    if payload == "":
        return base | {"kind": "clear", "ok": True, "error": None, "warnings": []}
    if platform == DEVICE:
        return base | _validate_device(payload)
    return base | _validate_single(platform, payload)


def check_install() -> list[str]:
    """Import every discovery platform's schema the venv is meant to have; return the failures."""
    failures = []
    for platform in SUPPORTED_COMPONENTS:
        if platform in NOT_INSTALLED:
            continue
        try:
            _platform_schema(platform)
        except Exception as exc:  # report every missing module at once
            failures.append(f"{platform}: {_error(exc)}")
    return failures


async def _check_install() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="hass-validate-") as config_dir:
        hass = HomeAssistant(config_dir)
        try:
            return check_install()
        finally:
            await hass.async_stop(force=True)


async def _run(messages: list[tuple[str, str, str | None]], prefix: str) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hass-validate-") as config_dir:
        hass = HomeAssistant(config_dir)
        # Nothing here sets up an integration, so nothing would install a requirement; this
        # makes sure of it should a schema ever trigger a setup.
        hass.config.skip_pip = True
        try:
            return [validate(topic, payload, own or prefix) for topic, payload, own in messages]
        finally:
            await hass.async_stop(force=True)


def _read(stream: Any) -> list[tuple[str, str, str | None]]:
    data = json.load(stream)
    if not isinstance(data, list) or not all(
        isinstance(item, list | tuple) and len(item) in (2, 3) and all(isinstance(v, str) for v in item)
        for item in data
    ):
        raise ValueError("expected a JSON list of [topic, payload] or [topic, payload, prefix] strings")
    return [(item[0], item[1], item[2] if len(item) == 3 else None) for item in data]


def main(argv: list[str] | None = None) -> int:
    """Read pairs from stdin, print the verdicts, exit 0 only when every message passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prefix", default="homeassistant", help="discovery prefix (default %(default)s)")
    parser.add_argument(
        "--check-install",
        action="store_true",
        help="only import every platform schema the venv should provide (for `make hass-venv`)",
    )
    args = parser.parse_args(argv)
    if args.check_install:
        failures = asyncio.run(_check_install())
        for failure in failures:
            print(f"validate_discovery: cannot load {failure}", file=sys.stderr)
        return 1 if failures else 0
    try:
        messages = _read(sys.stdin)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        print(f"validate_discovery: {exc}", file=sys.stderr)
        return 2
    # Warnings must reach _Collector, but not stderr: the verdicts are the output, and without a
    # handler on the root logger Python's last-resort handler would print every one of them
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger().addHandler(logging.NullHandler())
    results = asyncio.run(_run(messages, args.prefix))
    ok = all(r["ok"] for r in results)
    json.dump({"homeassistant": HA_VERSION, "ok": ok, "messages": results}, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
