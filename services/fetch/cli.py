"""``aurora_fetch PORT QUERY``: read registers once and print them as the original does."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import closing, suppress
from typing import Any, NoReturn

from aurora.errors import AuroraError, IllegalAddress, MissingRegisters, UsageError
from aurora.logs import (
    add_log_format_argument,
    configure_logging,
    configure_logging_on_first_use,
    get_logger,
)
from aurora.mqtt_args import add_mqtt_arguments, defer_unused_imports, is_mqtt_url
from aurora.options import ToolParser, log_deprecated_names
from aurora.ports import DEFAULT_LATENCY_S, open_bus
from aurora.query import Chunk, ProgressLog, QueryResult, describe_addresses, parse_query, read_query
from aurora.render import render_lines, render_yaml
from aurora.urls import redact

# Only what the port needs is imported (issue 15): no structlog until something logs, no paho
# unless the port is mqtt(s)://, no importlib.metadata unless --version.
log = get_logger("aurora.fetch")

EXIT_OK, EXIT_DEVICE, EXIT_USAGE = 0, 1, 2
EXIT_READER_LEFT = 141  # 128 + SIGPIPE: what a shell shows for a tool whose reader left early
PROGRESS_MIN_CHUNKS = 3  # a bar for queries that take a noticeable time


class _Version(argparse.Action):
    """``--version``, reading the version only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **_: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from aurora import __version__

        print(__version__)
        parser.exit()


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it: COLUMNS, then the terminal
    of stdout, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, given the terminal's width: asked for it, argparse imports shutil (and
    with it zlib, bz2, lzma) for each option it adds, whether help is shown or not (issue 15)."""

    def __init__(self, prog: str, *args: Any, **kwargs: Any) -> None:
        if len(args) < 3 and kwargs.get("width") is None:
            kwargs["width"] = _columns() - 2  # argparse's own margin
        super().__init__(prog, *args, **kwargs)


def build_parser() -> ToolParser:
    """The command line; every option also reads the variable its help names (AURORA_FETCH_<OPTION>)."""
    p = ToolParser(  # exits 2 on a usage error, as EXIT_USAGE says
        tool="fetch",
        prog="aurora_fetch",
        formatter_class=_HelpFormatter,
        description="Read registers of a WaterFurnace Aurora heat pump once and print them.",
        epilog=(
            "PORT: /dev/ttyUSB0 (19200 8E1), tcp://host:2000/ (ser2net raw), rfc2217://host:2217/ or "
            "telnet://host:2217/, a YAML dump file, or mqtts://user@broker/homie/aurora-SERIAL/$modbus "
            "(through the bridge; without the topic the broker's only aurora device under --homie-root "
            "is used; over WebSockets wss://user@broker:8884/ with --mqtt-topic). "
            "QUERY: 745, 745-747, 745..747, comma lists, or known (every named register), "
            "valid (every register that should answer), all (the whole address space). "
            "Exit status: 0 success, 1 device or connection error (or the output could not be written), "
            "2 usage error, 141 the reader of the output left early (`| head`)."
        ),
    )
    p.add_argument(
        "port", help="serial device, tcp://, rfc2217://, telnet://, dump file, mqtt(s):// or ws(s)://"
    )
    p.add_argument("query", help="registers to read, e.g. 745-747,813 or valid")
    p.add_argument(
        "-y", "--yaml", action="store_true", help="print raw values as YAML (a dump for bug reports)"
    )
    p.add_argument(
        "--try-individual",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="when a request fails, read its registers one at a time (default: on for known/valid/all)",
    )
    p.add_argument(
        "--ignore-missing-registers",
        action="store_true",
        help="skip registers the unit (or dump) does not have, with a warning, instead of failing",
    )
    p.add_argument("--debug-modbus", action="store_true", help="log every frame sent and received")
    p.add_argument(
        "--timeout",
        type=float,
        default=str(DEFAULT_LATENCY_S),
        metavar="SECONDS",
        help="time allowed beyond the line time of each reply (default %(default)s); through mqtt(s):// "
        "the wait for each reply from the bridge, at least 10 s",
    )
    add_log_format_argument(p)
    p.add_argument("-v", "--version", action=_Version)
    add_mqtt_arguments(p, tool=True)
    return p


class _ProgressBar:
    """A one-line bar on stderr for long queries, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, done: int, total: int, chunk: Chunk) -> None:
        if total < PROGRESS_MIN_CHUNKS:
            return
        width = 30
        filled = width * done // total
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} requests")
        if done == total:
            sys.stderr.write("\r" + " " * (width + 30) + "\r")
        sys.stderr.flush()
        self.shown = True


