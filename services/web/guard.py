"""What keeps ``web_aid_tool`` serving when a client is slow, greedy or hostile.

* Every connection must send a whole request's headers within ``header_timeout`` of connecting
  (or of its previous response), and a request's body within ``body_timeout``: a slowloris client
  dribbling bytes is cut off.
* At most ``max_connections`` connections are open. When a new one would exceed that, the oldest
  connection that is still waiting for its headers is closed to make room (a real browser sends
  its headers at once, so it is never the oldest waiting one for long); when none is waiting,
  the new one is refused.
* Connections are accepted by our own loop, not asyncio's: when the process runs out of file
  descriptors anyway, it stops accepting for a second and logs it once a minute, where asyncio's
  loop (3.11-3.13) would retry at once and log the error thousands of times a second.
* Requests must name one of our own host names (``Host``), so a page of another site that made
  its name resolve to us (DNS rebinding) never reaches a form or a register.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

log = structlog.get_logger("aurora.web")

HEADER_TIMEOUT_S: Final = 10.0
BODY_TIMEOUT_S: Final = 10.0
MAX_CONNECTIONS: Final = 256  # a household's browsers need a few dozen; far below the usual 1024 fds
FD_RESERVE: Final = 64  # descriptors besides connections: broker, log, threads, files being served
ACCEPT_BATCH: Final = 32  # connections accepted per wake-up, so one burst cannot starve the loop
ACCEPT_PAUSE_S: Final = 1.0  # no descriptor left: try accepting again after this
BACKLOG: Final = 128
LINGER_S: Final = 1.0  # reading what is left of a refused body, then the connection is closed
SUMMARY_S: Final = 60.0  # a repeated warning is logged at most once per this period
SERVER_NAME: Final = "web_aid_tool"  # the Server header: no versions for a scanner to match
OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Summary:
    """A warning that may repeat: the first is logged at once, then at most one per ``every_s``
    carrying how many were not logged in between. Logs stay bounded whatever a client does."""

    def __init__(self, event: str, every_s: float = SUMMARY_S, clock: Callable[[], float] = time.monotonic):
        self.event = event
        self.every_s = every_s
        self.clock = clock
        self.total = 0
        self._unlogged = 0
        self._last: float | None = None

    def note(self, **fields: Any) -> bool:
        """Count one occurrence; True when it was logged."""
        self.total += 1
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s:
            self._unlogged += 1
            return False
        log.warning(self.event, **fields, **({"not_logged": self._unlogged} if self._unlogged else {}))
        self._last, self._unlogged = now, 0
        return True


class _QuietServerLog(logging.Filter):
    """aiohttp logs each malformed request at ERROR with a traceback: a client could fill the disk.
    A malformed request is the client's mistake: one WARNING line (no traceback) per period. A
    failure of our own (a handler raised) keeps its traceback, but also at most once per period."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.summary = Summary("bad_request", clock=clock)
        self.clock = clock
        self._internal_at: float | None = None
        self._internal_dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or isinstance(exc, HttpProcessingError):
            self.summary.note(message=record.getMessage(), error=str(exc) if exc else None)
            return False
        now = self.clock()
        if self._internal_at is not None and now - self._internal_at < SUMMARY_S:
            self._internal_dropped += 1
            return False
        if self._internal_dropped:
            record.msg = f"{record.msg} ({self._internal_dropped} more since the last one not logged)"
        self._internal_at, self._internal_dropped = now, 0
        return True


def quiet_aiohttp_logs() -> None:
    """Route aiohttp's per-request error logs through one bounded summary (idempotent)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _QuietServerLog) for f in logger.filters):
        logger.addFilter(_QuietServerLog())


# -------------------------------------------------------------------------------- host names


def _host_name(host: str) -> str:
    """``Example.LAN.:4567`` → ``example.lan``; ``[::1]:4567`` → ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """The host names requests may address.

    Always: ``localhost`` and its subdomains, this machine's name (and ``NAME.local``), and any
    IP address (DNS rebinding needs a name the attacker controls). Plus ``extra``: names, or
    ``.example.lan`` for a domain and its subdomains, or ``*`` for any.
    """

    names: frozenset[str] = field(default_factory=frozenset)
    domains: tuple[str, ...] = ()
    any_host: bool = False

    @classmethod
    def build(cls, bind: str, extra: Iterable[str] = ()) -> AllowedHosts:
        """The defaults, the bind address when it is a name, and the user's ``extra`` entries."""
        machine = socket.gethostname().lower().rstrip(".")
        names = {"localhost", "localhost.localdomain", machine, machine.split(".", 1)[0] + ".local"}
        names.add(_host_name(bind))
        domains = [".localhost"]
        any_host = False
        for entry in extra:
            for item in entry.split(","):
                name = item.strip().lower().rstrip(".")
                if name == "*":
                    any_host = True
                elif name.startswith("."):
                    domains.append(name)
                elif name:
                    names.add(_host_name(name))
        return cls(frozenset(n for n in names if n), tuple(domains), any_host)

    def allows(self, host: str) -> bool:
        """Whether a request with this ``Host`` header (port included or not) is ours."""
        if self.any_host:
            return True
        name = _host_name(host)
        if not name:
            return False
        return (
            name in self.names or _is_ip(name) or any(name.endswith(d) or name == d[1:] for d in self.domains)
        )


