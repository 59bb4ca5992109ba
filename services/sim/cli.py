"""``aurora_sim``: a simulated heat pump on a pty or a TCP port; ``aurora_mock``: the original's form."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import serial
import structlog
from aurora.dump import load_dump
from aurora.errors import AuroraError, UsageError
from aurora.logs import add_log_format_argument, configure_logging
from aurora.options import ToolParser, bounded, log_deprecated_names
from aurora.simulator import BoardQuirks, Drift, PowerProfile, PowerStep, SimulatedAbc, parse_power_step

from .line import (
    LineFaults,
    ModbusTcpLine,
    PtyLine,
    Responder,
    SerialLine,
    TapPty,
    TcpLine,
    Timing,
)

log = structlog.get_logger("aurora.sim")

DRIFT_STEP_S = 1.0
WRITE_LOG_STEP_S = 0.1


_fraction = bounded(float, 0.0, 1.0, what="a fraction (0 to 1)")


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT") from None


def _power_step(text: str) -> PowerStep:
    try:
        return parse_power_step(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> ToolParser:
    """The ``aurora_sim`` command line; every option also reads AURORA_SIM_<OPTION>."""
    p = ToolParser(
        tool="sim",
        prog="aurora_sim",
        description="Serve a WaterFurnace ABC register dump as a ModBus RTU slave at real line speed. "
        "Without DUMP it serves a built-in demo unit (7 Series, VS drive, AXB, IntelliZone 2, DHW) "
        "whose temperatures and power drift over time.",
    )
    p.add_argument(
        "dump",
        nargs="?",
        default=None,
        help="YAML register dump (aurora_fetch --yaml)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--pty",
        metavar="LINK",
        nargs="?",
        const="",
        default=None,
        help="serve on a pseudo-terminal; LINK becomes a symlink to it (default)",
    )
    where.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        type=_host_port,
        default=None,
        help="serve raw RTU on a TCP port, like ser2net (port 0: pick one)",
    )
    where.add_argument(
        "--serial",
        metavar="PORT",
        default=None,
        help="serve as a slave on a real serial port (19200 8E1)",
    )
    p.add_argument(
        "--baud",
        type=int,
        default="19200",
        help="line speed for pacing, 8E1; 0 turns pacing off (default 19200)",
    )
    p.add_argument(
        "--turnaround-ms",
        type=float,
        default="2",
        help="board's pause before replying (default 2)",
    )
    p.add_argument(
        "--delay-ms",
        type=float,
        default="0",
        help="extra delay before every reply",
    )
    p.add_argument(
        "--refuse-wf-codes",
        action="store_true",
        default=False,
        help="answer 65/66 with IllegalFunction, like commercial 17X553 boards",
    )
    p.add_argument(
        "--silent-wf-codes",
        action="store_true",
        default=False,
        help="never answer 65/66",
    )
    p.add_argument("--drop", type=_fraction, default="0", help="fraction of replies dropped")
    p.add_argument(
        "--corrupt",
        type=_fraction,
        default="0",
        help="fraction of replies with a flipped bit",
    )
    p.add_argument(
        "--partial",
        type=_fraction,
        default="0",
        help="fraction of replies cut in half",
    )
    p.add_argument(
        "--stray",
        type=_fraction,
        default="0",
        help="fraction of replies preceded by stray bytes",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed for the faults")
    p.add_argument(
        "--drift",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="let temperatures and power drift (default: on for the demo unit, off for a dump)",
    )
    p.add_argument(
        "--power",
        metavar="[AFTER_S@]NAME=VALUE,...",
        type=_power_step,
        action="append",
        default=None,
        help="hold the energy monitor's readings at known values instead of letting them drift, so "
        "the energy they add up to is known exactly: NAME is compressor, blower, aux or pump (W) or "
        "extraction or rejection (heat of extraction/rejection, BTU/h); the total power (1152) is "
        "compressor + blower + aux + pump. Repeat it with AFTER_S@ to change readings AFTER_S seconds "
        "after the start, e.g. --power compressor=3000,blower=200 --power 60@compressor=6000; "
        "readings not named keep their value (in the variable, separate entries with ';')",
    )
    p.add_argument(
        "--modbus-tcp",
        metavar="HOST:PORT",
        type=_host_port,
        default=None,
        help="also serve standard ModBus/TCP (unit 255) for the standard function codes",
    )
    p.add_argument(
        "--tap-pty",
        metavar="LINK",
        default=None,
        help="repeat every byte on the line, both directions, to a second pty linked at LINK: a bus "
        "aurora_monitor can listen to",
    )
    p.add_argument(
        "--write-log",
        metavar="FILE",
        default=None,
        help="append every register write as an 'ADDRESS VALUE' line, within 0.1 s (for tests)",
    )
    p.add_argument("--debug", action="store_true", help="log every frame")
    add_log_format_argument(p)
    return p


def demo_registers() -> dict[int, int]:
    """The built-in demo unit."""
    ref = resources.files("aurora.sim").joinpath("demo.yml")
    with resources.as_file(ref) as path:
        return load_dump(Path(path))


def run(args: argparse.Namespace, stop: threading.Event) -> int:
    """Serve until ``stop`` is set (SIGTERM/SIGINT)."""
    registers = load_dump(Path(args.dump)) if args.dump else demo_registers()
    quirks = BoardQuirks(refuse_wf_codes=args.refuse_wf_codes, silent_wf_codes=args.silent_wf_codes)
    abc = SimulatedAbc(registers, quirks=quirks)
    faults = LineFaults(args.drop, args.corrupt, args.partial, args.stray, args.delay_ms / 1000, args.seed)
    tap = TapPty(Path(args.tap_pty)) if args.tap_pty else None
    if tap is not None:
        print(f"tap: {tap.link}", flush=True)
    responder = Responder(
        abc, Timing.for_baud(args.baud, args.turnaround_ms / 1000), faults, tap=tap.copy if tap else None
    )

    threads: list[threading.Thread] = []
    closers = []
    if args.modbus_tcp:
        mb_host, mb_port = args.modbus_tcp
        mb = ModbusTcpLine(mb_host, mb_port, abc)
        print(f"modbus-tcp: {mb.address[0]}:{mb.address[1]}", flush=True)
        threads.append(threading.Thread(target=mb.serve, args=(stop,), daemon=True))
        closers.append(mb.close)
    if args.tcp:
        tcp = TcpLine(*args.tcp)
        host, port = tcp.address
        line: TcpLine | PtyLine | SerialLine = tcp
        print(f"listening: tcp://{host}:{port}/", flush=True)
    elif args.serial:
        from aurora.transport import SERIAL_SETTINGS

        try:
            port_obj = serial.serial_for_url(args.serial, timeout=0.05, **SERIAL_SETTINGS)
        except (serial.SerialException, OSError) as err:
            raise UsageError(f"cannot open {args.serial}: {err}") from err
        line = SerialLine(port_obj)
        print(f"serving on: {args.serial}", flush=True)
    else:
        link = Path(args.pty) if args.pty else None
        line = PtyLine(link)
        print(f"pty: {link or line.path}", flush=True)
    closers.append(line.close)
    if tap is not None:
        closers.append(tap.close)
    threads.append(threading.Thread(target=line.serve, args=(responder, stop), daemon=True))
    drift = args.drift if args.drift is not None else not args.dump
    steps = args.power or []
    profile = PowerProfile(abc, steps) if steps else None
    if profile is not None:
        profile.step(0.0)  # held from the very first read
    log.info(
        "sim_ready",
        unit="demo" if not args.dump else args.dump,
        registers=len(registers),
        drift=drift,
        baud=args.baud,
    )
    for t in threads:
        t.start()
    started = time.monotonic()
    mover = Drift(abc, power=profile is None) if drift else None
    logged = 0
    tick = WRITE_LOG_STEP_S if args.write_log or (profile and len(profile.steps) > 1) else DRIFT_STEP_S
    try:
        while not stop.wait(tick):
            if mover:
                mover.step(time.monotonic() - started)
            if profile is not None and (changed := profile.step(time.monotonic() - started)):
                log.info("power_changed", after_s=changed.after_s, readings=dict(changed.readings))
            if args.write_log and len(abc.writes) > logged:
                new = abc.writes[logged:]
                logged += len(new)
                with open(args.write_log, "a", encoding="utf-8") as out:
                    out.writelines(f"{address} {value}\n" for address, value in new)
    finally:
        for close in closers:
            close()
    if any(faults.counts.values()):
        log.info("sim_faults", **faults.counts)
    return 0


def _serve(args: argparse.Namespace) -> int:
    configure_logging(debug=args.debug, fmt=args.log_format)
    log_deprecated_names()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        return run(args, stop)
    except AuroraError as err:
        log.error("sim_failed", error=str(err))
        return 1
    except OSError as err:
        log.error("sim_failed", error=str(err))
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``aurora_sim``."""
    return _serve(build_parser().parse_args(argv))


