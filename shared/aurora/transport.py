"""Open what a port argument names and run RTU transactions over it (docs/protocol.md#ports,
docs/protocol.md#timing).

Every byte stream comes from pyserial's ``serial_for_url``: a device path (19200 8E1),
``tcp://host:port/`` (ser2net raw), ``telnet://``/``rfc2217://`` (RFC 2217 sets 19200 8E1 itself).
The network schemes open through this suite's handlers in ``aurora.urlhandler``, registered here.
A YAML register dump is a simulated unit; ``mqtt(s)://`` goes through the bridge.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import serial

from . import rtu, urlhandler
from .bus import Bus, BusStats
from .errors import (
    BusError,
    BusTimeout,
    ExceptionReply,
    FrameError,
    IllegalAddress,
    IllegalFunction,
    UsageError,
)
from .logs import get_logger
from .mqtt_args import is_mqtt_url
from .urlhandler import protocol_tcp
from .urls import redact

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from .mqtt import MqttSettings
    from .urlhandler import protocol_rfc2217

log = get_logger(__name__)  # structlog only once something logs (issue 15)

# First in pyserial's search list: tcp:// is ours alone, and rfc2217:// must find the hardened
# client before pyserial's own.
if urlhandler.__name__ not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.insert(0, urlhandler.__name__)

SERIAL_SETTINGS = {"baudrate": 19200, "bytesize": 8, "parity": serial.PARITY_EVEN, "stopbits": 1}
DEFAULT_LATENCY_S = 0.5  # what the board and the network may add to the wire time of a reply
DEFAULT_ATTEMPTS = 3
GARBLED_EXTRA = 2  # further attempts a transaction gets when replies came back garbled
# Silence after some bytes that ends an attempt early. A reply's bytes follow one another within
# 0.6 ms on the wire and ser2net forwards a frame in one or two segments (chardelay), so 0.1 s of
# silence in mid-reply means it is broken; at worst an intact but stalled reply costs a retry.
GARBLED_QUIET_S = 0.1
_EXCEPTION_LENGTH = 5  # uid, function | 0x80, code, CRC
READ_SLICE_S = 0.05  # fixed read timeout: changing it re-applies termios, which fails on a pty
_STALE_LIMIT = 4096  # bytes read off a network port before each request, at most
# ser2net writes these into the data stream and hangs up (docs/protocol.md#ser2net).
_SER2NET_BUSY = b"already in use"  # "Port already in use", "Port's device already in use"
_SER2NET_OPEN_FAIL = b"Device open failure"


try:
    import termios

    # tcflush on a tty whose other end is gone (a pty whose simulator died, an unplugged adapter
    # behind some drivers) raises termios.error, which is no OSError: it must count as a lost line.
    LINE_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError, termios.error)
except ImportError:  # not POSIX
    LINE_ERRORS = (serial.SerialException, OSError)


def _describe_attempt(state: RetryCallState) -> None:
    err = state.outcome.exception() if state.outcome else None
    log.warning("bus_retry", attempt=state.attempt_number, error=str(err))


class PortBusy(BusError):
    """ser2net said its device is in use (another client, or one that has just left)."""


BUSY_RETRIES = 3
BUSY_BACKOFF_S = 0.2


class SerialBus:
    """RTU client over one pyserial stream: one transaction at a time, retried on timeout or CRC.

    The per-attempt timeout is the wire time of request and expected reply plus ``latency_s``
    (the original waited 15 s). Boards that refuse or ignore the WaterFurnace codes 65/66 are read
    with standard FC 3 blocks from then on (``wf_codes`` False).
    """

    def __init__(
        self,
        port: serial.SerialBase,
        name: str,
        *,
        latency_s: float = DEFAULT_LATENCY_S,
        attempts: int = DEFAULT_ATTEMPTS,
        slave: int = 1,
        byte_time_s: float = rtu.BYTE_TIME_S,
        wf_codes: bool | None = None,
        debug: bool = False,
        reopen: Callable[[], serial.SerialBase] | None = None,
    ) -> None:
        self._port = port
        self.name = name
        self.latency_s = latency_s
        self.attempts = attempts
        self.slave = slave
        self.byte_time_s = byte_time_s
        self.wf_codes = wf_codes  # None: not known yet; found out on the first FC 65/66 read
        self.debug = debug
        self.stats = BusStats()
        self._reopen = reopen  # how to connect again when ser2net says the device is busy
        self._silent_attempts = 0  # attempts of the current transaction that heard nothing
        self._unsettled = False  # the last attempt failed: its reply may still come

    # ------------------------------------------------------------ one transaction

    def _attempt(self, request: rtu.Request) -> rtu.Reply:
        frame = request.encode()
        expected = request.expected_reply_length()
        timeout_s = (len(frame) + expected) * self.byte_time_s + self.latency_s
        started = time.monotonic()
        self.stats.transactions += 1
        buf = bytearray()
        try:
            self._flush_stale()
            sent = time.monotonic()  # the allowance runs from the request, not from the flush
            deadline = sent + timeout_s
            if self.debug:
                log.debug("tx", frame=frame.hex(" "))
            self._port.write(frame)
            self.stats.bytes_sent += len(frame)
            last_rx = sent
            while time.monotonic() < deadline:
                chunk = self._port.read(_read_size(len(buf), expected, self._port.in_waiting))
                if not chunk:
                    if buf and time.monotonic() - last_rx >= GARBLED_QUIET_S:
                        # Bytes came, then the line fell quiet without a valid reply among them:
                        # garbled (CRC, flipped bit) or cut short. Retry now instead of waiting
                        # out the allowance, as the original did for 15 s (docs/protocol.md#bugs-transport).
                        break
                    continue
                last_rx = time.monotonic()
                buf += chunk
                self.stats.bytes_received += len(chunk)
                found = rtu.find_reply(bytes(buf), request)
                if found is None:
                    # Only bytes that hold no reply can be ser2net talking (string registers are ASCII).
                    _raise_for_ser2net_text(self.name, bytes(buf))
                if found is not None:
                    reply, _ = found
                    if self.debug:
                        log.debug("rx", frame=bytes(buf).hex(" "))
                    self.stats.record_latency(time.monotonic() - sent)
                    self.stats.bus_time_s += time.monotonic() - started
                    self.stats.wire_time_s += (len(frame) + expected) * self.byte_time_s
                    return reply
        except ExceptionReply:
            self.stats.exception_replies += 1
            self.stats.bus_time_s += time.monotonic() - started
            raise
        except LINE_ERRORS as err:
            self.stats.bus_time_s += time.monotonic() - started
            # The server may have said why before it hung up (docs/protocol.md#ser2net).
            text = bytes(buf) + _pending_bytes(self._port)
            _raise_for_ser2net_text(self.name, text)
            raise _lost_error(self.name, err) from err
        self.stats.bus_time_s += time.monotonic() - started
        if self.debug and buf:
            log.debug("rx_garbage", frame=bytes(buf).hex(" "))
        self._unsettled = True  # whatever answers this request now is late: drop it before the next
        if buf:
            self.stats.frame_errors += 1
            raise FrameError(f"no valid reply in {len(buf)} bytes from {self.name}")
        self.stats.timeouts += 1
        self._silent_attempts += 1
        raise BusTimeout(f"no reply from {self.name} within {timeout_s:.2f} s")

    def _flush_stale(self) -> None:
        # A late reply to an earlier request must never be taken for this one
        # (docs/protocol.md#bugs-transport),
        # and what ser2net sent on connect is stale too (docs/protocol.md#ser2net).
        if self._unsettled:
            self._settle()
        if not _is_network(self._port):
            self._port.reset_input_buffer()  # termios flush: local and instant
            return
        # On a network port reset_input_buffer either drains the socket unseen (socket://), or sends an
        # RFC 2217 PURGE and polls 50 ms for the server's answer on every transaction (rfc2217://).
        # Read the stale bytes instead: ser2net's in-band error text is among them.
        stale = bytearray()
        try:
            while len(stale) < _STALE_LIMIT and (waiting := self._port.in_waiting):
                stale += self._port.read(min(waiting, _STALE_LIMIT))
        except LINE_ERRORS:
            _raise_for_ser2net_text(self.name, bytes(stale) + _pending_bytes(self._port))
            raise
        if stale:
            self.stats.extra["stale_bytes"] = self.stats.extra.get("stale_bytes", 0) + len(stale)
            _raise_for_ser2net_text(self.name, bytes(stale))
            if self.debug:
                log.debug("rx_stale", frame=bytes(stale).hex(" "))

    def _settle(self) -> None:
        """After a failed attempt, wait for the line to fall quiet before the next request.

        A slow board's reply can still be on its way. Taken for the next request's reply, it would
        put its values on the wrong addresses whenever both requests have the same layout (two
        single-register FC 3 reads): the original's bug (docs/protocol.md#bugs-transport). Flushing alone does
        not catch a reply that arrives after the flush.
        """
        self._unsettled = False
        started = time.monotonic()
        last_rx = started
        late = 0
        while True:
            now = time.monotonic()
            if now - last_rx >= GARBLED_QUIET_S or now - started >= max(self.latency_s, GARBLED_QUIET_S):
                break
            data = self._port.read(max(1, self._port.in_waiting))  # returns after ≤ one read slice
            if data:
                late += len(data)
                last_rx = time.monotonic()
                _raise_for_ser2net_text(self.name, data)
        if late:
            self.stats.extra["late_bytes"] = self.stats.extra.get("late_bytes", 0) + late

    def transact(self, request: rtu.Request) -> rtu.Reply:
        """Run one read transaction, retrying timeouts and garbled replies only."""
        for busy in range(BUSY_RETRIES + 1):
            self._silent_attempts = 0
            try:
                return self._with_retries(request)
            except PortBusy:
                if self._reopen is None or busy == BUSY_RETRIES:
                    raise
                self._reconnect()
        raise AssertionError("unreachable")

    def _with_retries(self, request: rtu.Request) -> rtu.Reply:
        try:
            return self._attempt(request)
        except (BusTimeout, FrameError) as err:
            first: BaseException | None = err
        # Only a failed attempt needs tenacity, which imports asyncio: a one-shot aurora_fetch on a
        # healthy line starts without either (issue 15). tenacity replays the failed attempt as its
        # first, so the count, the stop rule and the statistics are those of a plain Retrying.
        from tenacity import Retrying, retry_if_exception_type

        def attempt() -> rtu.Reply:
            nonlocal first
            if first is not None:
                failed, first = first, None
                raise failed
            return self._attempt(request)

        retrying = Retrying(
            retry=retry_if_exception_type((BusTimeout, FrameError)),
            stop=self._stop_retrying,
            before_sleep=self._count_retry,
            reraise=True,
        )
        return retrying(attempt)

    def _reconnect(self) -> None:
        # ser2net frees a device some 0.1-0.3 s after a client leaves (measured with 4.3.11): a
        # reconnect right after another tool, or after the other accepter of the same device, is
        # told "Port's device already in use" and hung up on (docs/protocol.md#ser2net).
        assert self._reopen is not None
        log.warning("port_busy_reconnect", port=self.name, after_s=BUSY_BACKOFF_S)
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.close()
        time.sleep(BUSY_BACKOFF_S)
        try:
            self._port = self._reopen()
        except (serial.SerialException, OSError) as err:
            raise _open_error(self.name, err) from err
        self.stats.reconnects += 1

    def _stop_retrying(self, state: RetryCallState) -> bool:
        """Give up after ``attempts`` silent attempts, or ``attempts + GARBLED_EXTRA`` in all.

        A garbled reply proves the board is there and answering; another try costs one reply's
        line time (the garbled one is cut short), so a noisy line gets a few more tries than a
        silent one, whose every try costs the whole allowance.
        """
        if state.attempt_number >= self.attempts + GARBLED_EXTRA:
            return True
        return self._silent_attempts >= self.attempts

    def _count_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        _describe_attempt(state)

    # ------------------------------------------------------------ reads

    def read_holding(self, start: int, count: int) -> list[int]:
        """FC 3."""
        return list(self.transact(rtu.read_holding(start, count, self.slave)).values)

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[int]:
        """FC 65, or FC 3 per range on boards without the WaterFurnace codes."""
        if self.wf_codes is False:
            return self._read_blocks(ranges)
        return self._with_wf_probe(
            lambda: list(self.transact(rtu.read_ranges(ranges, self.slave)).values), ranges
        )

    def read_registers(self, addresses: Sequence[int]) -> list[int]:
        """FC 66, or FC 3 blocks on boards without the WaterFurnace codes."""
        if self.wf_codes is False:
            return self._read_blocks([(a, 1) for a in addresses])
        return self._with_wf_probe(
            lambda: list(self.transact(rtu.read_registers(addresses, self.slave)).values),
            [(a, 1) for a in addresses],
        )

    def _with_wf_probe(self, read: Callable[[], list[int]], ranges: Sequence[tuple[int, int]]) -> list[int]:
        try:
            values = read()
        except (IllegalFunction, BusTimeout) as err:
            if self.wf_codes or not self._fc3_answers(ranges[0][0]):
                raise
            log.warning("wf_codes_unsupported", port=self.name, reason=str(err), fallback="function 3")
            self.wf_codes = False
            return self._read_blocks(ranges)
        self.wf_codes = True
        return values

    def _fc3_answers(self, address: int) -> bool:
        try:
            self.transact(rtu.read_holding(address, 1, self.slave))
        except IllegalAddress:
            return True  # it answered; the address is just not there
        except (ExceptionReply, BusTimeout, FrameError):
            return False
        return True

    def _read_blocks(self, ranges: Sequence[tuple[int, int]]) -> list[int]:
        """FC 3 for each run of consecutive addresses (each at most 100 registers)."""
        values: list[int] = []
        for start, count in _merge_consecutive(ranges):
            values += self.read_holding(start, count)
        return values

    # ------------------------------------------------------------ writes

    def write_register(self, address: int, value: int) -> None:
        """FC 6. A lost or garbled reply is settled by reading the register back, not by resending."""
        self._confirmed_write(rtu.write_single(address, value, self.slave), address, [value])

    def write_block(self, start: int, values: Sequence[int]) -> None:
        """FC 16 for consecutive registers, confirmed the same way."""
        self._confirmed_write(rtu.write_multiple(start, values, self.slave), start, list(values))

    def write_list(self, pairs: Sequence[tuple[int, int]]) -> None:
        """FC 67 (WaterFurnace): discontiguous (address, value) pairs in one transaction, confirmed
        the same way (read back with FC 66)."""
        addresses = [a for a, _ in pairs]
        self._confirmed_write(
            rtu.write_registers(pairs, self.slave),
            addresses[0],
            [v for _, v in pairs],
            readback=lambda: self.read_registers(addresses),
        )

    def _confirmed_write(
        self,
        request: rtu.Request,
        start: int,
        values: list[int],
        readback: Callable[[], list[int]] | None = None,
    ) -> None:
        # Never repeat a write blindly: after a lost reply, read back; resend only
        # when the registers show the write did not arrive.
        for attempt in range(1, self.attempts + 1):
            try:
                self._attempt(request)
                return
            except (BusTimeout, FrameError) as err:
                self.stats.retries += 1
                log.warning("write_unconfirmed", address=start, attempt=attempt, error=str(err))
                try:
                    now = readback() if readback is not None else self.read_holding(start, len(values))
                except ExceptionReply:
                    raise err from None
                if now == values:
                    return
        raise BusTimeout(f"write of register {start} not confirmed by {self.name}")

    def close(self) -> None:
        """Close the stream."""
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.close()


def _merge_consecutive(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Join ranges that continue one another, keeping request order (FC 3 blocks stay ≤100)."""
    merged: list[tuple[int, int]] = []
    for start, count in ranges:
        if merged:
            m_start, m_count = merged[-1]
            if m_start + m_count == start and m_count + count <= rtu.MAX_READ_REGISTERS:
                merged[-1] = (m_start, m_count + count)
                continue
        merged.append((start, count))
    return merged


