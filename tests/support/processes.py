"""Ports, deadlines and child processes for integration tests.

Every wait has a deadline and polls; nothing sleeps a fixed time hoping something happened.
``running`` records each process's log so that ``tests/conftest.py`` can show it when a test
fails (``logs_for_report``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

HOST = "127.0.0.1"
POLL_S = 0.02  # between two looks at something that has no event to wait on
TERMINATE_S = 5.0  # SIGTERM grace before SIGKILL

# Logs of processes still running, and of those that ended during the current test.
_running_logs: dict[int, tuple[str, Path]] = {}
_ended_logs: list[tuple[str, Path]] = []


def bare_env(path: Path | str, **variables: str) -> dict[str, str]:
    """A near-empty environment for a tool run as by a user who set nothing: ``PATH`` and
    ``variables``, plus where this test run keeps bytecode (tests/conftest.py: outside the checkout)."""
    prefix = {k: os.environ[k] for k in ("PYTHONPYCACHEPREFIX",) if k in os.environ}
    return {"PATH": str(path), **prefix, **variables}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T], deadline_s: float, what: str, every_s: float = POLL_S) -> T:
    """Poll ``predicate`` every ``every_s`` until it returns something truthy, and return that.

    Raises ``TimeoutError`` naming ``what`` when ``deadline_s`` seconds pass first. A predicate
    that starts a process or a TLS session each time wants a longer ``every_s``: at the default,
    waiting would keep a core busy.
    """
    end = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise TimeoutError(f"no {what} within {deadline_s:g} s")
        time.sleep(every_s)


def wait_for_port(host: str, port: int, deadline_s: float) -> None:
    """Wait until something accepts TCP connections on ``host:port``."""

    def accepts() -> bool:
        try:
            with socket.create_connection((host, port), timeout=POLL_S * 10):
                return True
        except OSError:
            return False

    wait_for(accepts, deadline_s, f"listener on {host}:{port}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL after ``TERMINATE_S``, and reap the process."""
    if process.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, TERMINATE_S), (signal.SIGKILL, TERMINATE_S)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)  # our own child's group: start_new_session below
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` with stdout and stderr to ``log``; stop and reap it on exit.

    ``env`` is added to the current environment. The process gets its own session, so its
    children are stopped with it. The log is shown in the report of a failing test.
    """
    if log is None:
        fd, name = tempfile.mkstemp(prefix=f"{Path(argv[0]).name}-", suffix=".log")
        os.close(fd)
        log = Path(name)
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv),
            env=full_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    label = " ".join(str(a) for a in argv[:3])
    _running_logs[process.pid] = (label, log)
    try:
        yield process
    finally:
        try:
            _stop(process)
        finally:
            _ended_logs.append(_running_logs.pop(process.pid))


def exited_early(process: subprocess.Popen[bytes], log: Path) -> str | None:
    """A message with the log's tail if ``process`` has ended, else None."""
    if process.poll() is None:
        return None
    return f"{process.args!r} exited with {process.returncode}:\n{tail(log)}"


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def start_of_test() -> None:
    """Forget the logs of processes that ended in earlier tests (called by conftest)."""
    _ended_logs.clear()


def logs_for_report(lines: int = 200) -> list[tuple[str, str]]:
    """(title, tail) of each log worth showing for the current test."""
    entries = [*_running_logs.values(), *_ended_logs]
    return [(f"log of {label} ({path})", tail(path, lines)) for label, path in entries]
