"""``aurora_sim`` as a process, started the way the README starts it, for integration tests.

    with Sim.start(tmp_path, "--tcp", "127.0.0.1:0") as sim:     # or Sim.start(tmp_path) for a pty
        run(["aurora_fetch", sim.url, "745-747"])

``sim.url`` is ``tcp://127.0.0.1:PORT/`` or the pty's path; ``sim.log`` holds its stderr.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
_READY = re.compile(r"^(?:pty: (?P<pty>\S+)|listening: (?P<tcp>tcp://\S+))$")


@dataclass
class Sim:
    """A running simulated heat pump."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        """What the sim logged so far (for assertion messages)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """Terminate and reap it (idempotent)."""
        _reap(self.process)

    @classmethod
    @contextlib.contextmanager
    def start(cls, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Sim]:
        """Start ``aurora_sim ARGS`` (no transport argument: a pty linked at tmp_path/ttyHP)."""
        argv = [str(BIN / "aurora_sim"), *args]
        if not any(a in ("--tcp", "--pty", "--serial") for a in args):
            argv += ["--pty", str(tmp_path / "ttyHP")]
        log = tmp_path / f"sim-{os.getpid()}-{len(list(tmp_path.glob('sim-*.log')))}.log"
        with log.open("w") as err:
            process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, **(env or {})}
            )
        try:
            assert process.stdout is not None
            # The sim prints where it serves once it is ready; a crash closes stdout instead.
            for line in process.stdout:
                m = _READY.match(line.strip())
                if m:
                    url = m.group("tcp") or m.group("pty")
                    break
            else:
                raise RuntimeError(f"aurora_sim exited without serving:\n{log.read_text()}")
            yield cls(process, url, log)
        finally:
            _reap(process)


def _reap(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def write_log(path: Path) -> list[tuple[int, int]]:
    """The (address, value) pairs of ``aurora_sim --write-log PATH`` so far, in order."""
    if not path.exists():
        return []
    return [(int(a), int(v)) for a, v in (line.split() for line in path.read_text().splitlines())]
