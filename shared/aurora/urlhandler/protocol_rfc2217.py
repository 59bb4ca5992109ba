"""``rfc2217://host:port``: pyserial's RFC 2217 client, hardened for ser2net.

Found before pyserial's own ``serial.urlhandler.protocol_rfc2217`` because ``aurora.transport``
puts this package first in ``serial.protocol_handler_packages``.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading

import serial.rfc2217

GREETING_WAIT_S = 0.5  # how long an open waits for the server's first telnet options


class Serial(serial.rfc2217.Serial):  # type: ignore[misc]
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
