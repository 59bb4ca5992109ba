"""``aurora_monitor PORT [-q]``: listen to a bus where someone else talks to the ABC, print what they say.

A passive sniffer (docs/protocol.md#sniffer): it never transmits. PORT is a serial adapter on the bus,
``tcp://``/``rfc2217://`` (ser2net next to the unit), a recording of the bus's bytes, or ``-`` for
stdin. Requests and replies are paired by ``aurora.sniffer``; registers print by name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

import serial
import structlog
from aurora import __version__, registers, rtu
from aurora.errors import AuroraError, UsageError
from aurora.logs import add_log_format_argument, configure_logging
from aurora.mqtt_args import is_mqtt_url
from aurora.options import ToolParser, log_deprecated_names
from aurora.render import render_line
from aurora.sniffer import SENSOR_REGISTERS, Event, Garbage, Sniffer, Transaction
from aurora.transport import open_stream
from aurora.urls import redact

log = structlog.get_logger("aurora.monitor")

EXIT_OK, EXIT_DEVICE, EXIT_USAGE = 0, 1, 2
FILE_CHUNK = 4096

_KINDS: dict[int, str] = {
    rtu.FunctionCode.READ_HOLDING: "read registers",
    rtu.FunctionCode.READ_RANGES: "read multiple register ranges",
    rtu.FunctionCode.READ_REGISTERS: "read discontiguous registers",
    rtu.FunctionCode.WRITE_SINGLE: "write register",
    rtu.FunctionCode.WRITE_MULTIPLE: "write multiple registers",
    rtu.FunctionCode.WRITE_REGISTERS: "write discontiguous registers",
    rtu.FunctionCode.UNKNOWN_68: "no idea",
}


def build_parser() -> ToolParser:
    """The command line of the original (docs/protocol.md#sniffer), plus --json, --record and recordings as
    PORT."""
    p = ToolParser(
        tool="monitor",
        prog="aurora_monitor",
        description="Listen to a ModBus bus where an AID tool or an AWL talks to the heat pump, and print "
        "the registers they read and write, by name. It never transmits.",
        epilog="PORT: /dev/ttyUSB0 (19200 8E1), tcp://host:2000/, rfc2217://host:2217/, telnet://host:2217/, "
        "a file of recorded bus bytes (see --record), or - for stdin. "
        "Exit status: 0 at the end of a recording or on Ctrl-C, 1 when the port fails, 2 usage error.",
    )
    p.add_argument("port", help="serial device, tcp://, rfc2217://, telnet://, a recording, or -")
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="same as --diff-only --ignore-awl-heartbeat --ignore-sensors",
    )
    p.add_argument("--diff-only", action="store_true", help="print only registers whose value changed")
    p.add_argument(
        "--ignore-awl-heartbeat",
        action="store_true",
        help="hide the AWL's FC 16 keep-alive write to 460-462",
    )
    p.add_argument(
        "--ignore-sensors",
        action="store_true",
        help="leave out temperatures, pressures, currents and power that change on every poll",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per transaction instead of text")
    p.add_argument(
        "--record",
        metavar="FILE",
        type=Path,
        help="also append every byte heard to FILE (replay it later as PORT)",
    )
    p.add_argument(
        "--reply-timeout",
        type=float,
        default="1.0",
        metavar="SECONDS",
        help="a request with no reply after this long is reported unanswered (default %(default)s)",
    )
    p.add_argument("--debug-modbus", action="store_true", help="also show bytes that belong to no frame")
    add_log_format_argument(p)
    p.add_argument("-v", "--version", action="version", version=__version__)
    return p


# ---------------------------------------------------------------- printing


def _stamp(at_wall: float) -> str:
    """Ruby's Time#to_s, as the original prints it: ``2026-11-23 22:05:01 +0000``."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(at_wall))


def _ranges_text(request: rtu.Request) -> str:
    return ",".join(str(a) if n == 1 else f"{a}-{a + n - 1}" for a, n in request.ranges)


class Printer:
    """Turns sniffer events into the original's text (or JSON lines), applying the -q filters."""

    def __init__(
        self,
        out: IO[str],
        *,
        diff_only: bool,
        ignore_heartbeat: bool,
        ignore_sensors: bool,
        as_json: bool = False,
        show_garbage: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.out = out
        self.diff_only = diff_only
        self.ignore_heartbeat = ignore_heartbeat
        self.ignore_sensors = ignore_sensors
        self.as_json = as_json
        self.show_garbage = show_garbage
        self.clock = clock
        self.seen: dict[int, int] = {}  # last raw value of every register heard (for --diff-only)

    def event(self, event: Event) -> None:
        """Print one event (or nothing, when a filter hides it)."""
        lines = self._garbage(event) if isinstance(event, Garbage) else self._transaction(event)
        if lines:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()

    def _garbage(self, junk: Garbage) -> list[str]:
        if not self.show_garbage:
            return []
        if self.as_json:
            return [json.dumps({"time": self._iso(), "outcome": "garbage", "bytes": junk.data.hex(" ")})]
        return [f"{_stamp(self.clock())} ***** skipped {len(junk.data)} bytes: {junk.data.hex(' ')}"]

    def _transaction(self, t: Transaction) -> list[str]:
        if t.outcome == "reply" and self.ignore_heartbeat and t.is_awl_heartbeat:
            return []
        words = dict(t.words)
        if t.is_read and self.ignore_sensors:
            words = {a: v for a, v in words.items() if a not in SENSOR_REGISTERS}
        if self.as_json:
            return self._json(t, words)
        stamp = _stamp(self.clock())
        kind = _KINDS.get(t.function, f"function {t.function}")
        if t.outcome == "reply" and t.is_read:
            return self._read(stamp, kind, t.slave, words)
        if t.outcome == "reply" and t.function == rtu.FunctionCode.UNKNOWN_68:
            if self.diff_only:
                return []
            raw = t.request.raw.hex(" ") if t.request else ""
            answer = t.reply.raw.hex(" ") if t.reply else ""
            return [f"{stamp} ===== no idea to {t.slave}: {raw} -> {answer}"]
        if t.outcome == "reply":  # a write the board confirmed
            self.seen.update(words)
            return [f"{stamp} ===== {kind} to {t.slave}:", *self._lines(words, words)]
        if t.outcome == "exception":
            what = _ranges_text(t.request) if t.request and t.request.ranges else ""
            regs = what or ",".join(str(a) for a, _ in (t.request.writes if t.request else ()))
            return [f"{stamp} ===== {kind} {regs} refused by {t.slave}: {t.error}"]
        if t.outcome == "unanswered":
            assert t.request is not None
            regs = _ranges_text(t.request) or ",".join(str(a) for a, _ in t.request.writes)
            return [f"{stamp} ===== no reply from {t.slave} to {kind} {regs}"]
        # orphan: a reply or exception whose request went by before we listened
        detail = str(t.error) if t.error else f"{len(t.reply.values) if t.reply else 0} values"
        return [f"{stamp} ===== reply from {t.slave} to a request not heard ({kind}): {detail}"]

    def _read(self, stamp: str, kind: str, slave: int, words: dict[int, int]) -> list[str]:
        if not self.diff_only:
            self.seen.update(words)
            return [f"{stamp} ===== {kind} from {slave}", *self._lines(words, self.seen)]
        changed = {a: v for a, v in words.items() if self.seen.get(a) != v}
        self.seen.update(words)
        if not changed:
            return []
        return [f"{stamp} ===== read", *self._lines(changed, self.seen)]

    def _lines(self, addresses: dict[int, int], context: dict[int, int]) -> list[str]:
        """The lines for ``addresses``, decoded against ``context`` (all words heard so far).

        A changed continuation word prints its owner, so a 32-bit value whose low word changed
        shows (the original crashed on it, docs/protocol.md#bugs-decoding).
        """
        lines: list[str] = []
        printed: set[int] = set()
        for address in addresses:
            owner = _owner(address)
            if owner in printed:
                continue
            printed.add(owner)
            line = render_line(owner, context)
            if line is not None:
                lines.append(line)
        return lines

    def _json(self, t: Transaction, words: dict[int, int]) -> list[str]:
        if t.outcome == "reply" and t.is_read and self.diff_only:
            words = {a: v for a, v in words.items() if self.seen.get(a) != v}
            if not words:
                self.seen.update(dict(t.words))
                return []
        if t.outcome == "reply":
            self.seen.update(words)
        record: dict[str, object] = {
            "time": self._iso(),
            "outcome": t.outcome,
            "slave": t.slave,
            "function": t.function,
        }
        if t.request is not None and t.request.ranges:
            record["ranges"] = [list(r) for r in t.request.ranges]
        if words:
            record["registers"] = {
                str(a): {
                    "raw": v,
                    "name": registers.name_of(_owner(a)),
                    "line": render_line(_owner(a), self.seen),
                }
                for a, v in words.items()
            }
        if t.error is not None:
            record["error"] = str(t.error)
        return [json.dumps(record, ensure_ascii=False)]

    def _described(self, address: int, raw: int) -> dict[str, object]:
        owner = _owner(address)
        return {"raw": raw, "name": registers.name_of(owner), "line": render_line(owner, self.seen)}

    def _iso(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.clock()))


def _owner(address: int) -> int:
    register = registers.REGISTERS.get(address)
    if register is not None and register.part_of is not None:
        return int(register.part_of)
    return address


# ---------------------------------------------------------------- the listening loop


class _Stream(Protocol):
    def read(self, size: int = 1) -> bytes: ...


def _chunks_from_file(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(FILE_CHUNK):
        yield chunk


def replay(handle: IO[bytes], sniffer: Sniffer, emit: Callable[[Event], None]) -> None:
    """Feed a recording (no times) to the end; the end settles what is left (no busy loop,
    docs/protocol.md#bugs-server)."""
    for chunk in _chunks_from_file(handle):
        for event in sniffer.feed(chunk):
            emit(event)
    for event in sniffer.finish():
        emit(event)


def listen(
    stream: _Stream,
    sniffer: Sniffer,
    emit: Callable[[Event], None],
    stop: threading.Event,
    record: IO[bytes] | None = None,
) -> None:
    """Read the live line until ``stop``; silence lets an unanswered request expire."""
    try:
        while not stop.is_set():
            data = stream.read(FILE_CHUNK)  # returns after the port's 0.05 s read slice at most
            now = time.monotonic()
            if data and record is not None:
                record.write(data)
                record.flush()
            for event in sniffer.feed(data, now) if data else sniffer.idle(now):
                emit(event)
    finally:
        for event in sniffer.finish(time.monotonic()):
            emit(event)


def _looks_like_dump(path: Path) -> bool:
    """A YAML register dump starts with ``---`` or a ``#`` comment; RTU frames never do."""
    with path.open("rb") as handle:
        head = handle.read(4)
    return head.startswith((b"---", b"#"))


def _is_recording(port: str) -> bool:
    if port == "-":
        return True
    path = Path(port)
    return "://" not in port and path.is_file()


def run(args: argparse.Namespace, stop: threading.Event) -> int:
    """Open PORT and print until it ends or ``stop`` is set."""
    quiet = args.quiet
    printer = Printer(
        sys.stdout,
        diff_only=quiet or args.diff_only,
        ignore_heartbeat=quiet or args.ignore_awl_heartbeat,
        ignore_sensors=quiet or args.ignore_sensors,
        as_json=args.json,
        show_garbage=args.debug_modbus,
    )
    sniffer = Sniffer(reply_timeout_s=args.reply_timeout)
    if is_mqtt_url(args.port):
        raise UsageError(
            "the monitor listens to a line, and a broker (mqtt(s)://, ws(s)://) has none: run it on "
            "the adapter's port (or the ser2net port) the heat pump is on"
        )
    if _is_recording(args.port) and args.port != "-" and _looks_like_dump(Path(args.port)):
        raise UsageError(
            f"{args.port} is a register dump (aurora_fetch --yaml), not a recording of bus bytes "
            "(aurora_monitor --record FILE writes those)"
        )
    if _is_recording(args.port):
        if args.port == "-":
            replay(sys.stdin.buffer, sniffer, printer.event)
        else:
            with open(args.port, "rb") as handle:
                replay(handle, sniffer, printer.event)
        log.info("monitor_done", port=args.port, **sniffer.stats)
        return EXIT_OK
    stream = open_stream(args.port)
    log.info("monitor_listening", port=redact(args.port))
    with contextlib.ExitStack() as stack:
        stack.callback(stream.close)
        record = stack.enter_context(args.record.open("ab")) if args.record else None
        try:
            listen(stream, sniffer, printer.event, stop, record)
        except (serial.SerialException, OSError) as err:
            log.info("monitor_done", port=redact(args.port), **sniffer.stats)
            raise AuroraError(f"{redact(args.port)}: {err}") from err
    log.info("monitor_done", port=redact(args.port), **sniffer.stats)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``aurora_monitor``."""
    args = build_parser().parse_args(argv)
    configure_logging(debug=args.debug_modbus, fmt=args.log_format)
    log_deprecated_names()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        return run(args, stop)
    except UsageError as err:
        print(f"aurora_monitor: {err}", file=sys.stderr)
        return EXIT_USAGE
    except AuroraError as err:
        print(f"aurora_monitor: {err}", file=sys.stderr)
        return EXIT_DEVICE
    except BrokenPipeError:  # `aurora_monitor … | head`
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
