"""Debian's real ser2net in front of a pty, on free ports: raw TCP and RFC 2217 (docs/protocol.md#ser2net).

    with Ser2net.start(tmp_path, device=sim_pty) as s2n:
        run(["aurora_fetch", s2n.raw_url, "745"]); run(["aurora_fetch", s2n.rfc2217_url, "745"])

Pitfalls this helper handles (docs/protocol.md#ser2net): a define is used as ``*(dev)`` inside a string; no
``banner`` (it would be injected into the ModBus stream); ``-u`` so no UUCP lock files; ``-n -d`` so
it stays in the foreground and logs to stdout (kept in ``ser2net.log`` for a failing test).
Only one of the two connections should be used at a time: each opens the device on its own and
the device's output would be split between them (pitfall 8).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import free_port, running, wait_for_port

SER2NET = shutil.which("ser2net") or "/usr/sbin/ser2net"
HOST = "127.0.0.1"


def ser2net_config(
    device: Path | str,
    *,
    raw_port: int,
    rfc2217_port: int,
    kickolduser: bool = True,
    chardelay: bool = False,
    host: str = HOST,
) -> str:
    """The YAML ser2net 4 reads: ``device`` at 19200 8E1 as raw TCP and as telnet(rfc2217).

    ``kickolduser`` False makes a second client receive ser2net's in-band ``Port already in use``;
    ``chardelay`` False (as docs/network-serial.md configures it) forwards device bytes at once;
    True leaves ser2net's own default, which holds them ~2 characters (docs/protocol.md#ser2net).
    """
    options = [f"      kickolduser: {'true' if kickolduser else 'false'}", "      max-connections: 1"]
    if not chardelay:
        options.append("      chardelay: false")
    opts = "\n".join(options)
    return (
        "%YAML 1.1\n---\n"
        f"define: &dev {device}\n\n"
        "connection: &aurora_raw\n"
        f"    accepter: tcp,{host},{raw_port}\n"
        "    enable: on\n"
        f"    options:\n{opts}\n"
        "    connector: serialdev,*(dev),19200e81,local\n\n"
        "connection: &aurora_rfc2217\n"
        f"    accepter: telnet(rfc2217),tcp,{host},{rfc2217_port}\n"
        "    enable: on\n"
        f"    options:\n{opts}\n"
        "    connector: serialdev,*(dev),19200e81,local\n"
    )


@dataclass
class Ser2net:
    """A running ser2net: its URLs for our tools, its config and its log."""

    process: subprocess.Popen[bytes]
    conf: Path
    log: Path
    raw_port: int
    rfc2217_port: int
    host: str = HOST

    @property
    def raw_url(self) -> str:
        """``tcp://host:port/``: raw RTU bytes (what ``aurora_fetch tcp://…`` opens)."""
        return f"tcp://{self.host}:{self.raw_port}/"

    @property
    def rfc2217_url(self) -> str:
        """``rfc2217://host:port/``: telnet with COM-port control; the client sets 19200 8E1."""
        return f"rfc2217://{self.host}:{self.rfc2217_port}/"

    @property
    def telnet_url(self) -> str:
        """The same port as ``telnet://`` (the original's spelling)."""
        return f"telnet://{self.host}:{self.rfc2217_port}/"

    def output(self) -> str:
        """What ser2net logged so far (for assertion messages)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        tmp_path: Path,
        device: Path | str,
        *,
        kickolduser: bool = True,
        chardelay: bool = False,
        deadline_s: float = 10.0,
    ) -> Iterator[Ser2net]:
        """Write the config into ``tmp_path``, start ser2net on free ports, stop and reap it on exit."""
        raw_port, rfc2217_port = free_port(), free_port()
        while rfc2217_port == raw_port:
            rfc2217_port = free_port()
        conf = tmp_path / "ser2net.yaml"
        conf.write_text(
            ser2net_config(
                device,
                raw_port=raw_port,
                rfc2217_port=rfc2217_port,
                kickolduser=kickolduser,
                chardelay=chardelay,
            )
        )
        log = tmp_path / "ser2net.log"
        pidfile = tmp_path / "ser2net.pid"
        argv = [SER2NET, "-n", "-d", "-u", "-c", str(conf), "-P", str(pidfile)]
        with running(argv, log=log) as process:  # stopped, reaped and logged on failure
            wait_for_port(HOST, raw_port, deadline_s)
            wait_for_port(HOST, rfc2217_port, deadline_s)
            yield cls(process, conf, log, raw_port, rfc2217_port)