def host_check(allowed: AllowedHosts) -> Any:
    """Middleware: refuse (421) a request for a host name that is not ours."""
    refused = Summary("host_refused")

    @web.middleware
    async def check(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        host = request.headers.get(hdrs.HOST)
        if host is not None and not allowed.allows(host):
            refused.note(host=host[:100], client=request.remote)
            raise web.HTTPMisdirectedRequest(
                text="this server does not answer to that host name "
                "(add it with --allowed-host or AURORA_WEB_ALLOWED_HOST)\n",
                content_type="text/plain",
            )
        result: web.StreamResponse = await handler(request)
        return result

    return check


# -------------------------------------------------------------------------------- connections


class Connection(web.RequestHandler):
    """aiohttp's HTTP protocol, with the guard's header timer and bookkeeping."""

    def __init__(self, guard: ConnectionGuard, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, loop=guard.loop, **kwargs)
        self.guard = guard
        self.waiting_since: float | None = None  # waiting for a request's headers since then
        self._timer: asyncio.TimerHandle | None = None
        self._buffered = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection and start its header timer."""
        super().connection_made(transport)
        self.guard.opened(self)
        self.waiting()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection."""
        self._cancel_timer()
        self.guard.closed(self)
        super().connection_lost(exc)

    def handle_error(self, request: Any, status: int = 500, exc: Any = None, message: Any = None) -> Any:
        """aiohttp's answer to a malformed request, without its version banner."""
        response = super().handle_error(request, status, exc, message)
        response.headers[hdrs.SERVER] = SERVER_NAME
        return response

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def waiting(self) -> None:
        """Headers are due now (a new connection, or the previous response is done)."""
        self._cancel_timer()
        self.waiting_since = self.guard.loop.time()
        self._buffered = -1
        self._timer = self.guard.loop.call_later(self.guard.header_timeout, self._expire)

    def busy(self) -> None:
        """A request's headers arrived: its handler runs, no header timer."""
        self._cancel_timer()
        self.waiting_since = None

    def _expire(self) -> None:
        self._timer = None
        transport = self.transport
        if self.waiting_since is None or transport is None:
            return
        buffered = transport.get_write_buffer_size()
        if buffered and (self._buffered < 0 or buffered < self._buffered):
            # The previous response is still being read, slowly but surely: give it more time.
            self._buffered = buffered
            self._timer = self.guard.loop.call_later(self.guard.header_timeout, self._expire)
            return
        self.guard.timed_out += 1
        self.drop()

    def drop(self) -> None:
        """Close now, whatever is buffered."""
        self._cancel_timer()
        self.waiting_since = None
        if self.transport is not None:
            self.transport.abort()


class ConnectionGuard:
    """Accepts connections on our listening sockets, within the limits described above."""

    def __init__(
        self,
        runner: web.AppRunner,
        *,
        max_connections: int = MAX_CONNECTIONS,
        header_timeout: float = HEADER_TIMEOUT_S,
    ) -> None:
        assert runner.server is not None, "runner.setup() first"
        self.loop = asyncio.get_running_loop()
        self.server = runner.server
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.connections: dict[Connection, None] = {}  # insertion order: oldest first
        self.pending = 0  # accepted, transport not made yet
        self.sockets: list[socket.socket] = []
        self.timed_out = self.evicted = self.refused = 0
        self._paused: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._full = Summary("connections_full")
        self._exhausted = Summary("out_of_file_descriptors")
        self._accept_failed = Summary("accept_failed")

    # ---------------------------------------------------------------- listening

    def listen(self, host: str, port: int) -> list[tuple[str, int]]:
        """Bind every address ``host`` names (port 0: one free port for all) and start accepting."""
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        seen: set[tuple[int, Any]] = set()
        try:
            for family, kind, proto, _name, resolved in infos:
                address = resolved
                if (family, address) in seen:
                    continue
                seen.add((family, address))
                sock = socket.socket(family, kind, proto)
                self.sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and len(self.sockets) > 1:
                    address = (address[0], self.sockets[0].getsockname()[1], *address[2:])
                sock.bind(address)
                sock.listen(BACKLOG)
                sock.setblocking(False)
        except OSError:
            self.close()
            raise
        self._check_fd_limit()
        self._resume()
        return [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in self.sockets]

    def _check_fd_limit(self) -> None:
        need = self.max_connections + FD_RESERVE + ACCEPT_BATCH
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < need:
            target = need if hard == resource.RLIM_INFINITY else min(need, hard)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
        if soft != resource.RLIM_INFINITY and soft < need:
            log.warning(
                "fd_limit_low",
                max_connections=self.max_connections,
                fd_limit=soft,
                hint=f"lower --max-connections to {max(1, soft - FD_RESERVE - ACCEPT_BATCH)} "
                f"or raise the limit (ulimit -n, LimitNOFILE=) to {need}",
            )

    def _resume(self) -> None:
        self._paused = None
        for sock in self.sockets:
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _pause(self) -> None:
        for sock in self.sockets:
            self.loop.remove_reader(sock.fileno())
        if self._paused is None:
            self._paused = self.loop.call_later(ACCEPT_PAUSE_S, self._resume)

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as err:
                if err.errno in OUT_OF_RESOURCES:
                    # Free what idles (their clients can reconnect) and wait instead of spinning.
                    for victim in self._waiting_oldest_first()[:ACCEPT_BATCH]:
                        victim.drop()
                    self._exhausted.note(
                        error=err.strerror, open=len(self.connections), pause_s=ACCEPT_PAUSE_S
                    )
                else:
                    self._accept_failed.note(error=str(err))
                self._pause()
                return
            if not self._admit():
                conn.close()
                continue
            self.pending += 1
            conn.setblocking(False)
            task = self.loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.protocol, sock=conn)
        except OSError:
            conn.close()
        finally:
            self.pending -= 1

    def protocol(self) -> Connection:
        """A new connection's protocol (aiohttp's, with our timers)."""
        return Connection(
            self,
            self.server,
            keepalive_timeout=self.header_timeout,
            lingering_time=LINGER_S,
            access_log=None,
        )

    def _waiting_oldest_first(self) -> list[Connection]:
        waiting = [c for c in self.connections if c.waiting_since is not None]
        waiting.sort(key=lambda c: c.waiting_since or 0.0)
        return waiting

    def _admit(self) -> bool:
        """Room for one more connection, made by closing the oldest waiting one if need be."""
        if len(self.connections) + self.pending < self.max_connections:
            return True
        waiting = self._waiting_oldest_first()
        if waiting:
            waiting[0].drop()
            self.evicted += 1
            self.connections.pop(waiting[0], None)  # its fd closes on the next loop turn
            self._full.note(limit=self.max_connections, action="closed the oldest waiting connection")
            return True
        self.refused += 1
        self._full.note(limit=self.max_connections, action="refused a new connection")
        return False

    def opened(self, conn: Connection) -> None:
        """Bookkeeping: a connection is up."""
        self.connections[conn] = None

    def closed(self, conn: Connection) -> None:
        """Bookkeeping: a connection is gone."""
        self.connections.pop(conn, None)

    def close(self) -> None:
        """Stop accepting and close the listening sockets (open connections are the runner's)."""
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        for sock in self.sockets:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(sock.fileno())
            sock.close()
        self.sockets.clear()


def request_middleware(body_timeout: float = BODY_TIMEOUT_S) -> Any:
    """Middleware: marks a connection busy while its request runs; reads the body within its time."""
    body_slow = Summary("request_body_timeout")

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        conn = request.protocol
        if isinstance(conn, Connection):
            conn.busy()
        try:
            if request.can_read_body:
                if request.content_type.startswith("multipart/"):
                    # read() below would leave multipart() nothing to parse; no page of ours sends it.
                    raise web.HTTPUnsupportedMediaType(
                        text="multipart bodies are not accepted\n", content_type="text/plain"
                    )
                try:
                    async with asyncio.timeout(body_timeout):
                        await request.read()  # kept by aiohttp for post() and json()
                except TimeoutError:
                    body_slow.note(client=request.remote, path=request.path[:100])
                    response = web.Response(
                        status=408, text="request body too slow\n", content_type="text/plain"
                    )
                    response.force_close()
                    return response
            result: web.StreamResponse = await handler(request)
            return result
        finally:
            if isinstance(conn, Connection) and conn.transport is not None:
                conn.waiting()

    return guard


async def no_banner(_request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: our name only in ``Server`` (aiohttp's names Python and itself)."""
    response.headers[hdrs.SERVER] = SERVER_NAME