# ---------------------------------------------------------------- opening a port


def preload_retries() -> None:
    """Import the retry machinery now, for a long-running owner of the line (the bridge).

    A one-shot tool imports tenacity (and asyncio with it) only when an attempt fails; a service
    should not pay those tens of milliseconds in the middle of its first retry.
    """
    import tenacity  # noqa: F401


def _pyserial_url(url: str) -> tuple[str, dict[str, object]]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        parts.port  # noqa: B018 -- urllib checks the port only when asked
    except ValueError as err:
        raise UsageError(f"{redact(url)}: {err}") from None
    if scheme == "tcp":
        if not parts.hostname or not parts.port:
            raise UsageError(
                f"{url}: a tcp:// port needs a host and a port, e.g. tcp://raspberrypi.local:2000/"
            )
        return url, {}
    if scheme in ("telnet", "rfc2217"):
        if not parts.hostname:
            raise UsageError(f"{url}: needs a host, e.g. rfc2217://raspberrypi.local:2217/")
        # ign_set_control: ser2net on a pty cannot change modem lines; the line settings still apply.
        query = "ign_set_control" + (f"&{parts.query}" if parts.query else "")
        return f"rfc2217://{parts.hostname}:{parts.port or 23}?{query}", dict(SERIAL_SETTINGS)
    if scheme in ("socket", "loop", "spy"):
        return url, {}
    settings: dict[str, object] = {**SERIAL_SETTINGS, "exclusive": True}
    if os.path.realpath(url).startswith("/dev/pts/"):
        # A pseudo-terminal carries no parity; asking for it fails when the pty is opened again.
        settings["parity"] = serial.PARITY_NONE
    return url, settings


