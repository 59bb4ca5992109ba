"""``web_aid_tool`` as a process, and the headless Chromium the browser tests drive.

    with web_tool([broker.url("web")], port=port, env=mqtt_env(broker), log=tmp_path / "web.log") as web:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ui/")

``web_tool`` returns once the tool has logged its ``listening:`` line and fails with the log's tail
if it exits before.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from .broker import Broker
from .processes import running, tail, wait_for

BIN = Path(sys.executable).parent
LISTENING_S = 30.0
CHROMIUM = "/usr/bin/chromium"  # Debian's; never a downloaded browser
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def mqtt_env(broker: Broker) -> dict[str, str]:
    """The web login password, and the MQTT user ``web``'s password and the broker's CA, from files."""
    return {
        "AURORA_WEB_PASSWORD_FILE": str(broker.password_file("web-ui")),
        "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file("web")),
        "AURORA_MQTT_CA_FILE": str(broker.ca_file),
    }


@contextlib.contextmanager
def web_tool(
    args: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    log: Path,
    deadline_s: float = LISTENING_S,
    what: str = "web_aid_tool's listening line",
    fd_limit: int | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``web_aid_tool ARGS --port PORT ...`` until it listens on ``port``; stopped and reaped on exit.

    ``args`` is the source (a dump or the broker's URL) followed by any option but ``--port``.
    ``fd_limit`` runs it under ``ulimit -n`` (soft and hard), as a small service manager would.
    """
    argv = [str(BIN / "web_aid_tool"), args[0], "--port", str(port), *args[1:]]
    if fd_limit is not None:
        argv = ["sh", "-c", f'ulimit -n {int(fd_limit)} && exec "$0" "$@"', *argv]
    with running(argv, env=env, log=log) as web:

        def listening() -> bool:
            if web.poll() is not None:
                raise AssertionError(f"web_aid_tool exited:\n{tail(log)}")
            return f"listening: http://127.0.0.1:{port}/" in log.read_text()

        wait_for(listening, deadline_s, what)
        yield web
