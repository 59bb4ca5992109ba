"""The bridge's ``$modbus`` pass-through: the JSON request/response protocol and the original's topics.

Everything arrives on paho's thread, which checks a request's size and its client's in-flight
count; a small request (``INLINE_MAX_BYTES``) it parses too, and hands a read, ping or write
straight to the bus worker. Parsing large requests, planning queries and building their replies
run on one preparation thread (``modbus-prep``), bus work on the bus worker, so no request,
however large or frequent, holds up paho's thread (and with it every other client's request and
every ``/set``) for more than the few µs of parsing a small one. Each JSON request
takes one in-flight slot of its client, given back by the one reply it gets, whichever path sends it.

Unlike the original (docs/architecture.md#modbus-passthrough, docs/architecture.md#original-bridge P1-P7, S1,
R5, K2): every JSON request gets exactly one reply on the client's own topic, raw writes follow the register
map's write rules, ``0x5555`` is 0x5555,
subscriptions come back after every reconnect (the publisher re-subscribes), and long queries
go chunk by chunk between poll reads instead of freezing the bus.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import paho.mqtt.client as mqtt
import structlog
from aurora import registers, rpc
from aurora.bus import Bus
from aurora.errors import AuroraError, BusError, UsageError, WriteRefused
from aurora.logs import Repeats
from aurora.query import continued_spans, parse_query, with_continuations
from aurora.readplan import Chunk, Depth, ReadPlan, Rules, plan_chunks, without
from aurora.render import render_line
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .worker import WRITE_EXPIRES_S, Priority

log = structlog.get_logger(__name__)

T = TypeVar("T")

MAX_INFLIGHT_PER_CLIENT = 16  # requests of one client queued or running; more get "busy"
# One account's clients together: an account opening many connections cannot take every slot,
# the other accounts always have MAX_INFLIGHT - MAX_INFLIGHT_PER_USER (128) left. Half of all, so
# that a burst of 200 clients over the three accounts that may use the pass-through (67 each) is
# not told "busy": with 64, some were, and asked again behind everyone. What an account holds
# costs the others no more turns than before: the bus worker takes jobs round-robin by account.
MAX_INFLIGHT_PER_USER = 128
# A request this small is parsed on paho's thread (a few µs) instead of the preparation thread's.
INLINE_MAX_BYTES = 1024
MAX_INFLIGHT = 256  # all clients together: the queue in front of a 19200-baud line stays short
# A job of fallback reads holds the line this long at most (some 5 transactions at 19200 baud):
# a poll or a /set waits no longer behind it than behind one 100-register read.
FALLBACK_JOB_S = 0.05
LEGACY = "(legacy)"  # the in-flight bucket of the original's topics, which carry no client id
_MAX_LOGGED = 64


class Submitter(Protocol):
    """What the pass-through needs from BusWorker."""

    def submit(
        self,
        run: Callable[[Bus], T],
        priority: Priority = ...,
        *,
        key: Hashable | None = ...,
        expires_s: float | None = ...,
        reads: tuple[tuple[int, int], ...] | None = ...,
        owner: Hashable | None = ...,
    ) -> Future[T]: ...


class PublishFn(Protocol):
    """The bridge's non-blocking publish (callable from any thread)."""

    def __call__(
        self,
        topic: str,
        payload: str | bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None: ...


CacheLookup = Callable[[int], "tuple[int, float] | None"]


def _account(client: str) -> str:
    """The account of a client (``user/client-id``): the bus worker takes accounts' jobs in turn."""
    return client.partition("/")[0]


def _shown(payload: bytes | bytearray) -> str:
    text = payload[:_MAX_LOGGED].decode("utf-8", "replace")
    return text + ("…" if len(payload) > _MAX_LOGGED else "")


@dataclass(slots=True)
class _Reply:
    """Where and how one JSON request is answered; ``send`` may be called once."""

    topic: str
    client: str
    request_id: rpc.RequestId
    properties: Properties | None
    started: float = field(default_factory=time.monotonic)
    sent: bool = False
    slot: bool = False  # holds one of its client's in-flight slots, released by the reply
    writable: bool = False  # came on a write topic, which the broker lets only writers publish on


@dataclass(slots=True, eq=False)
class _QueryRun:
    """One query in progress: its read plan (which holds what was read and what failed) and what
    this driver counts."""

    plan: ReadPlan
    cached: int = 0
    transactions: int = 0  # transactions this query ran itself (a shared one counts for its owner)
    jobs: int = 0
    progress: Callable[[_QueryRun, Chunk], None] | None = None  # after each request that answered
    ahead: bool = True  # the first request takes an interactive turn (else a bulk one)
    pending: Chunk | None = None  # the plan's next request, taken by a fallback job for the next job
    ended: bool = False  # a fallback job found the plan at its end
    owner: str = LEGACY  # whose turn its jobs take at the bus worker (the client's account)

    @property
    def words(self) -> dict[int, int]:
        """What was read so far (cached words included)."""
        return self.plan.values

    @property
    def failed(self) -> Mapping[int, AuroraError]:
        """Why the others are missing (spans: an `all` query's are a few hundred, not 62,000)."""
        return self.plan.failed


def query_rules(fallback: bool) -> Rules:
    """A ``$modbus`` query's read policy (docs/protocol.md#fallback): with a keyword or
    ``skip_missing`` a refused request is taken apart down to the registers the board has, else
    the first refusal is the answer. Single registers go by FC 66, which the bus worker can merge
    with other clients' reads."""
    return Rules(depth=Depth.REGISTERS if fallback else Depth.NONE)


class PassThrough:
    """Serves ``<root>/$modbus`` for one device (constructed by the bridge runtime, app.py)."""

    def __init__(
        self,
        *,
        worker: Submitter,
        publish: PublishFn,
        root: str,
        allow_raw_writes: bool = False,
        cache: CacheLookup | None = None,
        on_written: Callable[[Mapping[int, int]], None] | None = None,
        max_inflight_per_client: int = MAX_INFLIGHT_PER_CLIENT,
        max_inflight: int = MAX_INFLIGHT,
    ) -> None:
        self._worker = worker
        self._publish = publish
        self.root = root
        self.base = rpc.modbus_base(root)
        self.allow_raw_writes = allow_raw_writes
        self._cache = cache or (lambda address: None)
        # The bridge's poll cache and Homie values learn of raw writes at once, not a poll later.
        self._on_written = on_written or (lambda words: None)
        self._max_per_client = max_inflight_per_client
        self._max_inflight = max_inflight
        self._request_prefixes = tuple(f"{self.base}/{kind}/" for kind in rpc.REQUEST_KINDS)
        self._response_prefix = f"{self.base}/{rpc.RESPONSE}/"
        self._getregs = f"{self.base}/{rpc.GETREGS}"
        self._lock = threading.Lock()
        self._prep = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modbus-prep")
        self._inflight: dict[str, int] = {}
        self._written: dict[int, float] = {}  # address -> monotonic time of our last write to it
        # A flood of refused requests logs its first one in full, then a count a minute.
        self._repeats: dict[str, Repeats] = {}
        self.counters: dict[str, int] = {
            "requests": 0,
            "replies": 0,
            "errors": 0,
            "legacy": 0,
            "writes": 0,
            "refused_writes": 0,
            "transactions": 0,
        }

    # ------------------------------------------------------------ the bridge's interface

    def subscriptions(self) -> list[str]:
        """Topic filters to subscribe (QoS 1) on every (re)connect."""
        return [
            self.base,
            self._getregs,
            f"{self.base}/+/set",
            *(f"{prefix}+/+" for prefix in self._request_prefixes),
        ]

    def close(self) -> None:
        """Stop the preparation thread (requests still queued there are answered first)."""
        self._prep.shutdown(wait=True, cancel_futures=False)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until what was handed to the preparation thread so far has been prepared."""
        self._prep.submit(lambda: None).result(timeout_s)

    def inflight(self) -> dict[str, int]:
        """Slots held per client (for tests and the health document)."""
        with self._lock:
            return dict(self._inflight)

    def handle(self, msg: mqtt.MQTTMessage) -> None:
        """paho's thread: check, hand on and return. Never raises, never blocks."""
        topic = msg.topic
        try:
            if msg.retain:
                # A retained request would be replayed on every reconnect of the bridge (a retained
                # write, again and again): only live requests count.
                self._note("modbus_retained_ignored", "a retained request", topic=topic[:_MAX_LOGGED])
            elif topic.startswith(self._request_prefixes):
                self._on_request(msg, topic)
            elif topic == self.base:
                # The slot is taken here, before the text is even read: a flood of legacy queries
                # is refused at once instead of piling up in front of the preparation thread.
                if self._legacy_admit("query"):
                    self._offload(lambda: self._on_legacy_query(msg), None, legacy=True)
            elif topic == self._getregs:
                self._on_getregs(msg)
            elif topic.startswith(self._response_prefix):
                pass  # a reply (the bridge's own, or admin's): never a request
            elif topic.startswith(f"{self.base}/") and topic.endswith("/set"):
                self._on_legacy_set(msg, topic[len(self.base) + 1 : -len("/set")])
        except Exception:  # a bug here must never reach paho's thread (docs/architecture.md#threads)
            log.exception("modbus_request_failed", topic=topic)

    # ------------------------------------------------------------ JSON requests

    def _on_request(self, msg: mqtt.MQTTMessage, topic: str) -> None:
        """paho's thread: the size and the client's slots only; the rest on the preparation thread."""
        where = rpc.parse_request_topic(self.base, topic)
        if where is None:
            self._note("modbus_request_unanswerable", "not a request topic", topic=topic[:_MAX_LOGGED])
            return
        client = where.client
        self.counters["requests"] += 1
        reply_topic = rpc.response_topic(self.base, where.user, where.client_id)
        props = getattr(msg, "properties", None)
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        reply = _Reply(reply_topic, client, None, self._reply_properties(props, correlation))
        reply.writable = where.writable
        payload = bytes(msg.payload)
        if len(payload) > rpc.MAX_PAYLOAD_BYTES:
            self._fail(
                reply,
                rpc.BadRequest(f"request of {len(payload)} bytes is larger than {rpc.MAX_PAYLOAD_BYTES}"),
            )
            return
        if not self._admit(client):
            reply.request_id = rpc.peek_id(payload)
            self._fail(reply, rpc.RemoteError("busy", "too many requests in flight; wait for replies"))
            return
        reply.slot = True
        asked = getattr(props, "ResponseTopic", None) if props is not None else None
        if len(payload) > INLINE_MAX_BYTES:
            self._offload(lambda: self._serve(payload, asked, reply), reply)
            return
        # A small request is parsed here (microseconds): a read, ping or write then goes straight
        # to the bus worker, without a wait for the preparation thread (issue 15: one thread hop
        # less per request); only a query's planning (up to tens of ms) is handed on.
        request = self._parse(payload, reply)
        if request is None:
            return
        if isinstance(request, rpc.QueryRequest):
            self._offload(lambda: self._dispatch(request, asked, reply), reply)
            return
        try:
            self._dispatch(request, asked, reply)
        except Exception as err:  # a bug: the client still gets its one reply
            log.exception("modbus_prep_failed", client=client[:_MAX_LOGGED])
            if not reply.sent:
                self._fail(reply, err)

    def _offload(self, work: Callable[[], None], reply: _Reply | None, *, legacy: bool = False) -> None:
        """Run ``work`` on the preparation thread; ``reply`` gets its one answer whatever happens
        (``legacy``: ``work`` holds a slot of the original's topics, given back if it fails)."""

        def guarded() -> None:
            try:
                work()
            except Exception as err:  # a bug: the client still gets its one reply
                log.exception("modbus_prep_failed", client=reply.client[:_MAX_LOGGED] if reply else LEGACY)
                if reply is not None and not reply.sent:
                    self._fail(reply, err)
                if legacy:
                    self._release(LEGACY)

        try:
            self._prep.submit(guarded)
        except RuntimeError:  # shut down: the bridge is stopping
            if reply is not None:
                self._fail(reply, BusError("the bridge is stopping"))
            if legacy:
                self._release(LEGACY)

    def _serve(self, payload: bytes, asked: str | None, reply: _Reply) -> None:
        """Preparation thread: parse, check, dispatch. Every return leaves the reply sent or owed
        by a queued job whose done-callback sends it."""
        request = self._parse(payload, reply)
        if request is not None:
            self._dispatch(request, asked, reply)

    def _parse(self, payload: bytes, reply: _Reply) -> rpc.Request | None:
        """The request, or None when it is malformed (then answered with the error)."""
        try:
            request = rpc.parse_request(payload)
        except rpc.BadRequest as err:
            reply.request_id = err.request_id
            client = reply.client[:_MAX_LOGGED]
            self._note("modbus_bad_request", str(err)[:200], client=client, payload=_shown(payload))
            self._fail(reply, err)
            return None
        reply.request_id = request.id
        return request

    def _dispatch(self, request: rpc.Request, asked: str | None, reply: _Reply) -> None:
        """Check and start a parsed request (paho's thread for all but queries and large ones)."""
        client = reply.client
        if asked and asked != reply.topic:
            # Never publish where a client says on its behalf: the bridge may write all of homie/#
            # (docs/protocol.md#mqtt-passthrough, confused deputy). Its own reply topic is the only answer.
            self._fail(reply, rpc.BadRequest(f"ResponseTopic must be {reply.topic} (or absent)"))
            return
        if isinstance(request, rpc.PingRequest):
            self._send(reply, rpc.ok_reply(request.id, device=self.root.rsplit("/", 1)[-1]))
            return
        if isinstance(request, rpc.WriteRequest) and not reply.writable:
            # The broker lets every RPC account publish on its request topic, and only writers on
            # the write topic: a write that came here is one the broker would have refused there.
            self.counters["refused_writes"] += 1
            self._note("modbus_write_on_read_topic", "a write on a read topic", client=client[:_MAX_LOGGED])
            self._fail(
                reply,
                WriteRefused(
                    f"writes go to {self.base}/{rpc.WRITE}/<user>/<client-id>, which only accounts "
                    "allowed to write registers may use; settings go through the properties' /set topics"
                ),
            )
            return
        if isinstance(request, rpc.WriteRequest):
            try:
                self._check_writes(request.writes)
            except UsageError as err:
                self.counters["refused_writes"] += 1
                self._note("modbus_write_refused", str(err)[:200], client=client[:_MAX_LOGGED])
                self._fail(reply, err)
                return
        if not self._line_up():
            self._fail(reply, BusError("the bridge has lost the line to the heat pump"))
            return
        if isinstance(request, rpc.ReadRequest):
            self._run_read(request, reply)
        elif isinstance(request, rpc.QueryRequest):
            self._run_query(request, reply)
        else:
            self._run_write(request, reply)

    def _line_up(self) -> bool:
        return bool(getattr(self._worker, "line_up", True))

    @staticmethod
    def _reply_properties(props: Properties | None, correlation: bytes | None) -> Properties | None:
        if props is None:  # the bridge speaks MQTT 3.1.1: no properties at all
            return None
        out = Properties(PacketTypes.PUBLISH)
        out.ContentType = "application/json"
        if correlation is not None:
            out.CorrelationData = correlation
        return out

    def _send(self, reply: _Reply, payload: bytes, *, error: bool = False) -> None:
        """The one reply: gives the slot back first, so no failure below can leak it."""
        if reply.sent:  # exactly one reply per request, whatever a bug upstream does
            log.error("modbus_second_reply_dropped", client=reply.client[:_MAX_LOGGED])
            return
        reply.sent = True
        if reply.slot:
            reply.slot = False
            self._release(reply.client)
        if len(payload) > rpc.MAX_REPLY_BYTES:
            too_large = rpc.RemoteError(
                "too_large",
                f"the reply would be {len(payload)} bytes, more than {rpc.MAX_REPLY_BYTES}: "
                "ask for fewer registers",
            )
            payload, error = rpc.error_reply(reply.request_id, too_large), True
        with self._lock:
            self.counters["replies"] += 1
            self.counters["errors"] += int(error)
        try:
            self._publish(reply.topic, payload, qos=1, retain=False, properties=reply.properties)
        except Exception:  # paho refusing a publish (queue full) must not reach the caller's thread
            log.exception("modbus_reply_failed", client=reply.client[:_MAX_LOGGED])

    def _fail(self, reply: _Reply, err: BaseException, **extra: Any) -> None:
        if rpc.error_code(err) == "internal":
            log.error("modbus_internal_error", client=reply.client[:_MAX_LOGGED], error=repr(err))
        try:
            payload = rpc.error_reply(reply.request_id, err, **extra)
        except Exception:  # extra fields that do not encode: the error alone still goes out
            log.exception("modbus_error_reply_failed", client=reply.client[:_MAX_LOGGED])
            payload = rpc.error_reply(reply.request_id, err)
        self._send(reply, payload, error=True)

    def _answer(self, reply: _Reply, build: Callable[[], bytes]) -> None:
        """Build a success reply on the preparation thread (a query's can take tens of ms: not on
        the bus worker, where it would delay the next transaction) and send it."""

        def work() -> None:
            self._send(reply, build())

        self._offload(work, reply)

    def _note(self, event: str, reason: str, **fields: Any) -> None:
        """A refused message: the first of its kind logged in full (with ``reason`` as ``error``),
        a few new reasons once each, then one summary a minute: a flood cannot fill the log."""
        with self._lock:
            repeats = self._repeats.get(event)
            if repeats is None:
                repeats = self._repeats[event] = Repeats(event)
        repeats.failed(reason, **fields)

    def _admit(self, client: str) -> bool:
        user = _account(client) + "/"
        with self._lock:
            mine = self._inflight.get(client, 0)
            account = sum(n for c, n in self._inflight.items() if c.startswith(user))
            busy = (
                mine >= self._max_per_client
                or account >= MAX_INFLIGHT_PER_USER
                or sum(self._inflight.values()) >= self._max_inflight
            )
            if not busy:
                self._inflight[client] = mine + 1
        if busy:
            self._note(
                "modbus_busy", "too many requests in flight", client=client[:_MAX_LOGGED], inflight=mine
            )
        return not busy

    def _release(self, client: str) -> None:
        with self._lock:
            left = self._inflight.get(client, 1) - 1
            if left > 0:
                self._inflight[client] = left
            else:
                self._inflight.pop(client, None)

    def _finish(self, reply: _Reply, payload: bytes) -> None:
        self._send(reply, payload)

    def _finish_error(self, reply: _Reply, err: BaseException, **extra: Any) -> None:
        self._fail(reply, err, **extra)

    # ------------------------------------------------------------ one read

    def _run_read(self, request: rpc.ReadRequest, reply: _Reply) -> None:
        items = request.items
        function = request.function

        def run(bus: Bus) -> list[int]:
            self.counters["transactions"] += 1
            if function == "holding":
                start, count = items[0]
                return bus.read_holding(start, count)
            if function == "registers":
                return bus.read_registers([a for a, _ in items])
            return bus.read_ranges(items)

        # Identical reads in flight share one transaction; FC 3 has its own key (other boards' path).
        key = ("holding", items) if function == "holding" else ("read", items)

        def done(future: Future[list[int]]) -> None:
            try:
                values = future.result()
                payload = rpc.ok_reply(reply.request_id, values=values)
            except Exception as err:
                self._finish_error(reply, err)
                return
            self._finish(reply, payload)

        # FC 65/66 reads may share a transaction with other clients' (each gets exactly its words).
        reads = None if function == "holding" else items
        owner = _account(reply.client)
        self._worker.submit(run, Priority.INTERACTIVE, key=key, reads=reads, owner=owner).add_done_callback(
            done
        )

    # ------------------------------------------------------------ queries (JSON and the original's)

    def _run_query(self, request: rpc.QueryRequest, reply: _Reply) -> None:
        def finished(run: _QueryRun, err: BaseException | None) -> None:
            if err is not None:
                self._offload(
                    lambda: self._finish_error(reply, err, values=rpc.words_object(run.words)), reply
                )
                return

            def build() -> bytes:
                body: dict[str, Any] = {
                    "values": rpc.words_object(run.words),
                    "failed": rpc.failed_object(run.failed),
                    "cached": run.cached,
                    "transactions": run.transactions,
                }
                if request.decode:
                    body["decoded"] = rpc.decoded_object(run.words)
                return rpc.ok_reply(reply.request_id, **body)

            self._answer(reply, build)

        with self._lock:
            # A client's first query takes an interactive turn; with more of its own in flight
            # it takes bulk turns only, so a flood from one client cannot crowd out others'.
            ahead = self._inflight.get(reply.client, 0) <= 1
        self._start_query(
            request.query.spans,
            fallback=request.query.implicit or request.skip_missing,
            max_age_s=request.max_age_s,
            finished=finished,
            ahead=ahead,
            owner=_account(reply.client),
        )

    def _start_query(
        self,
        spans: Sequence[tuple[int, int]],
        *,
        fallback: bool,
        max_age_s: float | None,
        finished: Callable[[_QueryRun, BaseException | None], None],
        progress: Callable[[_QueryRun, Chunk], None] | None = None,
        ahead: bool = True,
        owner: str = LEGACY,
    ) -> None:
        wanted = continued_spans(spans)
        cached: dict[int, int] = {}
        if max_age_s is not None:
            now = time.monotonic()
            for start, count in wanted:
                for address in range(start, start + count):
                    hit = self._cache(address)
                    if (
                        hit is not None
                        and now - hit[1] <= max_age_s
                        and hit[1] > self._written.get(address, -1.0)
                    ):
                        cached[address] = hit[0]
        run = _QueryRun(
            ReadPlan(without(wanted, cached), query_rules(fallback)),
            progress=progress,
            ahead=ahead,
            owner=owner,
        )
        run.plan.values.update(cached)
        run.cached = len(cached)
        self._advance(run, finished)

    def _advance(self, run: _QueryRun, finished: Callable[[_QueryRun, BaseException | None], None]) -> None:
        """Submit the plan's next request as a job; its done-callback comes back here. Loops
        instead of recursing when a future is already done (a stopping worker fails them at once)."""
        while True:
            chunk, run.pending = run.pending or run.plan.next(), None
            if chunk is None:
                finished(run, run.plan.error)
                return
            # The first job is interactive; later ones take BULK's turn (the worker's classes take
            # turns): each next job is queued from the previous one's callback, before the worker
            # picks again, so at INTERACTIVE a long query would take every interactive turn until
            # its end (a `valid` query is 42 reads, `all` some 650: docs/architecture.md#original-bridge K2).
            priority = Priority.INTERACTIVE if run.jobs == 0 and run.ahead else Priority.BULK
            run.jobs += 1
            future: Future[list[int] | None]
            if run.plan.first_try:
                # A chunk of the plan may share its transaction with other clients' reads, and an
                # identical one in flight (another query's) is shared whole: its words come back.
                future = self._worker.submit(
                    self._chunk_job(run, chunk),
                    priority,
                    key=("read", chunk.items),
                    reads=chunk.items,
                    owner=run.owner,
                )
            else:
                future = self._worker.submit(self._fallback_job(run, chunk), priority, owner=run.owner)
            if not future.done():
                future.add_done_callback(functools.partial(self._resumed, run, chunk, finished=finished))
                return
            if not self._take(run, chunk, future, finished):
                return

    def _chunk_job(self, run: _QueryRun, chunk: Chunk) -> Callable[[Bus], list[int] | None]:
        def job(bus: Bus) -> list[int]:
            run.transactions += 1  # only runs when this query's job is the one that reads
            self.counters["transactions"] += 1
            return chunk.read(bus)

        return job

    def _fallback_job(self, run: _QueryRun, chunk: Chunk) -> Callable[[Bus], list[int] | None]:
        """The plan's fallback requests, several in one job for up to FALLBACK_JOB_S: an `all`
        query's fallback is some 62,000 single-register reads, and with a job each the bridge
        would spend more time queueing than reading. It stops before the plan's next chunk (that
        one goes as a job of its own, which other clients' reads may share)."""

        def job(bus: Bus) -> None:
            request: Chunk | None = chunk
            until = time.monotonic() + FALLBACK_JOB_S
            while request is not None:
                run.transactions += 1
                self.counters["transactions"] += 1
                try:
                    values = request.read(bus)
                except AuroraError as err:
                    run.plan.fail(err)
                else:
                    run.plan.answer(values)
                    if run.progress is not None:
                        run.progress(run, request)
                if time.monotonic() >= until:
                    return
                request = run.plan.next()
                if request is not None and run.plan.first_try:
                    run.pending = request
                    return
            run.ended = True

        return job

    def _resumed(
        self,
        run: _QueryRun,
        chunk: Chunk,
        future: Future[list[int] | None],
        finished: Callable[[_QueryRun, BaseException | None], None],
    ) -> None:
        if self._take(run, chunk, future, finished):
            self._advance(run, finished)

    @staticmethod
    def _take(
        run: _QueryRun,
        chunk: Chunk,
        future: Future[list[int] | None],
        finished: Callable[[_QueryRun, BaseException | None], None],
    ) -> bool:
        """Hand a job's outcome to the plan; False when the query has ended here (then
        ``finished`` was called)."""
        try:
            try:
                values = future.result()
            except BaseException as err:
                if not run.plan.outstanding:
                    raise  # a bug in a fallback job, after its request was answered
                run.plan.fail(err)  # the plan decides what a failure costs (a bug ends the read)
                return True
            if values is None:  # a fallback job: it fed the plan itself
                if run.ended:
                    finished(run, run.plan.error)
                    return False
                return True
            run.plan.answer(values)
            if run.progress is not None:
                run.progress(run, chunk)
        except BaseException as err:
            finished(run, err)
            return False
        return True

    # ------------------------------------------------------------ writes

    def _check_writes(self, writes: tuple[tuple[int, int], ...]) -> None:
        """Every write checked before the first is made (S1); nothing is written if one is refused."""
        if self.allow_raw_writes:
            return
        for address, raw in writes:
            registers.validate_raw_write(address, raw)

    def _write_job(self, writes: tuple[tuple[int, int], ...], readback: bool) -> Callable[[Bus], Any]:
        done_count = [0]

        def job(bus: Bus) -> tuple[int, dict[int, int]]:
            now = time.monotonic()
            applied: dict[int, int] = {}
            words: dict[int, int] = {}
            try:
                for address, raw in writes:
                    self._written[address] = now  # the poll cache's older word is stale from here on
                    self.counters["transactions"] += 1
                    bus.write_register(address, raw)
                    applied[address] = raw
                    done_count[0] += 1
                    self.counters["writes"] += 1
                if readback:
                    for chunk in plan_chunks(with_continuations(a for a, _ in writes)):
                        self.counters["transactions"] += 1
                        words.update(zip(chunk.addresses, chunk.read(bus), strict=True))
            finally:
                if applied:
                    self._on_written(applied | words)
            return done_count[0], words

        job.done_count = done_count  # type: ignore[attr-defined]
        return job

    def _run_write(self, request: rpc.WriteRequest, reply: _Reply) -> None:
        job = self._write_job(request.writes, request.readback)
        log.info("modbus_write", client=reply.client, writes=[list(w) for w in request.writes])

        def done(future: Future[tuple[int, dict[int, int]]]) -> None:
            try:
                written, words = future.result()
            except Exception as err:
                written = job.done_count[0]  # type: ignore[attr-defined]
                log.warning("modbus_write_failed", client=reply.client, error=str(err), written=written)
                self._finish_error(reply, err, written=written)
                return
            body: dict[str, Any] = {"written": written}
            if request.readback:
                body["values"] = rpc.words_object(words)
            self._finish(reply, rpc.ok_reply(reply.request_id, **body))

        self._worker.submit(job, Priority.WRITE, expires_s=WRITE_EXPIRES_S).add_done_callback(done)

    # ------------------------------------------------------------ the original's topics
    # (docs/architecture.md#modbus-passthrough)

    @contextlib.contextmanager
    def _legacy_slot(self) -> Iterator[None]:
        """Around handing a legacy request on: if that fails (a bug), its slot is given back."""
        try:
            yield
        except Exception:
            self._release(LEGACY)
            raise

    def _legacy_admit(self, what: str) -> bool:
        """A slot of the original's topics (``what``: query, getregs, set); busy is logged by _admit."""
        self.counters["legacy"] += 1
        return self._admit(LEGACY)

    def _publish_lines(self, words: Mapping[int, int], addresses: Iterable[int], done: set[int]) -> None:
        """``Name (N): value`` on ``$modbus/N`` for each address not in ``done`` whose words are all
        there (a 32-bit value split across two reads waits for its second word)."""
        for address in addresses:
            if address in done:
                continue
            register = registers.REGISTERS.get(address)
            length = register.length if register is not None else 1
            if any(a not in words for a in range(address, address + length)):
                continue
            done.add(address)
            line = render_line(address, words)
            if line is not None:
                self._publish(f"{self.base}/{address}", line, qos=1, retain=False)

    def _on_legacy_query(self, msg: mqtt.MQTTMessage) -> None:
        """``$modbus`` ← ``745-747``: one ``Name (N): value`` message per register on ``$modbus/N``.

        Errors are logged only: the original's topics have nowhere to put them (the JSON protocol does).
        """
        try:
            text = msg.payload.decode("utf-8")
            query = parse_query(text) if len(text) <= rpc.MAX_QUERY_CHARS else None
        except (UnicodeDecodeError, UsageError) as err:
            self._release(LEGACY)  # taken in handle()
            self._note("modbus_query_refused", str(err)[:200], payload=_shown(msg.payload))
            return
        if query is None:
            self._release(LEGACY)
            self._note("modbus_query_refused", "query too long", payload=_shown(msg.payload))
            return

        done: set[int] = set()

        def progress(run: _QueryRun, chunk: Chunk) -> None:
            # A keyword query streams its lines chunk by chunk: `valid` is ~3000 messages, and sent
            # in one burst at the end they overflow mosquitto's queue for a subscriber (1000 by
            # default) and are dropped. An explicit list may still fail as a whole: it waits.
            if query.implicit:
                self._publish_lines(run.words, chunk.addresses, done)

        def finished(run: _QueryRun, err: BaseException | None) -> None:
            self._release(LEGACY)
            if err is not None:
                log.warning(
                    "modbus_query_failed", query=text[:_MAX_LOGGED], error=str(err), published=len(done)
                )
                return
            self._publish_lines(run.words, sorted(run.words), done)
            published = sum(1 for a in done if render_line(a, run.words) is not None)
            log.info(
                "modbus_query_done", query=text[:_MAX_LOGGED], published=published, failed=len(run.failed)
            )

        # The original: explicit lists abort on an error, keywords skip what fails
        # (docs/protocol.md#fallback).
        self._start_query(  # a failure here gives the slot back in _offload's guard
            query.spans, fallback=query.implicit, max_age_s=None, finished=finished, progress=progress
        )

    def _on_getregs(self, msg: mqtt.MQTTMessage) -> None:
        """``$modbus/getregs`` ← ``id:745,3;813`` → ``getregs/response`` ← ``id:680,730,730,206``."""
        try:
            request_id, items = rpc.parse_getregs(bytes(msg.payload))
        except UsageError as err:
            self._note("modbus_getregs_refused", str(err)[:200], payload=_shown(msg.payload))
            return
        if not self._legacy_admit("getregs"):
            return
        chunk = Chunk(items)

        def run(bus: Bus) -> list[int]:
            self.counters["transactions"] += 1
            # FC 65 if any item is a range, else FC 66, in the client's order, duplicates kept (P3).
            return chunk.read(bus)

        def done(future: Future[list[int]]) -> None:
            self._release(LEGACY)
            try:
                values = future.result()
            except Exception as err:
                log.warning("modbus_getregs_failed", request_id=request_id[:_MAX_LOGGED], error=str(err))
                return
            self._publish(f"{self._getregs}/response", rpc.getregs_reply(request_id, values), qos=1)

        with self._legacy_slot():
            future = self._worker.submit(
                run, Priority.INTERACTIVE, key=("read", items), reads=items, owner=LEGACY
            )
            future.add_done_callback(done)

    def _on_legacy_set(self, msg: mqtt.MQTTMessage, level: str) -> None:
        """``$modbus/N/set`` ← ``3`` or ``0x5555``: write, read back, publish ``$modbus/N``."""
        try:
            address = rpc.parse_set_register(level)
            raw = rpc.parse_set_value(bytes(msg.payload))
            self._check_writes(((address, raw),))
        except UsageError as err:
            self.counters["refused_writes"] += 1
            self._note(
                "modbus_set_refused", str(err)[:200], register=level[:_MAX_LOGGED], value=_shown(msg.payload)
            )
            return
        if not self._line_up():
            # Queued, it would be made whenever the line returns, maybe hours later (issue 11 #7).
            self.counters["refused_writes"] += 1
            self._note("modbus_set_refused", "the line to the heat pump is down", register=address, raw=raw)
            return
        if not self._legacy_admit("set"):
            return
        log.info("modbus_set", register=address, raw=raw)
        job = self._write_job(((address, raw),), readback=True)

        def done(future: Future[tuple[int, dict[int, int]]]) -> None:
            self._release(LEGACY)
            try:
                _, words = future.result()
            except Exception as err:
                log.warning("modbus_set_failed", register=address, raw=raw, error=str(err))
                return
            line = render_line(address, words)
            if line is not None:
                self._publish(f"{self.base}/{address}", line, qos=1, retain=False)

        with self._legacy_slot():
            self._worker.submit(job, Priority.WRITE, expires_s=WRITE_EXPIRES_S).add_done_callback(done)