def _open_error(url: str, err: Exception) -> BusError | UsageError:
    text = str(err)
    shown = redact(url)
    if "Connection refused" in text or isinstance(err.__cause__, ConnectionRefusedError):
        return BusError(f"Connection refused - {shown}")
    if "timed out" in text or isinstance(err.__cause__, TimeoutError):
        return BusError(f"Timeout connecting to {shown}")
    if "exclusively lock" in text or "Resource busy" in text or "Device or resource busy" in text:
        return BusError(f"Serial port busy - {shown}")
    unresolved = err if isinstance(err, socket.gaierror) else err.__cause__
    if isinstance(unresolved, socket.gaierror):
        return BusError(f"Cannot resolve host name - {shown} ({unresolved.strerror or text})")
    if "protocol" in text and "not known" in text:
        return UsageError(
            f"{shown}: not a port; give a serial device (/dev/ttyUSB0), tcp://HOST:PORT/, "
            "rfc2217://HOST:PORT/, a YAML dump file or mqtts://USER@BROKER/"
        )
    cause = err.__cause__ if isinstance(err.__cause__, OSError) else err
    errno_ = cause.errno if isinstance(cause, OSError) else None
    if errno_ == errno.ENOENT or "No such file" in text:
        if Path(url).suffix.lower() in (".yml", ".yaml"):
            return UsageError(f"{shown}: no such dump file")
        return BusError(
            f"Cannot open {shown}: no such device (is the adapter plugged in? ls /dev/serial/by-id/)"
        )
    if errno_ == errno.EACCES or "Permission denied" in text:
        return BusError(f"Cannot open {shown}: permission denied (is this user in the dialout group?)")
    if errno_ == errno.EISDIR or "Is a directory" in text:
        return BusError(f"Cannot open {shown}: a directory, not a serial device or dump file")
    if "Inappropriate ioctl" in text:
        return BusError(f"Cannot open {shown}: not a serial device (it takes no serial settings)")
    if "could not open port" in text.lower():
        return BusError(f"Cannot open {shown}: {text}")
    return BusError(f"{shown}: {text}")


