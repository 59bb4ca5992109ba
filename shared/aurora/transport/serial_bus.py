"""RTU transactions over one byte stream (docs/protocol.md#timing): the per-attempt allowance,
retries of silent and garbled attempts, stale and late bytes kept out of the next reply, writes
confirmed by reading back, and a reconnect when ser2net says its device is busy."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import serial

from .. import rtu
from ..bus import BusStats
from ..errors import (
    BusTimeout,
    ExceptionReply,
    FrameError,
    IllegalAddress,
    IllegalFunction,
)
from ..logs import get_logger
from ..rtu import DEFAULT_LATENCY_S
from ..urls import redact
from .port_urls import for_pyserial, open_error
from .ser2net import BUSY_BACKOFF_S, BUSY_RETRIES, PortBusy, lost_error, raise_for_ser2net_text
from .streams import LINE_ERRORS, connect, is_network, open_stream, pending_bytes

if TYPE_CHECKING:
    from tenacity import RetryCallState

log = get_logger(__name__)  # structlog only once something logs (issue 15)

DEFAULT_ATTEMPTS = 3
GARBLED_EXTRA = 2  # further attempts a transaction gets when replies came back garbled
# Silence after some bytes that ends an attempt early. A reply's bytes follow one another within
# 0.6 ms on the wire, and ser2net forwards them as they come (chardelay off) or a frame at a time
# (its default), so 0.1 s of silence in mid-reply means it is broken; at worst an intact but
# stalled reply costs a retry.
GARBLED_QUIET_S = 0.1
_EXCEPTION_LENGTH = 5  # uid, function | 0x80, code, CRC
_STALE_LIMIT = 4096  # bytes read off a network port before each request, at most


def _describe_attempt(state: RetryCallState) -> None:
    err = state.outcome.exception() if state.outcome else None
    log.warning("bus_retry", attempt=state.attempt_number, error=str(err))


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
                    raise_for_ser2net_text(self.name, bytes(buf))
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
            text = bytes(buf) + pending_bytes(self._port)
            raise_for_ser2net_text(self.name, text)
            raise lost_error(self.name, err) from err
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
        if not is_network(self._port):
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
            raise_for_ser2net_text(self.name, bytes(stale) + pending_bytes(self._port))
            raise
        if stale:
            self.stats.extra["stale_bytes"] = self.stats.extra.get("stale_bytes", 0) + len(stale)
            raise_for_ser2net_text(self.name, bytes(stale))
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
                raise_for_ser2net_text(self.name, data)
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
            raise open_error(self.name, err) from err
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


def open_serial(url: str, **bus_options: object) -> SerialBus:
    """Open a device path, tcp://, telnet:// or rfc2217:// port as a SerialBus."""
    port = open_stream(url)
    pyserial_url, settings = for_pyserial(url)
    network = urlsplit(pyserial_url).scheme in ("socket", "tcp", "rfc2217")
    reopen = (lambda: connect(url, pyserial_url, settings)) if network else None
    return SerialBus(port, redact(url), reopen=reopen, **bus_options)  # type: ignore[arg-type]


def _read_size(have: int, expected: int, waiting: int) -> int:
    """How many bytes to ask the port for: read() returns when it has them or after a read slice.

    Ask first for an exception reply's 5 bytes (a refused FC 65 must not sit a slice in the
    buffer), then for the rest of the normal reply, or for whatever is already waiting.
    """
    want = min(expected, _EXCEPTION_LENGTH) - have if have < _EXCEPTION_LENGTH else expected - have
    return max(1, want, waiting)
