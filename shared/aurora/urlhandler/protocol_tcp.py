"""``tcp://host:port/``: a raw TCP connection carrying RTU frames (ser2net ``accepter: tcp``).

Not Modbus/TCP: the bytes on the socket are the serial line's bytes, as with pyserial's ``socket://``.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any
from urllib.parse import urlsplit

from serial.serialutil import PortNotOpenError, SerialBase, SerialException, SerialTimeoutException, Timeout

CONNECT_TIMEOUT_S = 5.0  # as the original's TCPSocket and pyserial: a dead host fails in 5 s


class Serial(SerialBase):  # type: ignore[misc]
    """A raw TCP stream as a pyserial port under the ``tcp://`` scheme, made for ser2net.

    Like pyserial's ``socket://`` client, with these differences:

    * Received bytes wait in a buffer here: pyserial's ``read`` throws away what it has received
      when the peer hangs up in the middle of it, which is exactly where ser2net's error text is.
      ``pending()`` returns them even after the hang-up.
    * ``in_waiting`` is the number of bytes buffered (pyserial says 0 or 1), so stale bytes are
      read in one call, and it raises once the peer has hung up and nothing is left.
    * ``open`` does not flush what the server sent first (ser2net's refusal), and sets TCP_NODELAY.
    * ``close`` does not sleep 0.3 s; ``reset_input_buffer`` drops the bytes received so far.
    * It imports neither pyserial's ``socket://`` module nor ``logging`` (issue 15: a one-shot
      ``aurora_fetch tcp://…`` starts without them); serial settings and modem lines mean
      nothing on a raw socket and are accepted as no-ops.
    """

    is_open: bool  # set by SerialBase, which mypy cannot see (pyserial has no type hints)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before SerialBase.__init__, which opens the port when it is given one.
        self._socket: socket.socket | None = None
        self._buf = bytearray()
        self._closed_by_peer = False
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        """Connect within CONNECT_TIMEOUT_S, keeping whatever the server says first."""
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        host, port = self.from_url(self.portstr)
        # An ASCII host goes to getaddrinfo as bytes: given str, it loads the idna codec first.
        address = (host.encode("ascii") if host.isascii() else host, port)
        try:
            sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT_S)  # type: ignore[arg-type]
        except OSError as err:
            # The cause tells a refused connection, a timeout and an unknown host name apart.
            raise SerialException(f"Could not open port {self.portstr}: {err}") from err
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one frame, one segment, now
        sock.setblocking(False)
        self._socket = sock
        self._buf.clear()
        self._closed_by_peer = False
        self.is_open = True

    def from_url(self, url: str) -> tuple[str, int]:
        """Host and port of ``tcp://host:port/``; a path or query after them is ignored (no options)."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError as err:
            raise SerialException(f"expected tcp://<host>:<port>/, not {url!r}: {err}") from err
        if parts.scheme != "tcp" or not parts.hostname or not port:
            raise SerialException(f"expected tcp://<host>:<port>/, not {url!r}")
        return parts.hostname, port

    def _fill(self, wait_s: float | None) -> None:
        """Move what the socket holds into the buffer, waiting up to wait_s (None: forever) for it."""
        sock = self._socket
        if sock is None or self._closed_by_peer:
            return
        ready, _, _ = select.select([sock], [], [], wait_s)
        while ready:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                return
            except OSError:  # a reset: as final as a hang-up
                self._closed_by_peer = True
                return
            if not data:
                self._closed_by_peer = True
                return
            self._buf += data
            ready, _, _ = select.select([sock], [], [], 0)

    @property
    def in_waiting(self) -> int:
        """Bytes that can be read now; raises once the peer has hung up and nothing is left."""
        if not self.is_open:
            raise PortNotOpenError()
        self._fill(0)
        if not self._buf and self._closed_by_peer:
            raise SerialException("connection closed by the server")
        return len(self._buf)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout`` for all of them."""
        if not self.is_open:
            raise PortNotOpenError()
        timeout = Timeout(self._timeout)
        while len(self._buf) < size and not self._closed_by_peer:
            self._fill(timeout.time_left())
            if timeout.expired():
                break
        if not self._buf and self._closed_by_peer:
            raise SerialException("connection closed by the server")
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
        """Send all of ``data`` within ``write_timeout`` (None: however long it takes), unless the
        server has hung up already."""
        if not self.is_open or self._socket is None:
            raise PortNotOpenError()
        if self._closed_by_peer:
            raise SerialException("connection closed by the server")
        sock, view = self._socket, memoryview(bytes(data))
        timeout = Timeout(self._write_timeout)
        while view:
            try:
                view = view[sock.send(view) :]
                continue
            except (BlockingIOError, InterruptedError):
                pass  # the send buffer is full: wait until it takes more
            except OSError as err:
                raise SerialException(f"write failed: {err}") from err
            if timeout.expired():
                raise SerialTimeoutException("Write timeout")
            _, ready, _ = select.select([], [sock], [], timeout.time_left())
            if not ready:
                raise SerialTimeoutException("Write timeout")
        return len(data)

    def reset_output_buffer(self) -> None:
        """Nothing waits here: a write hands everything to the kernel."""

    def fileno(self) -> int:
        """The socket's descriptor, for select()."""
        if self._socket is None:
            raise PortNotOpenError()
        return self._socket.fileno()

    # Serial settings and modem lines mean nothing on a raw socket (ser2net sets them itself).
    def _reconfigure_port(self, *args: Any) -> None:
        """No-op: baud rate, parity and timeouts are not the socket's business."""

    def send_break(self, duration: float = 0.25) -> None:
        """No-op: a raw socket cannot send a break."""

    def _update_break_state(self) -> None:
        """No-op."""

    def _update_rts_state(self) -> None:
        """No-op."""

    def _update_dtr_state(self) -> None:
        """No-op."""

    @property
    def cts(self) -> bool:
        """Always True: no modem lines."""
        return True

    @property
    def dsr(self) -> bool:
        """Always True: no modem lines."""
        return True

    @property
    def ri(self) -> bool:
        """Always False: no modem lines."""
        return False

    @property
    def cd(self) -> bool:
        """Always True: no modem lines."""
        return True

    def reset_input_buffer(self) -> None:
        """Drop what arrived so far (pyserial drains the socket the same way, unbuffered)."""
        self.pending()

    def close(self) -> None:
        """Close at once: a kicked or closed connection needs no grace time."""
        self.is_open = False
        sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