def open_stream(url: str) -> serial.SerialBase:
    """The raw byte stream a device path, tcp://, telnet:// or rfc2217:// port names.

    ``read(n)`` waits at most 0.05 s; errors are BusError with the user's document's wording.
    For a passive listener (``aurora_monitor``) as much as for ``SerialBus``.
    """
    pyserial_url, settings = _pyserial_url(url)
    try:
        return _connect(url, pyserial_url, settings)
    except BusError:
        raise
    except (serial.SerialException, OSError, ValueError) as err:
        raise _open_error(url, err) from err


def _connect(url: str, pyserial_url: str, settings: dict[str, object]) -> serial.SerialBase:
    if urlsplit(pyserial_url).scheme == "rfc2217":
        return _open_rfc2217(url, pyserial_url, settings)
    return serial.serial_for_url(pyserial_url, timeout=READ_SLICE_S, **settings)


def open_serial(url: str, **bus_options: object) -> SerialBus:
    """Open a device path, tcp://, telnet:// or rfc2217:// port as a SerialBus."""
    port = open_stream(url)
    pyserial_url, settings = _pyserial_url(url)
    network = urlsplit(pyserial_url).scheme in ("socket", "tcp", "rfc2217")
    reopen = (lambda: _connect(url, pyserial_url, settings)) if network else None
    return SerialBus(port, redact(url), reopen=reopen, **bus_options)  # type: ignore[arg-type]


