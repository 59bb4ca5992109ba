"""compose.yaml, the Dockerfile and the broker config, checked as files: what `make static`'s tools
cannot see (docker-compose 1.29 passes an unescaped $ and a missing healthcheck in silence)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from aurora.setup.layout import MQTT_ACCOUNTS

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
LONG_RUNNING = ("broker", "sim", "bridge", "web")


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def test_every_dollar_is_escaped_or_a_variable() -> None:
    """A bare $modbus or $SYS becomes an empty string with only a warning (docs/architecture.md#broker)."""
    for text in _strings(COMPOSE):
        bare = re.sub(r"\$\$|\$\{[A-Z_][A-Z0-9_]*(:?-[^}]*)?\}", "", text)
        assert "$" not in bare, text


def test_the_default_services_and_the_tools_profile() -> None:
    """`docker compose up` runs the demo chain; fetch only runs with `docker compose run`."""
    assert {"setup", "broker", "sim", "bridge", "web", "fetch"} == set(SERVICES)
    assert ["tools"] == SERVICES["fetch"]["profiles"]
    assert all("profiles" not in SERVICES[name] for name in ("setup", *LONG_RUNNING))
    assert "name" not in COMPOSE  # docker-compose 1.29 refuses it


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_restart_and_report_health(name: str) -> None:
    service = SERVICES[name]
    assert "unless-stopped" == service["restart"]
    assert service["healthcheck"]["test"][0] == "CMD"


def test_start_order_waits_for_the_setup_and_a_healthy_broker() -> None:
    assert {"setup": {"condition": "service_completed_successfully"}} == SERVICES["broker"]["depends_on"]
    for name in ("bridge", "web", "fetch"):
        assert "service_healthy" == SERVICES[name]["depends_on"]["broker"]["condition"], name
    assert "no" == SERVICES["setup"]["restart"]


def test_no_password_is_given_in_the_environment() -> None:
    """Passwords travel as files; an environment value shows in `docker inspect`."""
    for name, service in SERVICES.items():
        for key in service.get("environment", {}):
            assert "PASSWORD" not in key or key.endswith("_FILE"), (name, key)
        for text in _strings(service):
            assert not re.search(r"mqtts?://[^/@\s]*:[^/@\s]*@", text), (name, text)  # user:pw@


def test_each_service_mounts_only_its_own_secrets_read_only() -> None:
    mounts = {name: service.get("volumes", []) for name, service in SERVICES.items()}
    # and the energy counters' state, its own writable volume
    assert ["bridge-secrets:/etc/aurora/bridge:ro", "bridge-state:/var/lib/aurora"] == mounts["bridge"]
    assert ["web-secrets:/etc/aurora/web:ro"] == mounts["web"]
    assert ["fetch-secrets:/etc/aurora/fetch:ro"] == mounts["fetch"]
    assert [] == mounts["sim"]
    assert "broker-config:/etc/aurora/mosquitto:ro" in mounts["broker"]


def test_the_services_run_the_console_scripts_the_suite_installs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    scripts = set(project["scripts"])
    for name, service in SERVICES.items():
        if name == "broker":
            continue
        argv = service.get("entrypoint") or service["command"]
        assert argv[0] in scripts | {"python"}, (name, argv)


def test_the_broker_config_has_one_tls_listener_and_no_anonymous_access() -> None:
    conf = (REPO / "mosquitto" / "mosquitto.conf").read_text()
    settings = [
        line.split(None, 1) for line in conf.splitlines() if line.strip() and not line.startswith("#")
    ]
    keys = [s[0] for s in settings]
    values = {s[0]: s[1] if len(s) > 1 else "" for s in settings}
    assert ["listener"] == [k for k in keys if k == "listener"]
    assert "8883" == values["listener"]
    assert {"cafile", "certfile", "keyfile"} <= set(keys[keys.index("listener") :])
    assert "tlsv1.2" == values["tls_version"]
    assert "false" == values["allow_anonymous"]
    assert "true" == values["set_tcp_nodelay"]
    assert "false" == values["per_listener_settings"]


def test_the_acl_has_a_section_for_every_account_setup_creates() -> None:
    acl = (REPO / "mosquitto" / "acl").read_text()
    users = re.findall(r"^user (\S+)$", acl, flags=re.MULTILINE)
    assert sorted(MQTT_ACCOUNTS) == sorted(users)
    patterns = re.findall(r"^pattern (\S+) (\S+)$", acl, flags=re.MULTILINE)
    assert [
        ("write", "homie/+/$modbus/request/%u/%c"),
        ("read", "homie/+/$modbus/response/%u/%c"),
    ] == patterns


def test_the_image_is_non_root_with_a_configurable_slim_base() -> None:
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.\d+-slim", dockerfile, flags=re.MULTILINE)
    assert 2 == len(re.findall(r"^FROM \$\{PYTHON_IMAGE\}", dockerfile, flags=re.MULTILINE))
    user = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert "--groups dialout" in dockerfile
    assert not re.search(r"amd64|arm64|x86_64|aarch64", dockerfile.split("\nFROM", 1)[1])


def test_every_setting_compose_reads_is_in_its_header_and_in_the_configuration_docs() -> None:
    """A user finds compose's own variables in the file's header and in docs/configuration.md
    (AURORA_BROKER_WEBSOCKET_PORT was once read but listed in neither)."""
    text = (REPO / "compose.yaml").read_text()
    read = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", "\n".join(_strings(COMPOSE))))
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    docs = (REPO / "docs" / "configuration.md").read_text()
    own = docs.split("## compose.yaml's own settings", 1)[1].split("\n## ", 1)[0]
    assert [] == sorted(v for v in read if not re.search(rf"\b{v}\b", header))
    assert [] == sorted(v for v in read if f"`{v}`" not in own)
