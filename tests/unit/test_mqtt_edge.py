"""The MQTT edge (``aurora.mqtt``): what it imports, how it reads URLs, how it talks to paho."""

from __future__ import annotations

import subprocess
import sys

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