def fetch(args: argparse.Namespace) -> QueryResult:
    """Open the port, run the query, close the port."""
    query = parse_query(args.query)
    mqtt_settings = None
    if is_mqtt_url(args.port):
        defer_unused_imports()  # what paho imports and this one-shot process never uses
        from aurora.mqtt import MqttSettings  # paho: only this path needs it

        mqtt_settings = MqttSettings.from_url(
            args.port,
            password_file=args.mqtt_password_file,
            ca_file=args.mqtt_ca_file,
            topic=args.mqtt_topic,
            root=args.homie_root,
        )
    progress = _ProgressBar() if sys.stderr.isatty() else ProgressLog()
    with closing(
        open_bus(args.port, latency_s=args.timeout, debug=args.debug_modbus, mqtt=mqtt_settings)
    ) as bus:
        return read_query(
            bus,
            query,
            try_individual=args.try_individual,
            skip_missing=args.ignore_missing_registers,
            progress=progress,
            name_missing=True,
        )


def _warn_failed(result: QueryResult, port: str, *, implicit: bool) -> None:
    """One warning per kind of failure, naming the registers, however many failed.

    ``known``, ``valid`` and ``all`` ask for whatever the unit has: a register it does not have is
    the expected answer there, not something to act on, so only other failures are warned of."""
    by_error: dict[str, list[int]] = {}
    for address, err in result.failed.items():
        if implicit and isinstance(err, IllegalAddress):
            continue
        by_error.setdefault(str(err).split(" (function", 1)[0], []).append(address)
    for error, addresses in by_error.items():
        log.warning(
            "registers_not_read",
            count=len(addresses),
            registers=describe_addresses(addresses).split(" ", 1)[1],
            error=error,
            port=redact(port),
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``aurora_fetch``."""
    args = build_parser().parse_args(argv)
    options = {"debug": args.debug_modbus, "fmt": args.log_format}
    if args.debug_modbus:
        configure_logging(**options)  # it logs every frame anyway
    else:
        configure_logging_on_first_use(**options)
    log_deprecated_names()
    try:
        result = fetch(args)
    except UsageError as err:
        print(f"aurora_fetch: {err}", file=sys.stderr)
        return EXIT_USAGE
    except MissingRegisters as err:
        it = "it" if len(err.addresses) == 1 else "them"
        print(f"aurora_fetch: {err}; --ignore-missing-registers skips {it}", file=sys.stderr)
        return EXIT_DEVICE
    except AuroraError as err:
        print(f"aurora_fetch: {err}", file=sys.stderr)
        return EXIT_DEVICE
    except KeyboardInterrupt:
        return 130
    _warn_failed(result, args.port, implicit=parse_query(args.query).implicit)
    try:
        if args.yaml:
            sys.stdout.write(render_yaml(result.values))  # ends with one newline, as the original's puts
        else:
            print("\n".join(render_lines(result.values)))
    except OSError as err:  # unbuffered output (PYTHONUNBUFFERED, as in the image)
        return _output_failed(err)
    return EXIT_OK


def _output_failed(err: OSError) -> int:
    """The exit status when the output could not be written: quiet 141 when its reader left
    (``| head -1``), else one line naming why (a full disk) and 1; never a traceback."""
    if isinstance(err, BrokenPipeError):
        return EXIT_READER_LEFT
    with suppress(OSError, ValueError):
        print(f"aurora_fetch: cannot write the output: {err.strerror or err}", file=sys.stderr)
    return EXIT_DEVICE


def command() -> NoReturn:
    """The ``aurora_fetch`` command (its console script): :func:`main`, then its output flushed
    and the process ended without the interpreter's teardown.

    Freeing every module and object at exit cost a quarter of a short fetch's own time (~5 ms of
    ~20, issue 15) and does nothing a finished fetch needs: its port is closed and its output
    flushed here. Logging's exit handler (flushing its handlers) runs if anything logged.
    When the reader of the output left early (``aurora_fetch … | head -1``) the command ends
    quietly with status 141, as a shell tool its SIGPIPE ended; any other failure to write the
    output (a full disk) is one line and status 1, never a traceback.
    """
    code = main()
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as err:
        code = _output_failed(err)
    with suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    if "logging" in sys.modules:
        import logging

        logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
