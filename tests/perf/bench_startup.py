"""`make bench` scenario: ``aurora_fetch`` as a user runs it, process start to exit (issue 15).

For each path (the sim's pty, its TCP port, ser2net's RFC 2217 port, the broker through the
bridge) a whole ``aurora_fetch URL 745-747`` process is timed, beside the bare interpreter's
start (``python -c pass`` from the same venv) and the line minimum of the same query, all in
this run. Goal: p50 ≤ bare start + line minimum + 25 ms (RFC 2217: + 60 ms more, its open
included). And the import of ``aurora.fetch.cli`` (``-X importtime``) under 25 ms.

Byte code is compiled once before measuring (a warm-up run with writing allowed), as an
installed package has it; the first, discarded run of each path pays that.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aurora.logs import configure_logging

from tests.perf.bench_fetch import RECONNECT_GAP_S, measure, path_to_sim

BIN = Path(sys.executable).parent
QUERY = "745-747"
PATHS = ("pty", "tcp", "ser2net-rfc2217", "broker")
BUDGET_MS = 25.0
RFC2217_EXTRA_MS = 60.0
IMPORT_BUDGET_MS = 25.0


def _env() -> dict[str, str]:
    """This environment (the broker path sets MQTT_*), byte code written as a user's install has it."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _p(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p99_ms": round(_p(values, 0.99) * 1000, 1),
        "runs": len(values),
    }


def _timed(argv: list[str], repeats: int, gap_s: float = 0.0) -> tuple[list[float], list[float]]:
    """Wall times of ``argv`` and of a bare interpreter, run in turns: on a shared machine the load
    drifts, and both then see the same."""
    bare = [sys.executable, "-c", "pass"]
    for command in (bare, argv):  # warm-up: byte code, caches
        subprocess.run(command, env=_env(), capture_output=True, timeout=120)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        time.sleep(gap_s)  # ser2net closes the device some ms after a client leaves (bench_fetch)
        for command, out in ((argv, times[0]), (bare, times[1])):
            t0 = time.perf_counter()
            done = subprocess.run(command, env=_env(), capture_output=True, timeout=120)
            out.append(time.perf_counter() - t0)
            if done.returncode != 0:
                raise RuntimeError(f"{command[:3]} failed: {done.stderr.decode(errors='replace')[-300:]}")
    return times


def import_ms(repeats: int) -> dict[str, object]:
    """``-X importtime`` of the fetch CLI: cumulative microseconds of its top-level line."""
    argv = [sys.executable, "-X", "importtime", "-c", "import aurora.fetch.cli"]
    subprocess.run(argv, env=_env(), capture_output=True, timeout=60)
    values = []
    for _ in range(repeats):
        done = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=60)
        found = re.search(r"\|\s*(\d+) \| aurora\.fetch\.cli\s*$", done.stderr, re.M)
        assert found, done.stderr[-500:]
        values.append(int(found.group(1)) / 1000)
    return {"median_ms": round(statistics.median(values), 1), "min_ms": round(min(values), 1)}


def run(repeats: int = 21) -> dict[str, object]:
    """Import time, and every path's process time beside the bare start, with goal and verdict."""
    out: dict[str, object] = {"import_fetch_cli": import_ms(repeats)}
    direct_minimum_ms = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for kind in PATHS:
            sub = Path(tmp) / kind
            sub.mkdir()
            sub.chmod(0o711)
            with path_to_sim(kind, sub) as url:
                # The line minimum of the query; through the broker, the bridge's bytes are those of
                # the direct path (the same plan), as in bench_fetch.
                minimum_ms = float(measure(url, QUERY, 3)["minimum_s"]) * 1000
                if kind == "broker":
                    minimum_ms = direct_minimum_ms
                else:
                    direct_minimum_ms = minimum_ms
                gap = RECONNECT_GAP_S if kind.startswith("ser2net") else 0.0
                times, bare = _timed([str(BIN / "aurora_fetch"), url, QUERY], repeats, gap)
            row: dict[str, object] = _ms(times)
            bare_ms = statistics.median(bare) * 1000
            extra = RFC2217_EXTRA_MS if kind == "ser2net-rfc2217" else 0.0
            goal = bare_ms + minimum_ms + BUDGET_MS + extra
            row.update(
                bare_interpreter_p50_ms=round(bare_ms, 1),
                line_minimum_ms=round(minimum_ms, 1),
                goal_ms=round(goal, 1),
                over_bare_and_line_ms=round(statistics.median(times) * 1000 - bare_ms - minimum_ms, 1),
                met=statistics.median(times) * 1000 <= goal,
            )
            out[kind] = row
    out["goals"] = {
        "import_budget_ms": IMPORT_BUDGET_MS,
        "process_budget_ms": BUDGET_MS,
        "rfc2217_extra_ms": RFC2217_EXTRA_MS,
    }
    return out


if __name__ == "__main__":
    configure_logging(stream=sys.stderr)  # stdout carries only the JSON
    print(json.dumps(run(), indent=2))
