"""Every tool's options from its command line or the environment, under one naming scheme.

A tool builds its command line with ``ToolParser(tool="bridge", ...)`` and plain ``add_argument``
calls; the parser gives every option an environment variable (docs/configuration.md):

- ``AURORA_<OPTION>`` for the options every tool shares with the same meaning: the ``--mqtt-*``
  options, ``--homie-root`` and ``--log-format`` (one line in a ``.env`` file serves every tool);
- ``AURORA_<TOOL>_<OPTION>`` for everything else (``AURORA_BRIDGE_PORT``, ``AURORA_WEB_PORT``:
  one environment can hold every tool's settings without one tool picking up another's).

``<OPTION>`` is the long option's name in capitals with ``_`` for ``-`` (``--vport-rtu`` is
``AURORA_BRIDGE_VPORT_RTU``); an optional positional argument is named after its dest. Rules:

- the command line wins over the environment, which wins over the default;
- a variable that is empty (or only blanks) counts as unset, as compose's ``${VAR:-}`` expects;
  surrounding blanks are ignored;
- a value is parsed as the option's own value is; a bad one ends the tool before it does anything,
  with one line naming the variable and exit status 2;
- true/false options take 1/true/yes/on or 0/false/no/off; a repeatable option's variable holds
  its values separated by ``;``;
- the names used before this scheme (``RENAMED``) still work; the first use of one logs a
  WARNING naming its new name, once, when the tool calls ``log_deprecated_names``.

Nothing here imports more than ``argparse``: ``aurora_fetch`` starts fast (issue 15).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

__all__ = [
    "COMMON_OPTIONS",
    "RENAMED",
    "ToolParser",
    "env_value",
    "log_deprecated_names",
    "parse_bool",
    "variable_name",
]

PREFIX = "AURORA"
# Options with one meaning in every tool, so one variable for all of them.
COMMON_OPTIONS = frozenset({"homie-root", "log-format"})
COMMON_PREFIXES = ("mqtt-",)
LIST_SEPARATOR = ";"

# New name → the names it had before the scheme; each still works, with a warning.
RENAMED: Mapping[str, tuple[str, ...]] = {
    "AURORA_MQTT_PASSWORD_FILE": ("MQTT_PASSWORD_FILE",),
    "AURORA_MQTT_PASSWORD": ("MQTT_PASSWORD",),
    "AURORA_MQTT_CA_FILE": ("MQTT_CA_FILE",),
    "AURORA_BRIDGE_PORT": ("AURORA_PORT",),
    "AURORA_BRIDGE_MQTT_URL": ("AURORA_MQTT_URL",),
    "AURORA_BRIDGE_DEVICE_NAME": ("AURORA_DEVICE_NAME",),
    "AURORA_BRIDGE_HOMIE": ("AURORA_HOMIE",),
    "AURORA_BRIDGE_HOME_ASSISTANT": ("AURORA_HOME_ASSISTANT",),
    "AURORA_BRIDGE_FAST_INTERVAL": ("AURORA_FAST_INTERVAL",),
    "AURORA_BRIDGE_MEDIUM_INTERVAL": ("AURORA_MEDIUM_INTERVAL",),
    "AURORA_BRIDGE_SLOW_INTERVAL": ("AURORA_SLOW_INTERVAL",),
    "AURORA_BRIDGE_WATCHDOG_CYCLES": ("AURORA_WATCHDOG_CYCLES",),
    "AURORA_BRIDGE_TIMEOUT": ("AURORA_TIMEOUT",),
    "AURORA_BRIDGE_ALLOW_RAW_WRITES": ("AURORA_ALLOW_RAW_WRITES",),
    "AURORA_BRIDGE_HA_PREFIX": ("AURORA_HA_PREFIX",),
    "AURORA_BRIDGE_ENERGY_STATE": ("AURORA_ENERGY_STATE",),
    "AURORA_BRIDGE_ENERGY_MAX_GAP": ("AURORA_ENERGY_MAX_GAP",),
    "AURORA_BRIDGE_DEBUG_MODBUS": ("AURORA_DEBUG_MODBUS",),
    "AURORA_BRIDGE_STATUS_FILE": ("AURORA_STATUS_FILE",),
    "AURORA_BRIDGE_VPORT_RTU": ("AURORA_VPORT_RTU",),
    "AURORA_BRIDGE_VPORT_MODBUS_TCP": ("AURORA_VPORT_MODBUS_TCP",),
    "AURORA_BRIDGE_VPORT_READ_ONLY": ("AURORA_VPORT_READ_ONLY",),
    "AURORA_BRIDGE_VPORT_MAX_CLIENTS": ("AURORA_VPORT_MAX_CLIENTS",),
    "AURORA_BRIDGE_VPORT_IDLE_TIMEOUT": ("AURORA_VPORT_IDLE_TIMEOUT",),
    "AURORA_WEB_ALLOWED_HOST": ("AURORA_WEB_ALLOWED_HOSTS",),
    "AURORA_SETUP_HOST": ("AURORA_SETUP_HOSTS",),
}

_NOT_A: Mapping[object, str] = {int: "not a whole number", float: "not a number"}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_SECRET = re.compile(r"PASSWORD(?!_FILE)|SECRET|TOKEN")
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


class _Unset:
    """The default of an option until the parser has looked at the environment."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()