def _open_rfc2217(url: str, pyserial_url: str, settings: dict[str, object]) -> protocol_rfc2217.Serial:
    shown = redact(url)
    said: BusError | None = None  # the last refusal ser2net managed to get across
    for attempt in range(BUSY_RETRIES + 1):
        port: protocol_rfc2217.Serial = serial.serial_for_url(
            pyserial_url, timeout=READ_SLICE_S, do_not_open=True, **settings
        )
        tried_at = time.monotonic()
        try:
            port.open()
            return port
        except (serial.SerialException, OSError) as err:
            # ser2net refuses in band, then hangs up mid-negotiation (docs/protocol.md#ser2net). Our
            # option replies may then draw a TCP reset that discards its text, so an attempt can
            # end without the reason: remember the last one that came through.
            text = port.pending_after_hangup()
            port.close()
            # pyserial's SerialException is an OSError too; "Could not open port" is the TCP connect.
            if "Could not open port" in str(err):
                raise _open_error(url, err) from err
            # Plain telnet without COM-port control: the options are refused or never answered.
            plain_telnet = any(m in str(err) for m in ("not seem to support RFC2217", "not accept parameter"))
            if plain_telnet and not text:
                raise BusError(
                    f"{shown}: the server does not speak RFC 2217 (ser2net: accepter telnet(rfc2217),PORT "
                    "in ser2net.yaml, or remctl on a legacy ser2net.conf telnet line; a raw port is tcp://)"
                ) from err
            try:
                _raise_for_ser2net_text(shown, text)
            except PortBusy as busy:
                said = busy
            except BusError as refused:
                raise refused from err  # a missing device does not come back by retrying
            # ser2net refuses within milliseconds; a slow failure is something else: do not repeat it.
            if attempt == BUSY_RETRIES or (said is None and time.monotonic() - tried_at > 1.0):
                raise said or BusError(
                    f"{shown}: the server hung up during RFC 2217 negotiation (ser2net: device busy "
                    "or missing? its log says which; tcp:// shows its message)"
                ) from err
            log.warning("port_busy_reconnect", port=shown, after_s=BUSY_BACKOFF_S)
            time.sleep(BUSY_BACKOFF_S)  # ser2net frees the device a moment after a client leaves
    raise AssertionError("unreachable")


