"""The main thread once the bridge is up: the ``$health`` document, the status file, systemd's
watchdog, and recovery when something stalls (docs/architecture.md#original-bridge R3).

What it repairs: a job that holds the line for over a minute (the line is closed under it), a
dead poll thread (started again), a line with no good poll for ``watchdog_cycles`` fast intervals
(reset, everything polled and republished), a dead paho thread (restarted) and a session that
acknowledges nothing (kicked, so paho reconnects). A dead bus worker is a bug: exit status 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog
from aurora import status

from . import homie
from .health import HEALTH_EVERY_S, health_document
from .polling import PollLoop
from .spec import Tier
from .state import Shared
from .systemd import sd_notify

log = structlog.get_logger(__name__)

STUCK_JOB_S = 60.0  # no transaction lasts this long (retries included); the line is wedged
MQTT_ACK_STALE_S = 90.0
STATUS_LOG_EVERY_S = 3600.0
WATCHDOG_MIN_S = 5.0  # never reset the line more often than this, whatever the intervals


class Watchdog:
    """Health and recovery; ``watch`` runs on the main thread until the stop event is set."""

    def __init__(
        self,
        shared: Shared,
        polling: PollLoop,
        *,
        sections: Callable[[], Mapping[str, dict[str, int] | None]] = dict,
    ) -> None:
        self.shared = shared
        self.polling = polling
        self._sections = sections  # the pass-through's and virtual ports' parts of $health
        self.exit_code = 0
        self._last_health = 0.0
        self._last_reset = time.monotonic()
        self._last_status = time.monotonic()
        config = shared.config
        self._status_path = Path(config.status_file) if config.status_file else status.default_path()
        self._told_systemd = ""

    def watch(self) -> None:
        """Until stop: health document, and recovery when something stalls (R3)."""
        stop = self.shared.stop
        every = min(self.shared.config.intervals_s[Tier.FAST], HEALTH_EVERY_S)
        while not stop.wait(every):
            try:
                self.check(time.monotonic())
                self.publish_health()
                self._log_status(time.monotonic())
                if self.shared.worker.alive():
                    # systemd's watchdog (WatchdogSec=) restarts a bridge whose main loop hangs.
                    sd_notify("WATCHDOG=1")
            except Exception:  # the watchdog itself must never die
                log.exception("watchdog_failed")

    def check(self, now: float) -> None:
        """One round of recovery at monotonic time ``now``."""
        shared = self.shared
        fast = shared.config.intervals_s[Tier.FAST]
        stale_s = max(shared.config.watchdog_cycles * fast, WATCHDOG_MIN_S)
        worker, pub, stats = shared.worker, shared.publisher, shared.stats
        assert pub is not None
        if not worker.alive():
            log.error("worker_died")  # cannot happen by design; let the service manager restart us
            self.exit_code = 1
            shared.stop.set()
            return
        if worker.busy_since is not None and now - worker.busy_since > STUCK_JOB_S:
            worker.force_close("one job ran for over a minute")
        if self.polling.thread is not None and not self.polling.alive():
            log.error("poller_died_restarting")
            self.polling.start()
        # Any answered transaction proves the line alive: $modbus clients keeping the bus busy can
        # delay polls, and that is no reason to reset the line under them.
        last_good = max(stats.last_good_mono or stats.started_mono, worker.last_success or 0.0)
        if worker.line_up and now - last_good > stale_s and now - self._last_reset > stale_s:
            self._last_reset = now
            stats.watchdog_resets += 1
            log.warning("watchdog_bus_reset", silent_s=round(now - last_good, 1))
            worker.reset(f"no good poll for {now - last_good:.0f} s")
            shared.republish_all()
            shared.schedule.force_all()
        if not pub.paho_thread_alive():
            pub.restart_loop()
        elif (
            pub.connected
            and pub.counters.published > pub.counters.acked  # something is waiting for its PUBACK
            and pub.counters.last_ack
            and now - pub.counters.last_ack > max(MQTT_ACK_STALE_S, 3 * stale_s)
        ):
            # $health goes out every few seconds: minutes without a PUBACK on a session that
            # looks connected is a half-open connection (R3); paho reconnects once it breaks.
            pub.kick()
            pub.counters.last_ack = now

    def _log_status(self, now: float) -> None:
        """One INFO line an hour: a log that only ever shows trouble cannot tell "fine" from "dead"."""
        if now - self._last_status < STATUS_LOG_EVERY_S:
            return
        self._last_status = now
        shared = self.shared
        bus = shared.worker.stats
        log.info(
            "bridge_status",
            state=shared.publisher.state if shared.publisher else "init",
            good_cycles=shared.stats.good_cycles,
            failed_cycles=shared.stats.failed_cycles,
            transactions=bus.transactions,
            retries=bus.retries,
            timeouts=bus.timeouts,
            reconnects=bus.reconnects,
            writes=shared.stats.writes,
            watchdog_resets=shared.stats.watchdog_resets,
        )

    def health(self) -> str:
        """The health document as published."""
        pub, worker = self.shared.publisher, self.shared.worker
        counters = pub.counters if pub else None
        sections = self._sections()
        return health_document(
            state=pub.state if pub else "init",
            poll=self.shared.stats,
            bus=worker.stats.as_dict(),
            mqtt={
                "connected": int(bool(pub and pub.connected)),
                "connects": counters.connects if counters else 0,
                "reconnects": max(0, counters.connects - 1) if counters else 0,
                "published": counters.published if counters else 0,
                "refused": counters.refused if counters else 0,
            },
            worker={
                "longest_wait_s": worker.longest_wait_s,
                "coalesced": worker.coalesced,
                "most_polls_waited": worker.most_polls_waited,
                "most_transactions_waited": worker.most_transactions_waited,
                # the longest wait of any write, interactive, bulk and poll job (the bench flags them)
                **{f"longest_wait_{k}_s": v for k, v in worker.longest_waits_s.items()},
                "merged_transactions": worker.merged_transactions,
                "merged_jobs": worker.merged_jobs,
                "merge_fallbacks": worker.merge_fallbacks,
                "pending": worker.pending(),
                "line_up": int(worker.line_up),
            },
            passthrough=sections.get("passthrough"),
            vports=sections.get("vports"),
        )

    def publish_health(self, force: bool = False) -> None:
        """``$health`` (and the Homie uptime) at most every ``HEALTH_EVERY_S``; the status file always.

        Main thread, and paho's after a reconnect (``force``)."""
        shared = self.shared
        pub = shared.publisher
        self.write_status(pub.state if pub is not None else "init")
        if pub is None or not shared.root:
            return
        if not pub.connected:
            return  # queued, it would reach the broker after the outage, stale: skip it
        now = time.monotonic()
        if not force and now - self._last_health < HEALTH_EVERY_S * 0.9:
            return
        self._last_health = now
        pub.retain(f"{shared.root}/$health", self.health(), force=True, cache=False)
        if shared.config.homie:  # the legacy-stats extension announced in $extensions
            uptime = round(time.monotonic() - shared.stats.started_mono)
            pub.retain(f"{shared.root}/{homie.STATS_UPTIME}", str(uptime), force=True)

    def write_status(self, state: str) -> None:
        """The status file the container healthcheck reads, and systemd's STATUS= line."""
        error = self.shared.stats.last_error if state != "ready" else None
        status.write_status(self._status_path, state, error)
        told = f"STATUS={state}" + (f": {error}" if error else "")
        if told != self._told_systemd and self.shared.ready.is_set():  # READY=1 comes first
            self._told_systemd = told
            sd_notify(told)