# Old names seen in this process: old → (new, whether the new one was set too and won).
_deprecated: dict[str, tuple[str, bool]] = {}
_logged: set[str] = set()
_started = False


def variable_name(tool: str, option: str, *, positional: bool = False) -> str:
    """The variable for ``--option`` (without its dashes) of ``tool``, by the scheme above."""
    common = not positional and (option in COMMON_OPTIONS or option.startswith(COMMON_PREFIXES))
    parts = [PREFIX] if common else [PREFIX, tool]
    return "_".join([*parts, option]).replace("-", "_").upper()


def parse_bool(text: str) -> bool:
    """1/true/yes/on or 0/false/no/off, any case; ValueError otherwise."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("use true or false")


Number = TypeVar("Number", int, float)


def bounded(
    convert: Callable[[str], Number],
    low: Number,
    high: Number | None = None,
    *,
    what: str,
    unit: str = "",
    low_exclusive: bool = False,
    hint: str = "",
) -> Callable[[str], Number]:
    """An argparse ``type``: the text as ``convert`` reads it, from ``low`` to ``high`` (no upper
    bound when None; more than ``low`` when ``low_exclusive``), or one line saying what is wrong.

    ``what`` names the kind of value ("a port number"), ``unit`` follows each number (" s"),
    ``hint`` follows the range ("(0 picks a free one)"). NaN is outside every range."""

    def parse(text: str) -> Number:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        above = value > low if low_exclusive else value >= low
        if above and (high is None or value <= high):
            return value
        if high is None:
            reason = f"at least {low:g}{unit}"
        elif low_exclusive:
            reason = f"more than {low:g} and at most {high:g}{unit}"
        else:
            reason = f"outside {low:g}..{high:g}{unit}"
        raise argparse.ArgumentTypeError(" ".join(filter(None, [f"{text}{unit}:", reason, hint])))

    parse.__name__ = what  # argparse names the type by it in its own messages
    return parse


def env_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``$name``, else the first of its old names (``RENAMED``) that is set; None when none is.

    An empty or blank variable is unset; blanks around a value are dropped. Using an old name
    is remembered for ``log_deprecated_names``."""
    env = os.environ if environ is None else environ
    found: str | None = None
    for candidate in (name, *RENAMED.get(name, ())):
        value = (env.get(candidate) or "").strip()
        if not value:
            continue
        if candidate != name:
            _deprecated.setdefault(candidate, (name, found is not None))
        if found is None:
            found = value
    if _started:
        log_deprecated_names()  # read after start-up: warn now rather than never
    return found


def log_deprecated_names() -> None:
    """Log each old variable name this process used, once, at WARNING, naming the new one.

    A tool calls it right after it configured logging; later uses are logged as they happen."""
    global _started
    _started = True
    for old, (new, ignored) in list(_deprecated.items()):
        if old in _logged:
            continue
        _logged.add(old)
        from .logs import get_logger  # only when there is something to say

        log = get_logger("aurora.options")
        if ignored:
            log.warning("deprecated_variable_ignored", variable=old, use=new, reason=f"{new} is set")
        else:
            log.warning("deprecated_variable", variable=old, use=new)


def _shown(name: str, value: str) -> str:
    if _SECRET.search(name):
        return "(value not shown)"
    return repr(_URL_PASSWORD.sub(r"\1***@", value))


class _Option:
    __slots__ = ("action", "default", "variable")

    def __init__(self, action: argparse.Action, variable: str, default: Any) -> None:
        self.action = action
        self.variable = variable
        self.default = default


def _appends(action: argparse.Action) -> bool:
    return isinstance(action, (argparse._AppendAction, argparse._ExtendAction))


class ToolParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose every option also reads its environment variable.

    ``tool`` names the tool in its variables (``AURORA_<TOOL>_<OPTION>``). Options are added with
    the usual ``add_argument``; ``--help`` shows each one's variable in brackets."""

    def __init__(self, *args: Any, tool: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tool = tool
        self._options: dict[int, _Option] = {}

    # ---------------------------------------------------------------- wiring

    def _eligible(self, action: argparse.Action) -> bool:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return False
        if action.default is argparse.SUPPRESS:  # --version-like actions
            return False
        if not action.option_strings:  # a positional: only an optional one
            return action.nargs in ("?", "*")
        return True

    def _name(self, action: argparse.Action) -> str:
        longs = [s for s in action.option_strings if s.startswith("--")]
        return longs[0][2:] if longs else action.dest.replace("_", "-")

    def _wire(self) -> None:
        """Give every option not yet seen its variable, its help text and the unset marker."""
        for action in self._actions:
            if id(action) in self._options or not self._eligible(action):
                continue
            variable = variable_name(self.tool, self._name(action), positional=not action.option_strings)
            default = action.default
            if action.help is not argparse.SUPPRESS:
                text = (action.help or "").replace("%(default)s", str(default).replace("%", "%%"))
                action.help = f"{text} [{variable}]".strip()
            if _appends(action):
                if default is not None:
                    raise ValueError(f"{action.dest}: a repeatable option's default must be None")
            else:
                action.default = _UNSET
            self._options[id(action)] = _Option(action, variable, default)

    def variables(self) -> dict[str, str]:
        """Every option's variable: ``--long-name`` (or a positional's dest) → variable."""
        self._wire()
        return {
            (self._name(o.action) if o.action.option_strings else o.action.dest): o.variable
            for o in self._options.values()
        }

    def format_help(self) -> str:
        """The help, naming each option's variable."""
        self._wire()
        return super().format_help()

    def format_usage(self) -> str:
        """The usage line."""
        self._wire()
        return super().format_usage()

    # ---------------------------------------------------------------- parsing

    def env_error(self, message: str) -> NoReturn:
        """One line on stderr and exit status 2: the environment is not the command line, so no
        usage text."""
        self.exit(2, f"{self.prog}: {message}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's parse, then the environment and the defaults for what the command line
        left out."""
        self._wire()
        ns, extras = super().parse_known_args(args, namespace)
        given = {id(o.action) for o in self._options.values() if not self._missing(ns, o)}
        from_env: dict[int, str] = {}
        for option in self._options.values():
            if id(option.action) in given:
                continue
            # None too when another of its mutually exclusive group is on the command line
            raw = None if self._excluded(option.action, given) else env_value(option.variable)
            if raw is None:
                setattr(ns, option.action.dest, self._default(option))
                continue
            setattr(ns, option.action.dest, self._from_env(option, raw))
            from_env[id(option.action)] = option.variable
        self._check_exclusive(from_env)
        return ns, extras

    def _missing(self, ns: argparse.Namespace, option: _Option) -> bool:
        value = getattr(ns, option.action.dest, _UNSET)
        return value is None if _appends(option.action) else value is _UNSET

    def _groups_of(self, action: argparse.Action) -> Iterator[list[argparse.Action]]:
        for group in self._mutually_exclusive_groups:
            if action in group._group_actions:
                yield group._group_actions

    def _excluded(self, action: argparse.Action, given: set[int]) -> bool:
        return any(id(a) in given for g in self._groups_of(action) for a in g if a is not action)

    def _check_exclusive(self, from_env: dict[int, str]) -> None:
        for group in self._mutually_exclusive_groups:
            names = [from_env[id(a)] for a in group._group_actions if id(a) in from_env]
            if len(names) > 1:
                self.env_error(f"{' and '.join(names)} are set: give only one of them")

    def _default(self, option: _Option) -> Any:
        default = option.default
        if isinstance(default, str) and option.action.type is not None:
            return self._convert(option, default, "default")
        return default

    def _convert(self, option: _Option, text: str, where: str) -> Any:
        action = option.action
        kind = action.type
        value: Any = text
        if kind is not None:
            if not callable(kind):
                raise TypeError(f"{action.dest}: type must be callable")
            try:
                value = kind(text)
            except argparse.ArgumentTypeError as err:
                self._bad(option, text, str(err), where)
            except (TypeError, ValueError) as err:
                self._bad(option, text, _NOT_A.get(kind) or str(err) or "not a valid value", where)
        if action.choices is not None and value not in action.choices:
            self._bad(option, text, f"use one of {', '.join(map(str, action.choices))}", where)
        return value

    def _bad(self, option: _Option, text: str, message: str, where: str) -> NoReturn:
        if where == "default":
            raise ValueError(f"{option.action.dest}: bad default {text!r}: {message}")
        self.env_error(f"{option.variable}={_shown(option.variable, text)}: {message}")

    def _from_env(self, option: _Option, raw: str) -> Any:
        action = option.action
        if isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction)):
            return self._bool(option, raw)
        if isinstance(action, argparse._StoreFalseAction):
            return not self._bool(option, raw)
        if isinstance(action, argparse._StoreConstAction):
            return action.const if self._bool(option, raw) else option.default
        if isinstance(action, argparse._CountAction):
            return self._count(option, raw)
        if _appends(action) or action.nargs in ("*", "+"):
            parts = [p.strip() for p in raw.split(LIST_SEPARATOR) if p.strip()]
            return [self._convert(option, p, "env") for p in parts]
        return self._convert(option, raw, "env")

    def _bool(self, option: _Option, raw: str) -> bool:
        try:
            return parse_bool(raw)
        except ValueError as err:
            self._bad(option, raw, str(err), "env")

    def _count(self, option: _Option, raw: str) -> int:
        if not raw.isdigit():
            self._bad(option, raw, "not a whole number", "env")
        return int(raw)