def _is_network(port: object) -> bool:
    if isinstance(port, protocol_tcp.Serial):
        return True
    # pyserial imports our RFC 2217 handler when a URL needs it: not imported, not one of its ports.
    rfc2217 = sys.modules.get(f"{urlhandler.__name__}.protocol_rfc2217")
    return rfc2217 is not None and isinstance(port, rfc2217.Serial)


def _pending_bytes(port: object) -> bytes:
    """Bytes a network stream received before it failed (empty for other ports)."""
    pending = getattr(port, "pending", None)
    if not callable(pending):
        return b""
    try:
        out = pending()
    except (OSError, serial.SerialException):
        return b""
    return out if isinstance(out, bytes) else b""


def _read_size(have: int, expected: int, waiting: int) -> int:
    """How many bytes to ask the port for: read() returns when it has them or after a read slice.

    Ask first for an exception reply's 5 bytes (a refused FC 65 must not sit a slice in the
    buffer), then for the rest of the normal reply, or for whatever is already waiting.
    """
    want = min(expected, _EXCEPTION_LENGTH) - have if have < _EXCEPTION_LENGTH else expected - have
    return max(1, want, waiting)


def _ser2net_line(text: bytes, marker: bytes) -> str:
    """ser2net's sentence around ``marker`` ("Port's device already in use"), telnet bytes left out."""
    at = text.find(marker)
    start, end = at, at + len(marker)
    while start > 0 and 0x20 <= text[start - 1] < 0x7F:
        start -= 1
    while end < len(text) and 0x20 <= text[end] < 0x7F:
        end += 1
    line = text[start:end].decode("ascii")
    first_capital = re.search(r"[A-Z]", line)  # a telnet option byte such as ',' may lead the run
    return line[first_capital.start() if first_capital else 0 :].strip()


