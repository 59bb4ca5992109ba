"""Open whatever a port argument names as a :class:`~aurora.bus.Bus`: a serial line (device path,
``tcp://``, ``telnet://``, ``rfc2217://``), a YAML register dump (a simulated unit), or the bridge's
``$modbus`` pass-through over MQTT (``mqtt(s)://``, ``ws(s)://``) (docs/protocol.md#ports).

The one place that knows every kind: the serial transport and the MQTT client stay apart, and
each is imported only when a URL needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .mqtt_args import is_mqtt_url
from .rtu import DEFAULT_LATENCY_S  # not from .transport: an mqtt(s):// port never loads pyserial

if TYPE_CHECKING:
    from .bus import Bus
    from .mqtt import MqttSettings

__all__ = ["DEFAULT_LATENCY_S", "open_bus"]


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
        # No ping first: the first request finds out as much, one round trip sooner; and no
        # paho thread: each request is written and its reply read by the caller's thread, as on
        # a serial port, with no thread wake-up on the way (issue 15).
        settings = mqtt or MqttSettings.from_url(url)
        return MqttBus.connect(settings, timeout_s=timeout_s, ping=False, network_thread=False)
    path = Path(url)
    if not scheme and path.is_file():
        from .dump import DumpBus

        return DumpBus.from_file(path)
    from .transport import open_serial

    return open_serial(url, latency_s=latency_s, debug=debug)
