"""Virtual ports: ModBus tools share the bridge's line over TCP, raw RTU (like ser2net) and Modbus/TCP.

One asyncio loop on a thread of its own serves every connection: the bridge's other parts are
threads around the one bus worker, and an event loop gives each client its buffers, timeouts and
back-pressure without a thread per client, so a slow or hostile client only ever holds its own
connection. Requests are parsed and checked (vport_frames) on the loop, run on the bus worker as
one job each, and the worker's done-callback hands the result back with call_soon_threadsafe.

Fairness: each connection has at most one job on the worker. A quiet connection's request goes
in the worker's INTERACTIVE class (a write: WRITE, as a /set), one such job at a time; a
connection sending back to back, reads or writes, goes in BULK, which takes turns with the other
classes and the poller one transaction each (worker.py), so twenty busy clients and the poller
share the line and Homie values keep updating. Identical reads in flight share one transaction,
and the worker may merge distinct reads into one; each client still gets its own reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

import structlog
from aurora import rtu
from aurora.bus import Bus
from aurora.errors import AuroraError, ExceptionReply
from aurora.query import Chunk

from . import vport_frames as vf

# The settings live apart so that the command line is read without importing asyncio (issue 15).
from .vport_config import VportConfig, parse_listen
from .worker import WRITE_EXPIRES_S, Priority

__all__ = ["VirtualPorts", "VportConfig", "parse_listen"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

FRAME_GAP_S = 0.5  # a partial RTU frame this old is dropped, as a board drops one after a pause
IDLE_GAP_S = 0.25  # a connection quiet this long goes ahead of polling with its next request
MAX_IN = 2048  # bytes buffered from one client; reading pauses beyond (TCP pushes back)
MAX_OUT = 65536  # replies a client does not read: past this it is disconnected
SEND_BUFFER = 16384  # the kernel's send buffer per client
LOG_BURST = 20  # warnings per LOG_WINDOW_S about what clients send; more are only counted
LOG_WINDOW_S = 60.0
LOG_WRITES = 60  # write lines per LOG_WINDOW_S
STOP_S = 5.0


class Submitter(Protocol):
    """What the virtual ports need from BusWorker."""

    line_up: bool

    def submit(
        self,
        run: Callable[[Bus], T],
        priority: Priority = ...,
        *,
        key: Hashable | None = ...,
        reads: tuple[tuple[int, int], ...] | None = ...,
        expires_s: float | None = ...,
    ) -> Future[T]: ...


class _Throttled:
    """Log lines caused by clients, at most ``burst`` per LOG_WINDOW_S: a client connecting, writing
    or sending garbage in a loop cannot fill the log (the rest are counted, then summed up)."""

    def __init__(self, burst: int = LOG_BURST) -> None:
        self._burst = burst
        self._window = 0.0
        self._count = 0
        self.suppressed = 0

    def _allowed(self) -> bool:
        now = time.monotonic()
        if now - self._window > LOG_WINDOW_S:
            if self.suppressed:
                log.warning("vport_log_lines_suppressed", count=self.suppressed, window_s=LOG_WINDOW_S)
            self._window, self._count, self.suppressed = now, 0, 0
        self._count += 1
        if self._count <= self._burst:
            return True
        self.suppressed += 1
        return False

    def warning(self, event: str, **fields: Any) -> None:
        if self._allowed():
            log.warning(event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        if self._allowed():
            log.info(event, **fields)


class VirtualPorts:
    """The listeners and their clients; ``start`` binds (raising OSError), ``stop`` closes all."""

    def __init__(
        self,
        config: VportConfig,
        worker: Submitter,
        *,
        on_written: Callable[[Mapping[int, int]], None] | None = None,
    ) -> None:
        self.config = config
        self._worker = worker
        self._on_written = on_written or (lambda words: None)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vports", daemon=True)
        self._servers: list[asyncio.Server] = []
        self._conns: set[_Conn] = set()
        self._interactive = 0  # jobs queued ahead of polling right now (at most one)
        self.addresses: dict[str, tuple[str, int]] = {}  # "rtu"/"modbus_tcp" -> where it listens
        self.log = _Throttled()  # what clients get wrong
        self.events = _Throttled()  # connections coming and going
        self.writes_log = _Throttled(LOG_WRITES)  # writes made: worth seeing, bounded all the same
        self.counters: dict[str, int] = {
            "clients": 0,  # connected now
            "connections": 0,
            "refused_clients": 0,  # over --vport-max-clients
            "requests": 0,
            "replies": 0,
            "exceptions": 0,  # exception replies sent, the board's and the bridge's
            "writes": 0,  # write requests the board confirmed
            "refused_writes": 0,  # never sent to the board
            "unanswered": 0,  # forwarded, but the line was down or the board did not answer
            "bytes_in": 0,
            "garbage_bytes": 0,  # dropped while looking for a frame
            "ignored": 0,  # frames for another slave, stale replies
            "idle_closed": 0,
        }

    # ------------------------------------------------------------ life

    def start(self) -> None:
        """Bind the configured ports and serve on the loop thread; OSError if a port cannot be bound."""
        self._thread.start()
        try:
            for kind, where in (("rtu", self.config.rtu), ("modbus_tcp", self.config.modbus_tcp)):
                if where is None:
                    continue
                server = asyncio.run_coroutine_threadsafe(self._listen(kind, *where), self._loop).result(
                    STOP_S
                )
                self._servers.append(server)
                sockname = server.sockets[0].getsockname()
                self.addresses[kind] = (sockname[0], sockname[1])
                log.info(
                    "vport_listening",
                    kind=kind,
                    host=sockname[0],
                    port=sockname[1],
                    read_only=self.config.read_only,
                )
        except BaseException:
            self.stop()
            raise

    async def _listen(self, kind: str, host: str, port: int) -> asyncio.Server:
        return await self._loop.create_server(lambda: _Conn(self, kind), host, port, reuse_address=True)

    def stop(self) -> None:
        """Close the listeners and every connection; jobs in flight finish on the worker unseen."""
        if not self._thread.is_alive():
            return

        async def close() -> None:
            for server in self._servers:
                server.close()
            for conn in list(self._conns):
                conn.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:  # connections waiting for the worker: their jobs finish unseen
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for server in self._servers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 1.0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(STOP_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_S)
        if not self._thread.is_alive():
            self._loop.close()

    def health(self) -> dict[str, int]:
        """The counters for the ``$health`` document."""
        return dict(self.counters)

    # ------------------------------------------------------------ connections (loop thread)

    def admit(self, conn: _Conn) -> bool:
        if len(self._conns) >= self.config.max_clients:
            self.counters["refused_clients"] += 1
            self.log.warning(
                "vport_client_refused", kind=conn.kind, peer=conn.peer, limit=self.config.max_clients
            )
            return False
        self._conns.add(conn)
        self.counters["connections"] += 1
        self.counters["clients"] = len(self._conns)
        self.events.info("vport_client", kind=conn.kind, peer=conn.peer, clients=len(self._conns))
        return True

    def left(self, conn: _Conn) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            self.counters["clients"] = len(self._conns)
            self.events.info("vport_client_left", kind=conn.kind, peer=conn.peer, requests=conn.requests)

    # ------------------------------------------------------------ one request (loop thread)

    async def answer(self, conn: _Conn, request: rtu.Request) -> tuple[bytes | None, int | None]:
        """(RTU reply frame, None), (None, exception code the bridge gives), or (None, None) for silence.

        The request's slave is the board's. Nothing refused here reaches the line.
        """
        self.counters["requests"] += 1
        code = vf.refusal(
            request, read_only=self.config.read_only, allow_raw_writes=self.config.allow_raw_writes
        )
        if code is not None:
            if request.function in vf.WRITES:
                self.counters["refused_writes"] += 1
                self.log.warning(
                    "vport_write_refused",
                    peer=conn.peer,
                    writes=[list(w) for w in request.writes[:8]],
                    code=code,
                    read_only=self.config.read_only,
                )
            return None, code
        if not self._worker.line_up:
            # Queued, a write would run whenever the line comes back, maybe hours later.
            if request.function in vf.WRITES:
                self.counters["refused_writes"] += 1
            self.counters["unanswered"] += 1
            return None, vf.GATEWAY_NO_RESPONSE
        # Ahead of polling only for a client that was quiet, and one such job at a time: a client
        # reading or writing back to back takes turns with the poller instead (module docstring).
        interactive = self._interactive == 0 and time.monotonic() - conn.last_done >= IDLE_GAP_S
        future = self._submit(conn, request, interactive)
        if interactive:
            self._interactive += 1
        try:
            result = await self._result(future)
        except ExceptionReply as err:
            return rtu.encode_exception(request, err.code), None  # the board's own exception reply
        except AuroraError as err:  # timeout, garbled replies, lost line: the board said nothing usable
            self.counters["unanswered"] += 1
            self.log.warning("vport_unanswered", peer=conn.peer, function=request.function, error=str(err))
            return None, vf.GATEWAY_NO_RESPONSE
        except Exception:  # a bug: this client gets no answer, the others carry on
            self.counters["unanswered"] += 1
            log.exception("vport_request_failed", peer=conn.peer, function=request.function)
            return None, vf.GATEWAY_NO_RESPONSE
        finally:
            if interactive:
                self._interactive -= 1
        if request.function in vf.WRITES:
            self.counters["writes"] += 1
            return rtu.encode_reply(request), None
        return rtu.encode_reply(request, result), None

    def _submit(self, conn: _Conn, request: rtu.Request, interactive: bool) -> Future[list[int]]:
        f = request.function
        if f in vf.WRITES:
            self.writes_log.info(
                "vport_write", peer=conn.peer, function=f, writes=[list(w) for w in request.writes]
            )
            # A quiet client's write goes first, as a /set does; back to back, writes take turns
            # with the poller like a long query's reads (three such writers starved it otherwise).
            # Expiring: queued when the line goes down, it is refused, never made when the line returns.
            return self._worker.submit(
                self._write_job(request),
                Priority.WRITE if interactive else Priority.BULK,
                expires_s=WRITE_EXPIRES_S,
            )
        priority = Priority.INTERACTIVE if interactive else Priority.BULK
        if f == rtu.FunctionCode.READ_HOLDING:
            ((start, count),) = request.ranges

            def holding(bus: Bus) -> list[int]:
                return bus.read_holding(start, count)

            # The keys the poller and the $modbus pass-through use: identical reads share one transaction.
            return self._worker.submit(holding, priority, key=("holding", request.ranges))
        chunk = Chunk(request.ranges)
        # Distinct reads of several clients may share one transaction (each gets exactly its words).
        return self._worker.submit(chunk.read, priority, key=("read", request.ranges), reads=request.ranges)

    def _write_job(self, request: rtu.Request) -> Callable[[Bus], list[int]]:
        writes = request.writes

        def job(bus: Bus) -> list[int]:
            applied: dict[int, int] = {}
            try:
                # One FC 16 or FC 67, as the client sent it, where the bus has them (SerialBus);
                # otherwise confirmed FC 6 writes in this one job, nothing else between them.
                block = getattr(bus, "write_block", None)
                listed = getattr(bus, "write_list", None)
                if request.function == rtu.FunctionCode.WRITE_MULTIPLE and block is not None:
                    block(writes[0][0], [v for _, v in writes])
                    applied.update(writes)
                elif request.function == rtu.FunctionCode.WRITE_REGISTERS and listed is not None:
                    listed(list(writes))
                    applied.update(writes)
                else:
                    for address, value in writes:
                        bus.write_register(address, value)
                        applied[address] = value
            finally:
                if applied:
                    self._on_written(applied)  # poll cache and Homie values learn of it now
            return []

        return job

    async def _result(self, future: Future[list[int]]) -> list[int]:
        # Not asyncio.wrap_future: cancelling its wrapper would cancel the worker's future, which
        # a coalesced read shares with the poller and other clients.
        waiter: asyncio.Future[list[int]] = self._loop.create_future()

        def deliver(done: Future[list[int]]) -> None:
            if waiter.done():
                return
            err = done.exception() if not done.cancelled() else asyncio.CancelledError()
            if err is not None:
                waiter.set_exception(err)
            else:
                waiter.set_result(done.result())

        def on_done(done: Future[list[int]]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the bridge is stopping
                self._loop.call_soon_threadsafe(deliver, done)

        future.add_done_callback(on_done)
        return await waiter


class _Conn(asyncio.Protocol):
    """One client connection: a bounded input buffer and a task serving its requests in order."""

    def __init__(self, ports: VirtualPorts, kind: str) -> None:
        self.ports = ports
        self.kind = kind
        self.peer = "?"
        self.buf = bytearray()
        self.received = 0  # bytes ever received (an RTU reply is dropped if newer bytes came)
        self.requests = 0
        self.last_done = 0.0
        self.transport: asyncio.Transport | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._paused = False
        self._task: asyncio.Task[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if not self.ports.admit(self):
            transport.abort()
            self._closed = True
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Replies are small: a small kernel buffer finds a client that does not read them
            # after kilobytes, not megabytes (MAX_OUT counts what piles up beyond it).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.received += len(data)
        self.ports.counters["bytes_in"] += len(data)
        self._wake.set()
        if len(self.buf) >= MAX_IN and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._wake.set()
        self.ports.left(self)

    def abort(self) -> None:
        """Drop the connection now."""
        if self.transport is not None:
            self.transport.abort()

    # serving
    def consume(self, n: int) -> None:
        del self.buf[:n]
        if self._paused and len(self.buf) < MAX_IN // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    async def _more(self, timeout_s: float) -> bool:
        """Wait for bytes; False when none came within ``timeout_s`` (or the client left)."""
        self._wake.clear()
        if self._closed:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(timeout_s, 0.0))
        return self._wake.is_set() and not self._closed

    def send(self, data: bytes) -> None:
        if self.transport is None or self._closed:
            return
        self.transport.write(data)
        self.ports.counters["replies"] += 1
        if self.transport.get_write_buffer_size() > MAX_OUT:
            self.ports.log.warning("vport_client_not_reading", peer=self.peer)
            self.transport.abort()

    async def _serve(self) -> None:
        try:
            if self.kind == "rtu":
                await self._serve_rtu()
            else:
                await self._serve_mbap()
        except Exception:  # a bug must cost this connection only
            log.exception("vport_connection_failed", peer=self.peer)
        finally:
            if self.transport is not None and not self._closed:
                self.transport.close()

    def _idle_for(self, since: float) -> bool:
        """True (and the connection closed) when no complete request came for the idle timeout:
        bytes dribbled in without ever making a request do not keep a client's place."""
        if time.monotonic() - since <= self.ports.config.idle_timeout_s:
            return False
        self.ports.counters["idle_closed"] += 1
        self.ports.events.info("vport_idle_closed", peer=self.peer, idle_s=self.ports.config.idle_timeout_s)
        return True

    async def _idle(self, since: float) -> bool:
        """Wait for bytes up to the idle deadline; False (and the connection closed) at the deadline."""
        left = since + self.ports.config.idle_timeout_s - time.monotonic()
        if await self._more(left):
            return True
        if not self._closed:
            self.ports.counters["idle_closed"] += 1
            self.ports.events.info(
                "vport_idle_closed", peer=self.peer, idle_s=self.ports.config.idle_timeout_s
            )
        return False

    async def _serve_rtu(self) -> None:
        ports = self.ports
        last_request = time.monotonic()
        while not self._closed:
            if self._idle_for(last_request):
                return
            frame = vf.take_rtu(self.buf)
            if frame is None:
                if not self.buf:
                    if not await self._idle(last_request):
                        return
                    continue
                # Part of a frame: the rest must follow soon, or the part is dropped.
                if not await self._more(FRAME_GAP_S) and not self._closed:
                    ports.counters["garbage_bytes"] += len(self.buf)
                    self.consume(len(self.buf))
                continue
            if frame.request is None and frame.unknown is None:
                ports.counters["garbage_bytes"] += frame.used
                self.consume(frame.used)
                await asyncio.sleep(0)  # a client sending garbage gets no more of the loop than others
                continue
            self.consume(frame.used)
            mark = self.received
            last_request = time.monotonic()
            self.requests += 1
            reply = await self._rtu_answer(frame)
            self.last_done = time.monotonic()
            if reply is None:
                continue
            if self.received != mark:
                # The client sent again while waiting: it gave up on this request (its timeout is
                # shorter than the queue), and a late reply would be taken for the next one's.
                ports.counters["ignored"] += 1
                continue
            self.send(reply)

    async def _rtu_answer(self, frame: vf.RtuFrame) -> bytes | None:
        ports = self.ports
        if frame.unknown is not None:
            slave, function = frame.unknown
            if slave != vf.BOARD_SLAVE:
                ports.counters["ignored"] += 1
                return None
            ports.counters["requests"] += 1
            ports.counters["exceptions"] += 1
            return vf.rtu_exception(slave, function, vf.ILLEGAL_FUNCTION)
        request = frame.request
        assert request is not None
        if request.slave != vf.BOARD_SLAVE:
            ports.counters["ignored"] += 1  # on a shared RS-485 line another slave would answer
            return None
        reply, code = await ports.answer(self, request)
        if code == vf.GATEWAY_NO_RESPONSE:
            return None  # what ser2net and a silent board give: nothing
        if code is not None:
            ports.counters["exceptions"] += 1
            return rtu.encode_exception(request, code)
        if reply is not None and reply[1] & 0x80:
            ports.counters["exceptions"] += 1
        return reply

    async def _serve_mbap(self) -> None:
        ports = self.ports
        last_request = time.monotonic()
        while not self._closed:
            if self._idle_for(last_request):
                return
            try:
                frame = vf.take_mbap(self.buf)
            except vf.MbapError as err:
                ports.log.warning("vport_bad_mbap", peer=self.peer, reason=str(err))
                ports.counters["garbage_bytes"] += len(self.buf)
                return
            if frame is None:
                if not self.buf:
                    if not await self._idle(last_request):
                        return
                    continue
                if not await self._more(FRAME_GAP_S * 4) and not self._closed:
                    ports.log.warning("vport_partial_mbap", peer=self.peer, held=len(self.buf))
                    ports.counters["garbage_bytes"] += len(self.buf)
                    return  # an MBAP stream cannot resynchronise: close, as Modbus/TCP servers do
                continue
            self.consume(frame.used)
            last_request = time.monotonic()
            self.requests += 1
            reply = await self._mbap_answer(frame)
            self.last_done = time.monotonic()
            self.send(reply)

    async def _mbap_answer(self, frame: vf.MbapFrame) -> bytes:
        ports = self.ports
        if frame.unit not in vf.MBAP_UNITS:
            ports.counters["requests"] += 1
            ports.counters["exceptions"] += 1
            return vf.mbap_exception(frame, vf.GATEWAY_NO_RESPONSE)
        if frame.request is None:
            ports.counters["requests"] += 1
            ports.counters["exceptions"] += 1
            return vf.mbap_exception(frame, frame.code or vf.ILLEGAL_VALUE)
        # The board is slave 1 whatever unit id the client used (1 or 255).
        request = frame.request
        board_request = rtu.Request(
            vf.BOARD_SLAVE, request.function, request.ranges, request.writes, request.raw
        )
        reply, code = await ports.answer(self, board_request)
        if code is not None:
            ports.counters["exceptions"] += 1
            return vf.mbap_exception(frame, code)
        assert reply is not None
        if reply[1] & 0x80:
            ports.counters["exceptions"] += 1
        return vf.mbap_reply(frame, reply)
