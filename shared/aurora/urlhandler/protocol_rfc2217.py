"""``rfc2217://host:port``: pyserial's RFC 2217 client, hardened for ser2net.

Found before pyserial's own ``serial.urlhandler.protocol_rfc2217`` because ``aurora.transport``
puts this package first in ``serial.protocol_handler_packages``.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from typing import Any

import serial.rfc2217

GREETING_WAIT_S = 0.5  # how long an open waits for the server's first telnet options


class _AnswerClock:
    """Stands in for ``time`` inside ``serial.rfc2217``, whose waits for the server's answers
    sleep 50 ms before each look: an open makes at least six such waits (options, settings, flow
    control, DTR, RTS, purge), some 0.4 s for answers that take a millisecond on a LAN.

    Its ``sleep`` returns at once for the first look after a request, and otherwise as soon as
    the reader thread has taken an answer the sleeping thread has not seen yet, or after the time
    asked. The waits keep their own checks and timeouts; only their pace changes. Everything
    else is the real ``time`` module.
    """

    def __init__(self) -> None:
        self._answered = threading.Condition()
        self._answers = 0
        self._seen = threading.local()

    def sent(self) -> None:
        """A request goes out: the next look needs no wait (the answer may be in already)."""
        self._seen.fresh = True

    def answer(self) -> None:
        """The reader thread took an answer (an option or a subnegotiation)."""
        with self._answered:
            self._answers += 1
            self._answered.notify_all()

    def sleep(self, seconds: float) -> None:
        """Until an answer this thread has not seen, at most ``seconds``; no wait at all for the
        first look after a request."""
        with self._answered:
            if getattr(self._seen, "fresh", False):
                self._seen.fresh = False
            else:
                seen = getattr(self._seen, "count", self._answers)
                self._answered.wait_for(lambda: self._answers > seen, timeout=seconds)
            self._seen.count = self._answers

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class _QuickAck:
    """The client's socket, acknowledging every segment at once (Linux ``TCP_QUICKACK``, which
    the kernel clears again after a while, so it is set around every read).

    ser2net writes a negotiation answer in several small segments and holds each behind the
    acknowledgement of the one before (Nagle); a delayed acknowledgement then costs 40 ms per
    answer, most of an open's time.
    """

    def __init__(self, sock: socket.socket, flag: int) -> None:
        self._sock = sock
        self._flag = flag

    def recv(self, size: int) -> bytes:
        """``socket.recv`` with quick acknowledgements on either side of it."""
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, self._flag, 1)
        data = self._sock.recv(size)
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.IPPROTO_TCP, self._flag, 1)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


_CLOCK = _AnswerClock()
serial.rfc2217.time = _CLOCK  # only that module's polling sleeps; pyserial's own handler unchanged


class Serial(serial.rfc2217.Serial):  # type: ignore[misc]
    """pyserial's RFC 2217 client, hardened for ser2net.

    * A hang-up during telnet negotiation no longer kills the reader thread with a traceback on
      stderr; ``read`` reports the dead connection instead.
    * ``pending()`` returns the bytes queued before the hang-up (ser2net's in-band error text).
    * An open takes milliseconds, not 0.45 s: pyserial's 50 ms polling waits end at the answer
      (``_AnswerClock``), answers are acknowledged at once (``_QuickAck``), and with
      ``ign_set_control`` nothing sleeps 0.1 s per modem line.
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
        _CLOCK.answer()

    def _telnet_process_subnegotiation(self, suboption: bytes) -> None:
        super()._telnet_process_subnegotiation(suboption)
        _CLOCK.answer()

    def _telnet_process_command(self, command: bytes) -> None:
        super()._telnet_process_command(command)
        _CLOCK.answer()

    def rfc2217_set_control(self, value: bytes) -> None:
        """Modem lines and flow control; with ``ign_set_control`` (ser2net on a pty cannot change
        them, see aurora.transport) the answer is not waited for, where pyserial sleeps 0.1 s."""
        if self._ignore_set_control_answer:
            self._rfc2217_options["control"].set(value)
            return
        super().rfc2217_set_control(value)

    def telnet_send_option(self, action: bytes, option: bytes) -> None:
        """Send a telnet option (pyserial's), noting it for the answer clock."""
        _CLOCK.sent()
        super().telnet_send_option(action, option)

    def rfc2217_send_subnegotiation(self, option: bytes, value: bytes = b"") -> None:
        """Send a subnegotiation (pyserial's), noting it for the answer clock."""
        _CLOCK.sent()
        super().rfc2217_send_subnegotiation(option, value)

    def _telnet_read_loop(self) -> None:
        flag = getattr(socket, "TCP_QUICKACK", None)
        sock: object = getattr(self, "_socket", None)
        if flag is not None and isinstance(sock, socket.socket):
            self._socket: Any = _QuickAck(sock, flag)  # the reader thread reads through it
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
