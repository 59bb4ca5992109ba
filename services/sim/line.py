"""The simulated unit's end of the line: a pty or a TCP port, with real 19200-baud timing.

A request is answered once its last byte would have arrived on a real line, plus the board's
turnaround; the reply leaves one byte every 0.573 ms. Faults seen in the field can be injected.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import struct
import termios
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from aurora import rtu
from aurora.errors import FrameError
from aurora.simulator import SimulatedAbc
from aurora.sniffer import split_request

if TYPE_CHECKING:
    from serial import SerialBase  # imported when a serial line is served, not at start

log = structlog.get_logger(__name__)

SEND_SLICE = 16  # bytes written per paced write: fine enough to look like a line, cheap enough to run
INTERFRAME_GAP_S = 0.02  # silence after which an incomplete request is thrown away


@dataclass(slots=True)
class LineFaults:
    """What goes wrong on this line, as fractions of replies (seeded, so a run can be repeated)."""

    drop: float = 0.0
    corrupt: float = 0.0
    partial: float = 0.0
    stray: float = 0.0
    delay_s: float = 0.0
    seed: int | None = None
    rng: random.Random = field(init=False)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _hit(self, name: str, rate: float) -> bool:
        if rate and self.rng.random() < rate:
            self.counts[name] = self.counts.get(name, 0) + 1
            return True
        return False

    def apply(self, reply: bytes) -> bytes | None:
        """The bytes actually sent for ``reply`` (None: nothing)."""
        if self._hit("dropped", self.drop):
            return None
        out = bytearray(reply)
        if self._hit("corrupted", self.corrupt):
            i = self.rng.randrange(len(out))
            out[i] ^= 1 << self.rng.randrange(8)
        if self._hit("partial", self.partial):
            out = out[: max(1, len(out) // 2)]
        if self._hit("stray", self.stray):
            out = bytearray(self.rng.randbytes(self.rng.randint(1, 4))) + out
        return bytes(out)


@dataclass(slots=True)
class Timing:
    """Line speed and board turnaround."""

    byte_time_s: float = rtu.BYTE_TIME_S
    turnaround_s: float = 0.002

    @classmethod
    def for_baud(cls, baud: int, turnaround_s: float) -> Timing:
        """8E1: 11 bits per byte."""
        return cls(byte_time_s=11 / baud if baud else 0.0, turnaround_s=turnaround_s)


class Responder:
    """Turns bytes from the line into paced replies; independent of what the line is."""

    def __init__(
        self,
        abc: SimulatedAbc,
        timing: Timing,
        faults: LineFaults | None = None,
        tap: Callable[[bytes], None] | None = None,
    ) -> None:
        self.abc = abc
        self.timing = timing
        self.faults = faults or LineFaults()
        self.tap = tap  # hears every byte on the line, both directions, in line order
        self.requests = 0

    def serve(
        self, recv: Callable[[float], bytes | None], send: Callable[[bytes], None], stop: threading.Event
    ) -> None:
        """Read requests with ``recv(timeout)`` (None: line closed) and answer with ``send``."""
        if self.tap is not None:
            recv, send = _tapped(recv, send, self.tap)
        buf = bytearray()
        first_byte_at = 0.0
        last_byte_at = 0.0
        while not stop.is_set():
            data = recv(INTERFRAME_GAP_S)
            now = time.monotonic()
            if data is None:
                return
            if data:
                if not buf:
                    first_byte_at = now
                buf += data
                last_byte_at = now
            elif buf and now - last_byte_at > INTERFRAME_GAP_S:
                log.debug("sim_discard", garbage=bytes(buf).hex(" "))
                buf.clear()
            while buf:
                try:
                    found = split_request(bytes(buf))  # waits for an FC 16 byte count
                except FrameError:
                    del buf[0]
                    first_byte_at = now
                    continue
                if found is None:
                    break
                request, used = found
                del buf[:used]
                self._answer(request, first_byte_at + used * self.timing.byte_time_s, send)
                first_byte_at = time.monotonic()

    def _answer(self, request: rtu.Request, request_end: float, send: Callable[[bytes], None]) -> None:
        self.requests += 1
        reply = self.abc.respond(request)
        if reply is None:
            return
        out = self.faults.apply(reply)
        if out is None:
            return
        start = request_end + self.timing.turnaround_s + self.faults.delay_s
        bt = self.timing.byte_time_s
        for offset in range(0, len(out), SEND_SLICE):
            piece = out[offset : offset + SEND_SLICE]
            due = start + (offset + len(piece)) * bt  # the piece's last byte has crossed the line
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            send(piece)


def _tapped(
    recv: Callable[[float], bytes | None], send: Callable[[bytes], None], tap: Callable[[bytes], None]
) -> tuple[Callable[[float], bytes | None], Callable[[bytes], None]]:
    def tapped_recv(timeout: float) -> bytes | None:
        data = recv(timeout)
        if data:
            tap(data)
        return data

    def tapped_send(data: bytes) -> None:
        tap(data)
        send(data)

    return tapped_recv, tapped_send


class TapPty:
    """A second pseudo-terminal that repeats everything on the line: a bus a listener can join.

    Like an RS-485 adapter on the same pair of wires as the AID tool, it hears requests and replies
    in order; ``aurora_monitor LINK`` opens it. It never blocks the line: when nobody reads and the
    pty's buffer is full, bytes are dropped (and counted).
    """

    def __init__(self, link: Path | None = None) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline; the slave stays open between listeners
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.link = link
        self.dropped = 0
        self._lock = threading.Lock()  # the TCP line serves each client on its own thread
        if link is not None:
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(self.path)

    def copy(self, data: bytes) -> None:
        """Repeat ``data`` to the listener."""
        with self._lock:
            try:
                written = os.write(self.master, data)
            except (BlockingIOError, OSError):
                written = 0
            self.dropped += len(data) - written

    def close(self) -> None:
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
        os.close(self.master)
        os.close(self._slave)


class PtyLine:
    """A pseudo-terminal: clients open ``link`` (a symlink to /dev/pts/N) like a USB adapter."""

    def __init__(self, link: Path | None = None) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # the slave stays open, so the master never sees EIO between clients
        attrs = termios.tcgetattr(self._slave)
        attrs[4] = attrs[5] = termios.B19200
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        self.path = os.ttyname(self._slave)
        self.link = link
        if link is not None:
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(self.path)

    def recv(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except OSError:
            return b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def serve(self, responder: Responder, stop: threading.Event) -> None:
        """Answer requests until ``stop``."""
        responder.serve(self.recv, self.send, stop)

    def close(self) -> None:
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
        os.close(self.master)
        os.close(self._slave)


class TcpLine:
    """A TCP port like ser2net raw mode: one client at a time, a new client replaces the old one."""

    def __init__(self, host: str, port: int) -> None:
        self.server = socket.create_server((host, port), reuse_port=False)
        self.address = self.server.getsockname()[:2]
        self._current: socket.socket | None = None
        self._lock = threading.Lock()

    def serve(self, responder: Responder, stop: threading.Event) -> None:
        """Accept clients until ``stop``; each is served on its own thread, the older one closed."""
        self.server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, peer = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                old, self._current = self._current, conn
            if old is not None:
                _close_quietly(old)  # kickolduser: a stale client must not block a new one
            log.info("sim_client", peer=f"{peer[0]}:{peer[1]}")
            threading.Thread(target=self._serve_client, args=(conn, responder, stop), daemon=True).start()

    def _serve_client(self, conn: socket.socket, responder: Responder, stop: threading.Event) -> None:
        def recv(timeout: float) -> bytes | None:
            try:
                ready, _, _ = select.select([conn], [], [], timeout)
                if not ready:
                    return b""
                data = conn.recv(4096)
            except (OSError, ValueError):
                return None
            return data or None

        def send(data: bytes) -> None:
            with contextlib.suppress(OSError):
                conn.sendall(data)

        try:
            responder.serve(recv, send, stop)
        finally:
            _close_quietly(conn)

    def close(self) -> None:
        _close_quietly(self.server)
        with self._lock:
            if self._current is not None:
                _close_quietly(self._current)


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


class SerialLine:
    """A real serial adapter (or tcp://, rfc2217:// client stream): the sim as a slave on a bus."""

    def __init__(self, port: SerialBase) -> None:
        self.port = port

    def serve(self, responder: Responder, stop: threading.Event) -> None:
        """Answer requests until ``stop`` or until the stream closes."""
        import serial

        port = self.port

        def recv(timeout: float) -> bytes | None:
            try:
                waiting = port.in_waiting
                data: bytes = port.read(max(1, waiting))
                return data
            except (serial.SerialException, OSError):
                return None

        responder.serve(recv, port.write, stop)

    def close(self) -> None:
        self.port.close()


class ModbusTcpLine:
    """Standard ModBus/TCP (MBAP) for the standard function codes, as ``aurora_mock`` offered."""

    def __init__(self, host: str, port: int, abc: SimulatedAbc, unit: int = 255) -> None:
        self.server = socket.create_server((host, port))
        self.address = self.server.getsockname()[:2]
        self.abc = abc
        self.unit = unit

    def serve(self, stop: threading.Event) -> None:
        """Accept clients until ``stop``; each on its own thread."""
        self.server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while len(buf) >= 7:
                    tid, proto, length, unit = _unpack_mbap(buf)
                    if len(buf) < 6 + length:
                        break
                    pdu, buf = buf[7 : 6 + length], buf[6 + length :]
                    reply = self._pdu_reply(unit, pdu)
                    if reply is not None and proto == 0:
                        conn.sendall(_pack_mbap(tid, unit, reply))

    def _pdu_reply(self, unit: int, pdu: bytes) -> bytes | None:
        # Reuse the RTU slave: wrap the PDU into an RTU frame for slave 1, unwrap the answer.
        if unit not in (self.unit, 1, 0):
            return None
        body = bytes((1,)) + pdu
        frame = body + rtu.crc16(body).to_bytes(2, "little")
        answer = self.abc.respond_to_frame(frame)
        return None if answer is None else answer[1:-2]

    def close(self) -> None:
        _close_quietly(self.server)


def _unpack_mbap(buf: bytes) -> tuple[int, int, int, int]:
    """(transaction id, protocol id, length, unit id) of an MBAP header."""
    tid, proto, length, unit = struct.unpack(">HHHB", buf[:7])
    return tid, proto, length, unit


def _pack_mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    """An MBAP frame around ``pdu``."""
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu
