"""Network byte streams for ``tcp://`` and ``rfc2217://`` ports, shaped like a pyserial port.

ser2net (infra.md §2.2) writes its errors *into* the stream and then hangs up, so these streams keep
every byte received before a hang-up readable (``pending()``), and close without pyserial's
0.3 s "give the server some time" sleep: with ``kickolduser`` a reconnect needs no pause.
"""

from __future__ import annotations

import contextlib
import queue
import select
import socket
import threading
import time

import serial
import serial.rfc2217

CONNECT_TIMEOUT_S = 5.0  # as the original's TCPSocket and pyserial: a dead host fails in 5 s
GREETING_WAIT_S = 0.5  # how long an RFC 2217 open waits for the server's first telnet options


class TcpStream:
    """A raw TCP connection carrying RTU frames (ser2net ``accepter: tcp``; not ModBus/TCP).

    Implements the part of pyserial's API that ``SerialBus`` uses: ``read(n)`` waits up to
    ``timeout`` for n bytes, ``in_waiting``, ``write``, ``reset_input_buffer``, ``close``.
    """

    def __init__(self, host: str, port: int, *, timeout: float, connect_timeout_s: float = CONNECT_TIMEOUT_S):
        self.timeout = timeout
        self.name = f"tcp://{host}:{port}/"
        self._sock = socket.create_connection((host, port), timeout=connect_timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one frame, one segment, now
        self._sock.setblocking(False)
        self._buf = bytearray()
        self._closed_by_peer = False
        self.is_open = True

    def _fill(self, wait_s: float) -> None:
        """Move what the socket holds into the buffer, waiting up to wait_s for the first byte."""
        if self._closed_by_peer:
            return
        ready, _, _ = select.select([self._sock], [], [], max(0.0, wait_s))
        while ready:
            try:
                data = self._sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:
                self._closed_by_peer = True
                return
            if not data:
                self._closed_by_peer = True
                return
            self._buf += data
            ready, _, _ = select.select([self._sock], [], [], 0)

    @property
    def in_waiting(self) -> int:
        """Bytes that can be read now; raises once the peer has hung up and nothing is left."""
        self._fill(0)
        if not self._buf and self._closed_by_peer:
            raise serial.SerialException("connection closed by the server")
        return len(self._buf)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout`` for all of them."""
        deadline = time.monotonic() + self.timeout
        while len(self._buf) < size and not self._closed_by_peer:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._fill(left)
        if not self._buf and self._closed_by_peer:
            raise serial.SerialException("connection closed by the server")
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out

    def pending(self) -> bytes:
        """Everything received and not read yet, even after a hang-up (ser2net's error text)."""
        with contextlib.suppress(OSError, ValueError):
            self._fill(0)
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def write(self, data: bytes) -> int:
        """Send all of ``data``."""
        if self._closed_by_peer:
            raise serial.SerialException("connection closed by the server")
        self._sock.setblocking(True)
        try:
            self._sock.sendall(data)
        finally:
            self._sock.setblocking(False)
        return len(data)

    def reset_input_buffer(self) -> None:
        """Drop what arrived so far."""
        self.pending()

    def close(self) -> None:
        """Close at once (no linger: a kicked or closed connection needs no grace time)."""
        self.is_open = False
        with contextlib.suppress(OSError):
            self._sock.close()


class Rfc2217Stream(serial.rfc2217.Serial):  # type: ignore[misc]
    """pyserial's RFC 2217 client, hardened for ser2net.

    * A hang-up during telnet negotiation no longer kills the reader thread with a traceback on
      stderr; ``read`` reports the dead connection instead.
    * ``pending()`` returns the bytes queued before the hang-up (ser2net's in-band error text).
    * ``close`` skips pyserial's 0.3 s sleep; ``reset_input_buffer`` only drops local bytes (the
      telnet PURGE costs a 50 ms poll per call in pyserial, on every transaction).
    """

    _server_spoke: threading.Event | None = None
    _opening = False

    def open(self) -> None:
        """pyserial's open, which sends our telnet options only once the server has spoken.

        ser2net greets with its own options and, when it refuses, the reason and a hang-up. Options
        sent before that greeting sit unread in ser2net's socket when it closes, which resets the
        connection and discards the reason on our side before the reader thread sees it.
        """
        self._server_spoke = threading.Event()
        self._opening = True
        try:
            super().open()
        finally:
            self._opening = False

    def _telnet_negotiate_option(self, command: bytes, option: bytes) -> None:
        if self._server_spoke is not None:
            self._server_spoke.set()  # the reader thread holds the server's first bytes by now
        super()._telnet_negotiate_option(command, option)

    def _telnet_read_loop(self) -> None:
        with contextlib.suppress(OSError):
            super()._telnet_read_loop()

    def _internal_raw_write(self, data: bytes) -> None:
        reader = threading.current_thread() is self._thread
        if self._opening and not reader and self._server_spoke is not None:
            self._server_spoke.wait(GREETING_WAIT_S)
        try:
            super()._internal_raw_write(data)
        except OSError:
            # The reader thread answers telnet options; when the server has hung up, keep reading
            # so the text it sent before hanging up reaches ``pending()``.
            if not reader:
                raise

    def pending(self) -> bytes:
        """Data bytes queued by the reader thread and not read yet."""
        out = bytearray()
        q = self._read_buffer
        if q is None:
            return b""
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                break
            if item is None:
                break
            out += item
        return bytes(out)

    def pending_after_hangup(self, wait_s: float = 0.5) -> bytes:
        """After a failed open: let the reader thread finish what the server sent, then return it.

        Closing first would lose it: shutdown() discards data not yet read from the socket.
        """
        thread: threading.Thread | None = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(wait_s)
        return self.pending()

    def reset_input_buffer(self) -> None:
        """Drop local bytes only (see the class docstring)."""
        self.pending()

    def close(self) -> None:
        """Close the socket and reap the reader thread, without the 0.3 s sleep."""
        self.is_open = False
        sock: socket.socket | None = getattr(self, "_socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        thread: threading.Thread | None = getattr(self, "_thread", None)
        self._thread = None
        if thread is not None:
            thread.join(2)  # it leaves its loop on the closed socket
        self._socket = None
