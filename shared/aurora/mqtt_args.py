"""What every tool needs to know about MQTT before it imports paho: which URLs are MQTT, and the
command-line options they share (``aurora_fetch tcp://…`` never loads paho).

On an ``aurora.options.ToolParser`` each option also reads its ``AURORA_MQTT_*`` variable (and
``--homie-root`` ``AURORA_HOMIE_ROOT``), the same in every tool."""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import re
import sys
import types
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_ROOT",
    "MQTT_SCHEMES",
    "add_mqtt_arguments",
    "defer_unused_imports",
    "is_mqtt_url",
    "topic_level",
]

# scheme -> (TLS, WebSocket): the one table every "is this MQTT?" question is answered from
MQTT_SCHEMES: dict[str, tuple[bool, bool]] = {
    "mqtt": (False, False),
    "mqtts": (True, False),
    "ws": (False, True),
    "wss": (True, True),
}
DEFAULT_ROOT = "homie"
_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9_-]+$")
# Standard modules paho.mqtt.client imports at its top but uses only for what a one-shot tool
# never does: urllib.request (with http.client, email, tempfile, shutil, bz2, lzma) for a proxy
# from the environment, and only with PySocks installed; hashlib for the WebSocket handshake;
# uuid for a client id paho makes up (ours are given); traceback (with linecache, tokenize and
# textwrap), which logging imports for formatting an exception; platform, whose one use at
# paho's import is ``platform.system()`` (answered by the stand-in, below). Together most of
# paho's import time beyond ssl and logging.
_DEFERRED = ("urllib.request", "hashlib", "uuid", "traceback", "platform")


def is_mqtt_url(url: str) -> bool:
    """Whether ``url`` names a broker: ``mqtt://``, ``mqtts://``, ``ws://`` or ``wss://``."""
    return "://" in url and urlsplit(url).scheme.lower() in MQTT_SCHEMES


class _Deferred(types.ModuleType):
    """Stands in for a standard module until one of its attributes is asked for, then imports
    it and takes its namespace (so the names bound to this stand-in work from then on).
    Attributes set on the stand-in itself answer without importing (``platform.system``)."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, real)
        self.__dict__.update(real.__dict__)
        return getattr(real, attr)


def defer_unused_imports() -> None:
    """Stand-ins (``_Deferred``) for the modules of ``_DEFERRED`` not imported yet: they load on
    first use instead of at ``import``. For a short-lived tool about to import paho
    (``aurora_fetch mqtts://…``, issue 15), not for a long-running multi-threaded service."""
    for name in _DEFERRED:
        if name in sys.modules:
            continue
        stand_in = _Deferred(name)
        # ``import x`` looks at ``__spec__._initializing`` of a module it finds: a spec-less
        # stand-in is taken as imported, as it should be
        stand_in.__spec__ = None
        if name == "platform":
            system = _posix_system()
            if system is None:
                continue  # not a plain POSIX uname: platform's own rules apply
            stand_in.system = functools.partial(str, system)  # type: ignore[attr-defined]
        sys.modules[name] = stand_in
        parent, _, child = name.rpartition(".")
        if parent:  # ``import urllib.request`` binds urllib and reaches request as its attribute
            setattr(importlib.import_module(parent), child, stand_in)


def _posix_system() -> str | None:
    """What ``platform.system()`` answers, without importing platform: on POSIX it is uname's
    system name, unless platform renames it (no uname, "Microsoft", "OpenVMS", "unknown");
    None then."""
    uname = getattr(os, "uname", None)
    if uname is None:
        return None
    system: str = uname().sysname
    return None if system in ("", "unknown", "Microsoft", "OpenVMS") else system


def topic_level(text: str) -> str:
    """An argparse type: one topic level of letters, digits, ``-`` or ``_``."""
    if not _TOPIC_LEVEL.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} must be one topic level of letters, digits, - or _")
    return text


def add_mqtt_arguments(parser: argparse.ArgumentParser, *, tool: bool = False) -> None:
    """The MQTT options every tool shares; ``tool``: also ``--mqtt-topic`` (the device to use)."""
    group = parser.add_argument_group("MQTT")
    group.add_argument(
        "--mqtt-password-file",
        metavar="FILE",
        default=None,
        help="file holding the MQTT password; or set AURORA_MQTT_PASSWORD (never in the URL: ps shows it)",
    )
    group.add_argument(
        "--mqtt-ca-file",
        metavar="FILE",
        default=None,
        help="CA certificate for mqtts:// and wss:// when the broker's is not publicly trusted",
    )
    group.add_argument(
        "--homie-root",
        type=topic_level,
        metavar="ROOT",
        default=None,  # None: the tool's topic's, else DEFAULT_ROOT
        help="first topic level of the Homie tree: where the bridge publishes, and where the other "
        f"tools look for it (default {DEFAULT_ROOT})",
    )
    if tool:
        group.add_argument(
            "--mqtt-topic",
            metavar="TOPIC",
            default=None,
            help="the device to use, e.g. homie/aurora-2611000042/$modbus; an mqtt(s):// URL may "
            "give it as its path instead (a ws(s):// URL's path is the WebSocket's); without it the "
            "broker's only aurora device is used",
        )
