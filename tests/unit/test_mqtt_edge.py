"""The MQTT edge (``aurora.mqtt``): what it imports, how it reads URLs, how it talks to paho."""

from __future__ import annotations

import hashlib
import json
import platform
import re
import socket
import subprocess
import sys
from typing import Any

import pytest
from aurora.errors import BusError, PublishRefused, UsageError
from aurora.mqtt import MqttConnection, MqttSettings, choose_device, is_mqtt_url, set_no_delay
from aurora.urls import redact


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_the_mqtt_edge_imports_nothing_of_serial() -> None:
    loaded = _loaded_after("import aurora.mqtt, aurora.rpc_client")
    assert "paho.mqtt.client" in loaded  # the control: the import did happen
    assert not {m for m in loaded if m == "serial" or m.startswith("serial.")}
    assert "aurora.transport" not in loaded


def test_redact_hides_only_the_password() -> None:
    assert redact("mqtts://fetch:s3cret@broker:8883/homie") == "mqtts://fetch:***@broker:8883/homie"
    assert redact("mqtts://fetch@broker/") == "mqtts://fetch@broker/"


# --- which URLs are MQTT, and what they say ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "mqtt"),
    [
        ("mqtt://b/", True),
        ("MQTTS://b:8883/", True),
        ("ws://b/", True),
        ("wss://b:8884/mqtt", True),
        ("tcp://pi:2000/", False),
        ("rfc2217://pi:2217/", False),
        ("/dev/ttyUSB0", False),
        ("dump.yml", False),
        ("http://b/", False),
    ],
)
def test_one_answer_to_is_this_mqtt(url: str, mqtt: bool) -> None:
    assert mqtt == is_mqtt_url(url)


def test_the_url_gives_transport_tls_port_and_the_websockets_path() -> None:
    cases = {
        "mqtt://b/": ("tcp", False, 1883),
        "mqtts://b/": ("tcp", True, 8883),
        "ws://b/": ("websockets", False, 80),
        "wss://b/": ("websockets", True, 443),
        "wss://b:8884/": ("websockets", True, 8884),
    }
    for url, (transport, tls, port) in cases.items():
        s = MqttSettings.from_url(url)
        assert (transport, tls, port) == (s.transport, s.tls, s.port), url
        assert s.scheme == url.split(":", 1)[0]
    assert "/mqtt" == MqttSettings.from_url("wss://b:8884/").ws_path
    assert "/ws/mqtt" == MqttSettings.from_url("wss://b:8884/ws/mqtt").ws_path


def test_the_tools_topic_is_kept_apart_from_the_url_path() -> None:
    over_tls = MqttSettings.from_url("mqtts://fetch@b/homie/aurora-1/$modbus")
    assert ("homie", "aurora-1", "homie/aurora-1/$modbus") == (
        over_tls.root,
        over_tls.device,
        over_tls.topic(),
    )
    # over WebSockets the path is the WebSocket's: the topic is an option of its own
    over_ws = MqttSettings.from_url("wss://fetch@b:8884/mqtt", topic="site2/aurora-7/$modbus")
    assert ("site2", "aurora-7", "/mqtt") == (over_ws.root, over_ws.device, over_ws.ws_path)
    assert MqttSettings.from_url("wss://fetch@b:8884/homie/aurora-1").device is None
    assert "site2" == MqttSettings.from_url("mqtts://fetch@b/", root="site2").root
    assert "homie" == MqttSettings.from_url("mqtts://fetch@b/").root
    # the bridge has no topic: its URL's path is not one
    bridge = MqttSettings.from_url("mqtts://bridge@b/whatever/x/y", root="site2", path_is_topic=False)
    assert ("site2", None) == (bridge.root, bridge.device)


@pytest.mark.parametrize(
    ("url", "kwargs", "says"),
    [
        ("mqtts://f@b/homie/aurora-1", {"topic": "homie/aurora-2"}, "give it once"),
        ("mqtts://f@b/homie/aurora-1", {"root": "site2"}, "--homie-root says site2"),
        ("mqtts://f@b/homie/+/$modbus", {}, "cannot hold + or #"),
        ("http://f@b/", {}, "mqtt://, mqtts://, ws:// or wss://"),
        ("wss://f:secret@/", {}, "no broker host"),
    ],
)
def test_a_contradiction_is_a_usage_error(url: str, kwargs: dict[str, str], says: str) -> None:
    with pytest.raises(UsageError, match=re.escape(says)) as raised:
        MqttSettings.from_url(url, **kwargs)
    assert "secret" not in str(raised.value)


def test_choose_device_takes_the_one_aurora_device() -> None:
    settings = MqttSettings.from_url("wss://fetch@b:8884/")
    assert "aurora-1" == choose_device({"aurora-1": "ready", "other": "ready"}, settings)
    with pytest.raises(BusError, match="no aurora-\\* device under homie/"):
        choose_device({}, settings)
    with pytest.raises(UsageError, match="--mqtt-topic homie/aurora-1/\\$modbus"):
        choose_device({"aurora-1": "ready", "aurora-2": "lost"}, settings)