def _raise_for_ser2net_text(name: str, text: bytes) -> None:
    """Turn ser2net's in-band error text into a BusError a user can act on."""
    if _SER2NET_BUSY in text:
        raise PortBusy(
            f"Serial port busy - {name}: ser2net answered '{_ser2net_line(text, _SER2NET_BUSY)}' "
            "(another client holds the port; stop it, or set kickolduser: true in ser2net's config)"
        )
    if _SER2NET_OPEN_FAIL in text:
        raise BusError(
            f"{name}: ser2net cannot open its serial device: '{_ser2net_line(text, _SER2NET_OPEN_FAIL)}' "
            "(check the connector's device path in ser2net's config, and write a define as *(dev))"
        )


def _lost_error(name: str, err: Exception) -> BusError:
    text = str(err)
    if not isinstance(err, OSError) and len(err.args) == 2 and isinstance(err.args[1], str):
        text = f"the device is gone: {err.args[1]}"  # termios.error(errno, text)
    if "closed by the server" in text or "reader thread died" in text or "disconnected" in text:
        return BusError(
            f"{name}: connection closed by the server (another client may have taken the port over: "
            "ser2net kickolduser)"
        )
    return BusError(f"{name}: {text}")


def open_bus(
    url: str,
    *,
    latency_s: float = DEFAULT_LATENCY_S,
    debug: bool = False,
    mqtt: MqttSettings | None = None,
) -> Bus:
    """Open whatever ``url`` names as a Bus.

    ``latency_s`` is the allowance above the wire time per attempt (for ``mqtt(s)://``, the wait
    for each reply, at least ``rpc_client.DEFAULT_TIMEOUT_S``). For ``mqtt(s)://`` URLs,
    ``mqtt`` carries the parsed settings (password file, CA); without it they come from the URL
    and the environment.
    """
    scheme = urlsplit(url).scheme.lower()
    if is_mqtt_url(url):
        from .mqtt import MqttSettings
        from .rpc_client import DEFAULT_TIMEOUT_S, MqttBus  # only the MQTT path needs paho

        # Through the bridge a reply may wait behind other clients' transactions: the line's
        # latency allowance is too short a wait, so it only counts when it is the longer one.
        timeout_s = max(DEFAULT_TIMEOUT_S, latency_s)
        return MqttBus.connect(mqtt or MqttSettings.from_url(url), timeout_s=timeout_s)
    path = Path(url)
    if not scheme and path.is_file():
        from .dump import DumpBus

        return DumpBus.from_file(path)
    return open_serial(url, latency_s=latency_s, debug=debug)
