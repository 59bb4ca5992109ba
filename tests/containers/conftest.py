"""One compose stack for the whole container session: the project's image built from
docker/Dockerfile, compose.yaml brought up unchanged (only the published host ports moved, through
the variables the file reads), under a project name of its own; ``docker compose down -v`` at the end.

Needs root (rootful podman; docker/README.md). ``make test`` runs these tests (``make containers``
alone); without root they are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import Broker
from tests.support.processes import free_port, wait_for

from .podman import REPO, HealthTimers, Podman

COMPOSE = REPO / "compose.yaml"
UP_S = 600.0  # a cold machine builds nothing here (images are ready), but 2 loaded cores are slow
HEALTHY_S = 180.0
# Between two looks at the stack while waiting: each look starts a podman or docker-compose process
# or a TLS session, so at the usual 20 ms the waits alone kept a core busy (the health checks run
# every 3 s anyway: HealthTimers)
LOOK_S = 0.5
DEVICE = "aurora-2611000042"  # the sim's built-in demo unit
LONG_RUNNING = ("broker", "sim", "bridge", "web")


@dataclass
class Stack:
    """A running compose project and what the tests need to reach it."""

    podman: Podman
    project: str
    env: dict[str, str]
    broker_port: int
    web_port: int
    image: str
    secrets: Path  # ca/ca.crt and <account>/password, copied from the setup volume for test clients
    figures: dict[str, Any] = field(default_factory=dict)

    def compose(
        self, *args: str, timeout: float = 300.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``docker-compose -f compose.yaml -p PROJECT ARGS`` against podman's Docker API."""
        done = subprocess.run(
            ["docker-compose", "-f", str(COMPOSE), "-p", self.project, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=REPO,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
            )
        return done

    def run(self, service: str, *args: str, timeout: float = 180.0) -> str:
        """``docker compose run --rm SERVICE ARGS``: its output (stdout), AssertionError if it fails.

        podman 4.3's Docker API does not stream an attached ``run``'s output to docker-compose 1.29
        (it exits 0 and prints nothing), so the container runs detached and its log is read.
        """
        name = self.compose("run", "-d", service, *args, timeout=timeout).stdout.strip().splitlines()[-1]
        try:
            code = int(self.podman.run("wait", name, timeout=timeout).stdout.strip())
            out = self.podman.run("logs", name)
        finally:
            self.podman.run("rm", "-f", name, check=False)
        if code != 0:
            raise AssertionError(
                f"docker compose run {service} {' '.join(args)} exited {code}:\n{out.stderr}"
            )
        return out.stdout

    def container(self, service: str) -> str:
        """The container's name (docker-compose 1.29 names them PROJECT_SERVICE_1)."""
        return f"{self.project}_{service}_1"

    @property
    def network(self) -> str:
        return f"{self.project}_default"

    def health(self, service: str) -> str:
        fmt = "{{.State.Status}}/{{.State.Health.Status}}"
        return self.podman.run(
            "inspect", "--format", fmt, self.container(service), check=False
        ).stdout.strip()

    def wait_healthy(self, services: tuple[str, ...] = LONG_RUNNING, deadline_s: float = HEALTHY_S) -> None:
        def all_healthy() -> bool:
            return all(self.health(s) == "running/healthy" for s in services)

        try:
            wait_for(all_healthy, deadline_s, f"healthy {', '.join(services)}", every_s=LOOK_S)
        except TimeoutError as err:
            states = {s: self.health(s) for s in services}
            raise AssertionError(f"{err}: {states}\n{self.logs()[-6000:]}") from None

    def wait_health(self, service: str, status: str, deadline_s: float = HEALTHY_S) -> float:
        """Seconds until ``service``'s health is ``status`` (healthy, unhealthy)."""
        start = time.monotonic()

        def reached() -> bool:
            return self.health(service).endswith("/" + status)

        wait_for(reached, deadline_s, f"{service} {status}", every_s=LOOK_S)
        return time.monotonic() - start

    def volume(self, name: str) -> Path:
        """A named volume's directory on this machine (rootful podman)."""
        out = self.podman.run("volume", "inspect", "--format", "{{.Mountpoint}}", f"{self.project}_{name}")
        return Path(out.stdout.strip())

    def logs(self, *services: str) -> str:
        """``docker-compose logs``: every line prefixed with its container, as a user sees them."""
        return self.compose("logs", "--no-color", *services, check=False).stdout

    def service_log(self, service: str) -> str:
        """The service's own log lines, unprefixed, from ``podman logs``: a fraction of what a
        docker-compose process costs, for a test that reads a log again and again."""
        done = self.podman.run("logs", self.container(service), check=False)
        return done.stdout + done.stderr

    def broker(self) -> Broker:
        """The broker as seen from this machine: published port, the setup's CA and passwords."""
        return Broker(root=self.secrets, tls_port=self.broker_port, log=self.secrets / "no-broker-log")

    def container_pids(self, service: str) -> list[int]:
        """Every process of the container (from this machine's /proc), its init first."""
        top = int(self.podman.run("inspect", "--format", "{{.State.Pid}}", self.container(service)).stdout)
        pids, todo = [], [top]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
        return pids


def _copy_secrets(stack: Stack) -> None:
    setup = stack.volume("setup")
    for rel in ("ca/ca.crt", "admin/password", "homeassistant/password"):
        target = stack.secrets / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(setup / rel, target)
    for account in ("bridge", "web", "fetch"):
        target = stack.secrets / account / "password"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(stack.volume(f"{account}-secrets") / "password", target)
    shutil.copy(stack.volume("web-secrets") / "ui-password", stack.secrets / "web" / "ui-password")


@pytest.fixture(scope="session")
def podman() -> Podman:
    if os.geteuid() != 0:
        pytest.skip("the container tests need root: rootful podman (docker/README.md)")
    if shutil.which("podman") is None or shutil.which("docker-compose") is None:
        pytest.fail("podman or docker-compose is missing: run 'make setup' (as root)")
    return Podman.configured()


@pytest.fixture(scope="session")
def stack(podman: Podman) -> Iterator[Stack]:
    """Images ready (cached), the project's image built, ``compose up -d``, all healthy."""
    figures: dict[str, Any] = {}
    start = time.monotonic()
    base = podman.python_base()
    podman.mosquitto()
    figures["base_images_s"] = round(time.monotonic() - start, 1)
    # one tag per checkout: two checkouts testing at once must not build over each other's image
    image = f"localhost/aurora-test/suite:{uuid.uuid5(uuid.NAMESPACE_URL, str(REPO)).hex[:12]}"
    build_s = podman.build(REPO / "docker/Dockerfile", image, REPO, build_args={"PYTHON_IMAGE": base})
    figures["image_build_s"] = round(build_s, 1)
    figures["image_size_mb"] = round(podman.image_size(image) / 1e6, 1)
    project = f"auroratest{os.getpid()}"
    secrets = Path(tempfile.mkdtemp(prefix="aurora-compose-secrets-"))
    with podman.docker_api() as docker_host:
        env = {
            **podman.env,
            "DOCKER_HOST": docker_host,
            "AURORA_IMAGE": image,
            "AURORA_BROKER_PUBLISH": f"127.0.0.1:{free_port()}",
            "AURORA_WEB_PUBLISH": f"127.0.0.1:{free_port()}",
            "COMPOSE_INTERACTIVE_NO_CLI": "1",
        }
        for key in ("AURORA_PORT", "AURORA_BROKER_HOSTS"):  # the defaults: the simulated unit
            env.pop(key, None)
        stack = Stack(
            podman=podman,
            project=project,
            env=env,
            broker_port=int(env["AURORA_BROKER_PUBLISH"].rsplit(":", 1)[1]),
            web_port=int(env["AURORA_WEB_PUBLISH"].rsplit(":", 1)[1]),
            image=image,
            secrets=secrets,
            figures=figures,
        )
        timers = HealthTimers(podman, project)
        timers.start()
        try:
            up_start = time.monotonic()
            stack.compose("up", "-d", "--no-build", timeout=UP_S)
            figures["compose_up_s"] = round(time.monotonic() - up_start, 1)
            figures["up_started_mono"] = up_start
            _copy_secrets(stack)
            yield stack
        finally:
            timers.stop()
            with contextlib.suppress(Exception):
                stack.compose("down", "-v", "--remove-orphans", timeout=300, check=False)
            shutil.rmtree(secrets, ignore_errors=True)
            _report(figures)


def _report(figures: dict[str, Any]) -> None:
    shown = {k: v for k, v in figures.items() if not k.endswith("_mono")}
    text = "container figures: " + ", ".join(f"{k}={v}" for k, v in shown.items())
    FIGURES.append(text)


FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in FIGURES:
        terminalreporter.write_line(line)