def mock_main(argv: Sequence[str] | None = None) -> int:
    """``aurora_mock PORT MODBUS_TCP_PORT REGISTERS.yml``: the original's three arguments.

    PORT is a serial device (served as a slave), ``tcp://host:port`` (listened on) or ``pty`` /
    ``pty:LINK``; MODBUS_TCP_PORT serves standard ModBus/TCP on 127.0.0.1.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = (
        "Usage: aurora_mock <serial-port | tcp://host:port | pty[:LINK]> <modbus-tcp-port> <registers.yml>"
    )
    if len(argv) != 3 or argv[0] in ("-h", "--help"):
        print(usage, file=sys.stderr if len(argv) != 3 else sys.stdout)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    port, tcp_port, dump = argv
    sim_argv = [dump, "--no-drift"]
    if port.startswith("tcp://"):
        sim_argv += ["--tcp", port.removeprefix("tcp://").rstrip("/")]
    elif port == "pty" or port.startswith("pty:"):
        sim_argv += ["--pty", port[4:]] if port.startswith("pty:") else ["--pty"]
    else:
        sim_argv += ["--serial", port]
    if tcp_port not in ("", "0", "-"):
        sim_argv += ["--modbus-tcp", f"127.0.0.1:{tcp_port}"]
    return main(sim_argv)


if __name__ == "__main__":
    raise SystemExit(main())
