"""The bridge's first steps, taken before the rest of it is imported (issue 15: start to ready).

``aurora_mqtt_bridge`` opens the line and starts detecting the unit right after reading its command
line, with only the protocol modules imported; the MQTT stack (paho, homie, Home Assistant
discovery, structlog's set-up) is imported by the main thread meanwhile. Detection waits on the
line most of the time (19200 baud), so the two overlap. The attempt is the first of
``Bridge``'s detection loop: a failure is logged, counted and retried there as any other.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from aurora.errors import BusTimeout, ExceptionReply
from aurora.registers import string

from .device import detect
from .poller import read_words
from .worker import BusWorker

if TYPE_CHECKING:
    from aurora.bus import Bus

    from .device import Unit
    from .spec import NodeSpec

SERIAL = range(105, 110)  # the serial number: the device id (device.components_from)
IDENTITY = [a for a in range(88, 110) if a != 104]  # what detection needs before anything else
ReadRanges = Callable[[Sequence[tuple[int, int]]], Mapping[int, int]]
LineState = Callable[[bool, "str | None"], None]
# Until ready, a thread woken by the line (the bus worker with a reply, detection and the first
# poll with a result) gets the interpreter lock within this long, not CPython's 5 ms, while the
# main thread imports and builds the tree: each transaction's hand-offs would otherwise wait up
# to 5 ms each (issue 15: start to ready). ``EarlyStart.settle`` puts the default back.
START_SWITCH_INTERVAL_S = 0.0005


def detection_read(worker: BusWorker, stop: threading.Event, into: dict[int, int]) -> ReadRanges:
    """``device.detect``'s ``read(ranges)`` through the bus worker; the words read go into ``into``.

    A register that timed out is not a register the unit lacks: detecting without it would drop
    a component for the bridge's whole life, so an incomplete read raises and the detection is
    tried again."""

    def read(ranges: Sequence[tuple[int, int]]) -> Mapping[int, int]:
        addresses = [a for start, count in ranges for a in range(start, start + count)]
        report = read_words(worker, addresses, stop=stop)
        into.update(report.words)
        lost = [err for err in report.failed.values() if not isinstance(err, ExceptionReply)]
        if lost:
            raise BusTimeout(f"detection read incomplete: {lost[0]}")
        return report.words

    return read


class EarlyStart:
    """The bus worker running and a first detection attempt on a thread of its own.

    ``attempt`` gets the Unit or the exception that ended the attempt; ``words`` holds what it
    read (the word cache and the first poll take them); ``on_line_state`` is where the worker's
    line-up/line-down calls go once the bridge is built (before, there is nothing to tell)."""

    def __init__(self, opener: Callable[[], Bus], *, device_name: str, stop: threading.Event) -> None:
        self.on_line_state: LineState | None = None
        self.worker = BusWorker(opener, on_line_state=self._line_state)
        self.words: dict[int, int] = {}
        self.attempt: Future[Unit] = Future()
        # The serial number once read (None if never): the device id comes from it on the thread
        # that needs it (device.device_id_for imports homie_spec), not on this one's way to its
        # next request.
        self.serial: Future[str | None] = Future()
        # The components' nodes once the first read decided them (None if never), before the
        # presence checks: the properties every such unit has are described meanwhile (app.py).
        self.nodes: Future[tuple[NodeSpec, ...] | None] = Future()
        self.started = time.monotonic()
        self._device_name = device_name
        self._stop = stop
        self._switch_interval: float | None = sys.getswitchinterval()
        sys.setswitchinterval(min(START_SWITCH_INTERVAL_S, self._switch_interval))
        self.worker.start()
        threading.Thread(target=self._detect, name="detect", daemon=True).start()

    def settle(self) -> None:
        """The start is over (ready, or the first attempt failed): the interpreter's own switch
        interval again."""
        interval, self._switch_interval = self._switch_interval, None
        if interval is not None:
            sys.setswitchinterval(interval)

    def _line_state(self, up: bool, why: str | None) -> None:
        if self.on_line_state is not None:
            self.on_line_state(up, why)

    def _detect(self) -> None:
        read = detection_read(self.worker, self._stop, self.words)

        def read_and_tell(ranges: Sequence[tuple[int, int]]) -> Mapping[int, int]:
            words = read(ranges)
            if not self.serial.done() and all(a in self.words for a in IDENTITY):
                self.serial.set_result(string([self.words[a] for a in SERIAL]))
            return words

        def tell_nodes(nodes: tuple[NodeSpec, ...]) -> None:
            if not self.nodes.done():
                self.nodes.set_result(nodes)

        try:
            unit = detect(read_and_tell, device_name=self._device_name, on_nodes=tell_nodes)
        except BaseException as err:  # the bridge's detection loop decides what it means
            self.attempt.set_exception(err)
        else:
            self.attempt.set_result(unit)
        finally:
            if not self.serial.done():
                self.serial.set_result(None)
            if not self.nodes.done():
                self.nodes.set_result(None)


def start(port: str, *, latency_s: float, debug: bool, device_name: str, stop: threading.Event) -> EarlyStart:
    """Open ``port`` (on the worker thread) and start detecting the unit on it."""
    from aurora.ports import open_bus

    def opener() -> Bus:
        return open_bus(port, latency_s=latency_s, debug=debug)

    return EarlyStart(opener, device_name=device_name, stop=stop)
