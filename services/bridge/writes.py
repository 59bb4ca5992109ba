"""A ``/set`` command's path: validated on paho's thread, written and read back by the bus worker,
answered on ``$write-result`` (docs/writes.md).

paho's thread never waits here: a command that passes validation becomes one worker job at
``Priority.WRITE``, and its outcome is published from the job's done-callback on the worker thread.
A command that arrives while the line is down, or the unit silent on it, waits (on a timer, not on
a thread) up to ``LINE_WAIT_S`` for the unit to answer again, then fails: never written later.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future

import paho.mqtt.client as mqtt
import structlog
from aurora.bus import Bus
from aurora.errors import BusError, ExceptionReply, FrameError, UsageError
from aurora.query import plan_chunks

from . import homie
from .spec import Setter
from .state import Shared
from .worker import Priority

log = structlog.get_logger(__name__)

MAX_LOGGED_PAYLOAD = 64
WRITE_RESULT = "$write-result"  # each /set command's outcome (docs/writes.md)
# The line is often down only while it is being reopened: a network outage that cut the bridge
# off from the broker and the unit alike ends with both reconnecting, the broker's queued command
# arriving a moment before the line answers again (reopen backoff MAX_BACKOFF_S, then one poll).
# The same when the line is open but the unit stopped answering (a cut network: the watchdog then
# reopens the line). Such a command waits this long for an answer; one sent while the line stays
# down still fails within it, visibly, and is never made when the line returns later
# (docs/writes.md).
LINE_WAIT_S = 10.0
MAX_WAITING = 32  # commands waiting for the line at once; more fail at once

Readback = tuple[dict[int, int], list[str]]  # the words read back, and why a chunk did not answer


def shown(payload: str) -> str:
    """A payload as logged: its first ``MAX_LOGGED_PAYLOAD`` characters."""
    return payload if len(payload) <= MAX_LOGGED_PAYLOAD else payload[:MAX_LOGGED_PAYLOAD] + "…"


class Writes:
    """Turns ``<root>/<node>/<property>/set`` messages into register writes, one outcome each."""

    def __init__(self, shared: Shared, *, line_wait_s: float = LINE_WAIT_S) -> None:
        self.shared = shared
        self.line_wait_s = line_wait_s
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[str, str, Setter, threading.Timer]] = {}  # until the line is up
        self._ids = iter(range(1 << 62))

    def on_set(self, msg: mqtt.MQTTMessage) -> None:
        """paho thread: validate, queue the write at WRITE priority, return (never blocks).

        Every command ends in one outcome on ``$write-result`` (docs/writes.md): ``applied`` with
        the value read back, ``refused`` with the reason (nothing written), or ``failed`` when the
        unit did not answer. A refused or failed command also republishes the property's current
        value, so a client that showed the new value at once (Home Assistant) snaps back.
        """
        shared = self.shared
        node_prop = msg.topic[len(shared.root) + 1 : -len("/set")]
        if msg.retain:
            # A retained command would be replayed on every restart: refuse it (and it was cleared).
            log.warning(
                "set_ignored_retained",
                property=node_prop,
                value=shown(msg.payload.decode("utf-8", errors="replace")),
                reason="a retained command would be replayed on every restart",
            )
            return
        try:
            payload = msg.payload.decode("utf-8")
        except UnicodeDecodeError:
            self._refuse(node_prop, repr(msg.payload[:MAX_LOGGED_PAYLOAD]), "the payload is not UTF-8 text")
            return
        spec = shared.detected.spec(node_prop)
        setter = None if spec is None else spec.setter
        if spec is None or setter is None:
            why = "no such property" if spec is None else "a read-only property"
            self._refuse(node_prop, payload, why)
            return
        wrong = homie.set_payload_error(spec.datatype, payload)
        if wrong is not None:  # checked before any parsing: a 5,000-digit number costs nothing
            self._refuse(node_prop, payload, wrong)
            return
        self._start(node_prop, payload, setter)

    def _start(self, node_prop: str, payload: str, setter: Setter) -> None:
        """A valid command: encoded against the words the bridge has now, then written, or kept
        for the line (paho's thread, or the worker's when the line came back)."""
        shared = self.shared
        try:
            writes = list(setter.writes(payload, shared.cache.words()))
        except UsageError as err:
            self._refuse(node_prop, payload, str(err))
            return
        except Exception as err:
            log.exception("set_failed_to_encode", property=node_prop, value=shown(payload))
            self._refuse(node_prop, payload, f"internal error: {type(err).__name__}")
            return
        if not writes:
            log.info("set_unchanged", property=node_prop, value=shown(payload))
            self._outcome(node_prop, payload, "applied", value=shared.republish_property(node_prop))
            return
        if not shared.worker.answering:
            self._wait_for_line(node_prop, payload, setter)
            return
        readback = sorted(setter.readback())
        log.info("set_requested", property=node_prop, value=shown(payload), writes=writes)

        def job(bus: Bus) -> Readback:
            for address, word in writes:
                bus.write_register(address, word)
            words: dict[int, int] = {}
            lost: list[str] = []
            for chunk in plan_chunks(readback):
                try:
                    words.update(zip(chunk.addresses, chunk.read(bus), strict=True))
                except (ExceptionReply, FrameError, BusError) as err:
                    log.warning("readback_failed", registers=str(chunk), error=str(err))
                    lost.append(str(err))
            return words, lost

        def done(future: Future[Readback]) -> None:  # runs on the worker thread; publish only queues
            try:
                words, lost = future.result()
            except ExceptionReply as err:  # an answer: the board would not take it
                self._refuse(node_prop, payload, f"the heat pump refused it: {err}")
                return
            except Exception as err:
                shared.stats.last_error = f"write failed: {err}"
                self._failed(node_prop, payload, f"no answer from the heat pump: {err}")
                return
            shared.stats.writes += 1
            shared.cache.update(words)
            shared.publish_values()
            value = shared.republish_property(node_prop)  # even unchanged: the command concluded
            written = [[address, word] for address, word in writes]
            if lost:
                reason = f"written, but the read-back did not answer: {lost[0]}"
                self._outcome(node_prop, payload, "unconfirmed", value=value, written=written, reason=reason)
            else:
                self._outcome(node_prop, payload, "applied", value=value, written=written)
            log.info("set_done", property=node_prop, value=shown(payload), published=value)

        shared.worker.submit(job, Priority.WRITE).add_done_callback(done)

    def _wait_for_line(self, node_prop: str, payload: str, setter: Setter) -> None:
        """Keep the command until the unit answers again (``unit_answers``) or ``line_wait_s`` passed."""
        with self._lock:
            if len(self._waiting) >= MAX_WAITING:
                full = True
            else:
                full = False
                key = next(self._ids)
                timer = threading.Timer(self.line_wait_s, self._gave_up, args=(key,))
                timer.daemon = True
                self._waiting[key] = (node_prop, payload, setter, timer)
        if full:
            self._failed(node_prop, payload, "no answer from the heat pump: the line is down")
            return
        log.info("set_waiting_for_line", property=node_prop, value=shown(payload), wait_s=self.line_wait_s)
        timer.start()
        if self.shared.worker.answering:  # it came back between the check and the keeping
            self.unit_answers()

    def unit_answers(self) -> None:
        """The unit answers again (worker thread): the commands waiting for it go ahead, in order."""
        with self._lock:
            waiting, self._waiting = list(self._waiting.values()), {}
        for node_prop, payload, setter, timer in waiting:
            timer.cancel()
            self._start(node_prop, payload, setter)

    def _gave_up(self, key: int) -> None:
        """Timer thread: the line did not come back in time; the command fails, never written."""
        with self._lock:
            entry = self._waiting.pop(key, None)
        if entry is not None:
            node_prop, payload, _, _ = entry
            self._failed(node_prop, payload, "no answer from the heat pump: the line is down")

    def close(self) -> None:
        """At shutdown: the commands still waiting fail now (their timers would outlive the run)."""
        with self._lock:
            waiting, self._waiting = list(self._waiting.values()), {}
        for node_prop, payload, _, timer in waiting:
            timer.cancel()
            self._failed(node_prop, payload, "the bridge is stopping: nothing was written")

    def _refuse(self, node_prop: str, payload: str, reason: str) -> None:
        """A command that is not written: logged with the reason, answered, the value republished."""
        self.shared.stats.writes_refused += 1
        log.warning("set_refused", property=node_prop, value=shown(payload), reason=reason)
        value = self.shared.republish_property(node_prop)
        self._outcome(node_prop, payload, "refused", value=value, reason=reason)

    def _failed(self, node_prop: str, payload: str, reason: str) -> None:
        self.shared.stats.writes_failed += 1
        log.error("set_failed", property=node_prop, value=shown(payload), error=reason)
        value = self.shared.republish_property(node_prop)
        self._outcome(node_prop, payload, "failed", value=value, reason=reason)

    def _outcome(
        self,
        node_prop: str,
        payload: str,
        result: str,
        *,
        value: str | None = None,
        reason: str | None = None,
        written: list[list[int]] | None = None,
    ) -> None:
        """One ``$write-result`` message (QoS 1, not retained) for one command."""
        publisher = self.shared.publisher
        if publisher is None:
            return
        document: dict[str, object] = {"property": node_prop, "payload": shown(payload), "result": result}
        if value is not None:
            document["value"] = value
        if reason is not None:
            document["reason"] = reason
        if written is not None:
            document["written"] = written
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        publisher.publish(f"{self.shared.root}/{WRITE_RESULT}", text, qos=1)
