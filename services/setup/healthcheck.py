"""Container healthchecks that need nothing but the standard library and /proc.

    python -m aurora.setup.healthcheck listening 2000     the simulator accepts connections
    python -m aurora.setup.healthcheck connected 8883     the bridge holds a connection to the broker
                                                          and, by its status file, reads the unit
    python -m aurora.setup.healthcheck http http://127.0.0.1:4567/   the web tool answers HTTP

``listening`` and ``connected`` read the kernel's socket tables instead of connecting, so they
never take the simulator's only client slot or wake a service. ``connected`` also reads the
bridge's status file (``$AURORA_BRIDGE_STATUS_FILE``, by default ``/tmp/aurora-bridge.status``) when
there is one: a bridge whose line is down or whose unit does not answer is unhealthy too, although
its broker connection is fine. Exit status 0 means healthy.
"""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from aurora import status

LISTEN = 0x0A
ESTABLISHED = 0x01
TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
HTTP_TIMEOUT_S = 5.0


class Socket(NamedTuple):
    local_port: int
    remote_port: int
    state: int


def parse_table(text: str) -> list[Socket]:
    """The TCP sockets of one /proc/net/tcp or tcp6 table (addresses as ``HEXADDR:HEXPORT``)."""
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        local_port, remote_port = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
        sockets.append(Socket(local_port, remote_port, int(fields[3], 16)))
    return sockets


def read_tables(tables: Iterable[Path] = TABLES) -> list[Socket]:
    sockets: list[Socket] = []
    for table in tables:
        try:
            sockets += parse_table(table.read_text())
        except FileNotFoundError:
            continue  # no IPv6 in this container
    return sockets


def is_listening(sockets: Iterable[Socket], port: int) -> bool:
    return any(s.state == LISTEN and s.local_port == port for s in sockets)


def is_connected_to(sockets: Iterable[Socket], port: int) -> bool:
    return any(s.state == ESTABLISHED and s.remote_port == port for s in sockets)


def http_answers(url: str, timeout_s: float = HTTP_TIMEOUT_S) -> str | None:
    """None if ``url`` answers with any status below 500 (a login page counts), else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            status = int(reply.status)
    except urllib.error.HTTPError as err:
        status = err.code
    except (urllib.error.URLError, OSError) as err:
        return f"no answer from {url}: {err}"
    return None if status < 500 else f"{url} answered {status}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aurora.setup.healthcheck", description=__doc__)
    parser.add_argument("check", choices=("listening", "connected", "http"))
    parser.add_argument("target", help="a port number, or a URL for http")
    args = parser.parse_args(argv)
    if args.check == "http":
        problem = http_answers(args.target)
    else:
        port = int(args.target)
        if args.check == "listening":
            ok = is_listening(read_tables(), port)
            problem = None if ok else f"nothing listens on port {port}"
        else:
            ok = is_connected_to(read_tables(), port)
            problem = None if ok else f"no connection to port {port}"
            doc = status.read_status(status.default_path())
            if problem is None and doc is not None:
                problem = status.problem(doc)
    if problem:
        print(problem)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
