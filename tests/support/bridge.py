"""``aurora_mqtt_bridge`` as a process, started the way the README starts it, for tests and benchmarks.

    with Bridge.start(tmp_path, broker, sim.url, "--device-name", "Basement") as bridge:
        assert bridge.process.poll() is None          # its $state was ready before this line

The bridge gets ``user``'s password from a file, the broker's CA, JSON logs (``tmp_path/NAME.log``)
and fast poll intervals (``poll``). Unless ``ready_deadline_s`` is None, ``start`` returns once the
device's ``$state`` is ``ready`` (a live message, seen by a client subscribed before the start).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .broker import Broker, Collector
from .processes import exited_early, running, wait_for

BIN = Path(sys.executable).parent
DEMO_ID = "aurora-2611000042"  # the sim's built-in demo unit
READY_S = 30.0
FAST_POLL = ("--fast-interval", "1", "--medium-interval", "2", "--slow-interval", "10")


@dataclass
class Bridge:
    """A running bridge: its process, its log and the device it publishes."""

    process: subprocess.Popen[bytes]
    log: Path
    device_id: str
    broker: Broker
    argv: list[str]
    status_file: Path

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        tmp_path: Path,
        broker: Broker,
        port_url: str,
        *extra_args: str,
        user: str = "bridge",
        name: str = "bridge",
        env: Mapping[str, str] | None = None,
        poll: Sequence[str] = FAST_POLL,
        device_id: str = DEMO_ID,
        ready_deadline_s: float | None = READY_S,
        scheme: str = "mqtts",
    ) -> Iterator[Bridge]:
        """Start ``aurora_mqtt_bridge PORT_URL mqtts://USER@… --mqtt-ca-file CA POLL EXTRA_ARGS``
        (``scheme`` ``wss`` or ``ws``: over the broker's WebSocket listeners).

        ``env`` is added to (and may override) the password file and the JSON log format. The
        process is stopped and reaped on exit; its log shows in the report of a failing test.
        """
        argv = [
            str(BIN / "aurora_mqtt_bridge"),
            port_url,
            broker.url(user, scheme=scheme),
            "--mqtt-ca-file",
            str(broker.ca_file),
            *poll,
            *extra_args,
        ]
        log = tmp_path / f"{name}.log"
        status_file = tmp_path / f"{name}.status"  # its own, not the machine's shared default
        full_env = {
            "AURORA_MQTT_PASSWORD_FILE": str(broker.password_file(user)),
            "AURORA_LOG_FORMAT": "json",
            "AURORA_BRIDGE_ENERGY_STATE": str(tmp_path / "energy-{device}.json"),  # not the user's home
            "AURORA_BRIDGE_STATUS_FILE": str(status_file),
            **(env or {}),
        }
        state_topic = f"homie/{device_id}/$state"
        state = None if ready_deadline_s is None else Collector(broker.client("homeassistant"), state_topic)
        with running(argv, env=full_env, log=log) as process:
            bridge = cls(process, log, device_id, broker, argv, status_file)
            if state is not None and ready_deadline_s is not None:

                def ready() -> bool:
                    failed = exited_early(process, log)
                    if failed:
                        raise AssertionError(failed)
                    live = [m.payload for m in state.received(state_topic) if not m.retain]
                    return bool(live) and live[-1] == b"ready"

                wait_for(ready, ready_deadline_s, f"{state_topic} ready")
            yield bridge