# --- socket options on any socket kind ----------------------------------------------------------


class _Wrapper:
    """Like paho's WebSocket wrapper: not a socket, but it has the socket's file descriptor."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()


def test_no_delay_reaches_the_socket_under_a_websocket_wrapper() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        for wrap in (lambda s: s, _Wrapper):
            with socket.create_connection(server.getsockname()) as client:
                assert 0 == client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                set_no_delay(wrap(client))
                assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                client.send(b"x")  # still open and usable: the duplicate was closed, not the socket
    left, right = socket.socketpair()  # a Unix socket has no Nagle: nothing to set, no error
    with left, right:
        set_no_delay(left)


# --- the acknowledgement as a future ------------------------------------------------------------


class _Info:
    def __init__(self, mid: int) -> None:
        self.rc, self.mid = 0, mid


class _FakePaho:
    """Just enough of paho's client for MqttConnection; ``ack_now`` acknowledges a publish before
    publish() returns (paho's network thread can be that fast)."""

    def __init__(self, *_: object, **__: object) -> None:
        self.ack_now: object | None = None
        self.mid = 0
        self.on_publish: Any = None

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None

    def publish(self, *_: object, **__: object) -> _Info:
        self.mid += 1
        if self.ack_now is not None:
            self.on_publish(self, None, self.mid, self.ack_now, None)
        return _Info(self.mid)


class _Reason:
    def __init__(self, failure: bool, text: str) -> None:
        self.is_failure, self.text = failure, text

    def __str__(self) -> str:
        return self.text


def test_publish_settles_on_the_acknowledgement_early_or_late() -> None:
    conn = MqttConnection(MqttSettings.from_url("mqtt://b/"), "t-1", client_factory=_FakePaho)
    paho = conn.client
    late = conn.publish("t", "1")
    assert not late.done()
    paho.on_publish(paho, None, 1, _Reason(False, "Success"), None)
    assert late.result(0) is None
    paho.ack_now = _Reason(True, "Not authorized")
    early = conn.publish("t", "2")  # acknowledged before publish() returned its mid
    with pytest.raises(PublishRefused, match="Not authorized") as refused:
        early.result(0)
    assert "Not authorized" == refused.value.reason
    paho.ack_now = None
    waiting = conn.publish("t", "3")
    conn.close()
    with pytest.raises(BusError, match="closed"):
        waiting.result(0)


def test_deferred_modules_load_on_first_use_and_then_are_the_real_ones() -> None:
    """``defer_unused_imports`` (aurora_fetch mqtts://, issue 15): paho imports urllib.request,
    hashlib, uuid, platform and (through logging) traceback without loading them; the first use
    loads the real module, and a module imported before is left alone."""
    code = (
        "import sys, json, types\n"
        "from aurora.mqtt_args import defer_unused_imports\n"
        "defer_unused_imports()\n"
        "import paho.mqtt.client\n"
        "import aurora.rpc_client\n"
        "heavy = ('urllib.request', 'hashlib', 'uuid', 'email', 'http.client', 'tempfile')\n"
        "def real(m): return m in sys.modules and type(sys.modules[m]) is types.ModuleType\n"
        "before = [m for m in heavy if real(m)]\n"
        "import logging, platform\n"
        "system, platform_real = platform.system(), real('platform')\n"
        "before += [m for m in ('traceback', 'linecache') if real(m)]\n"
        "import hashlib, urllib.request\n"
        "from uuid import uuid4\n"
        "digest = hashlib.sha256(b'aurora').hexdigest()[:8]\n"
        "proxies = type(urllib.request.getproxies()).__name__\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    formatted = logging.Formatter().formatException(sys.exc_info())\n"
        "print(json.dumps([before, digest, proxies, len(str(uuid4())), [real(m) for m in heavy[:3]],\n"
        "    paho.mqtt.client.hashlib.sha1 is hashlib.sha1, system, platform_real,\n"
        "    platform.machine() == os.uname().machine, real('platform'), formatted.splitlines()[-1],\n"
        "    real('traceback')]))\n"
    )
    code = code.replace("import sys, json, types", "import os, sys, json, types")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, digest, proxies, uuid_len, real_after, same, *rest = json.loads(done.stdout)
    assert [] == before
    assert hashlib.sha256(b"aurora").hexdigest()[:8] == digest
    assert ("dict", 36, [True, True, True], True) == (proxies, uuid_len, real_after, same)
    # platform.system() answered without platform (paho's one use), then the real module on
    # first other use; traceback loaded when logging first formats an exception
    system, platform_real, machine_ok, platform_loaded, last_line, traceback_loaded = rest
    assert (platform.system(), False, True, True) == (system, platform_real, machine_ok, platform_loaded)
    assert ("ZeroDivisionError: division by zero", True) == (last_line, traceback_loaded)
    # already imported: untouched
    code = "import hashlib, types\nfrom aurora.mqtt_args import defer_unused_imports\n"
    code += "defer_unused_imports()\nimport sys\nprint(sys.modules['hashlib'] is hashlib)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "True" == done.stdout.strip()
