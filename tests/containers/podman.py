"""Rootful podman for the container tests, with no registry: docker/README.md ("How the tests run
the containers") says why each piece is here.

- Its own ``containers.conf`` and ``storage.conf`` in a cache directory outside the checkout
  (``AURORA_CONTAINER_CACHE``, default ``/var/cache/aurora-tests``), so images persist between runs
  and nothing system-wide changes.
- Base images made from Debian's packages with debootstrap, and stand-ins for the images
  compose.yaml and docker/Dockerfile name (``python:*-slim``, ``eclipse-mosquitto:2``), each
  cached under a tag keyed by what goes into it.
- ``podman system service`` serving the Docker API to docker-compose.
- ``HealthTimers``: podman schedules healthchecks with systemd timers, and there is no systemd here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGES = Path(__file__).resolve().parent / "images"
SUITE = "bookworm"  # Debian's python3 is 3.11, which the project supports
# The sandbox's hard limit is nofile=20000 and it lacks CAP_SYS_RESOURCE: podman's rootful defaults
# (1048576) make runc fail with "error setting rlimit". crun cannot run with hybrid cgroups here.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_config_dir = "{root}/networks"
"""
STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{root}/storage"
runroot = "{run}"
"""
DEFAULT_CACHE = Path("/var/cache/aurora-tests")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
DEBOOTSTRAP_S = 900.0
BUILD_S = 900.0


def cache_dir() -> Path:
    """Where images, base root file systems and podman's storage live between runs."""
    configured = os.environ.get("AURORA_CONTAINER_CACHE")
    if configured:
        return Path(configured)
    return DEFAULT_CACHE


def debian_mirror() -> str:
    """The mirror this machine's apt uses (base images come from the same packages)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def arch_name(arch: str | None = None) -> str:
    """Debian's and podman's name for an architecture (amd64, arm64), default this machine's."""
    if arch:
        return arch
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock between test runs (two checkouts may share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Podman:
    """``podman`` with the tests' own configuration and storage."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def configured(cls, root: Path | None = None) -> Podman:
        """Write the configuration files (idempotent) and return the runner."""
        root = root or cache_dir()
        # tmpfs: podman's run state must not survive a boot. One per storage (AURORA_CONTAINER_CACHE);
        # podman refuses a storage whose run directory changed, so the default's keeps its name.
        run = Path("/run/aurora-tests-podman")
        if root != DEFAULT_CACHE:
            run = run.with_name(f"{run.name}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}")
        for d in (root, root / "networks", root / "storage", run):
            d.mkdir(parents=True, exist_ok=True)
        conf = root / "containers.conf"
        storage = root / "storage.conf"
        _write_if_changed(conf, CONTAINERS_CONF.format(root=root))
        _write_if_changed(storage, STORAGE_CONF.format(root=root, run=run))
        env = {**os.environ, "CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage)}
        return cls(root, env)

    def run(
        self, *args: str, check: bool = True, timeout: float = 120.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``podman ARGS`` with captured output; ``check`` raises with its stderr."""
        done = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "exists", ref, check=False).returncode == 0

    def image_id(self, ref: str) -> str:
        return self.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()

    def image_size(self, ref: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())

    def inspect(self, container: str) -> dict[str, object]:
        data = json.loads(self.run("inspect", container).stdout)
        assert isinstance(data, list) and data
        first = data[0]
        assert isinstance(first, dict)
        return first

    # ------------------------------------------------------------------ images

    def debian(self, arch: str | None = None, suite: str = SUITE) -> str:
        """``localhost/aurora-test/debian:SUITE-ARCH`` from debootstrap, made once and cached."""
        arch = arch_name(arch)
        tag = f"localhost/aurora-test/debian:{suite}-{arch}"
        with locked(self.root / "locks" / f"debian-{suite}-{arch}"):
            if self.image_exists(tag):
                return tag
            tar = self.root / "rootfs" / f"{suite}-{arch}.tar"
            if not tar.exists():
                _debootstrap(tar, suite, arch, debian_mirror())
            self.run("import", "--arch", arch, str(tar), tag, timeout=300)
        return tag

    def build_cached(
        self, containerfile: Path, name: str, base: str, arch: str | None = None, *, context: Path = IMAGES
    ) -> str:
        """An image from ``containerfile`` ``FROM`` ``base``, tagged by a hash of both; built once."""
        arch = arch_name(arch)
        key = hashlib.sha256(containerfile.read_bytes() + self.image_id(base).encode()).hexdigest()[:12]
        tag = f"localhost/aurora-test/{name}:{arch}-{key}"
        with locked(self.root / "locks" / f"{name}-{arch}"):
            if not self.image_exists(tag):
                self.build(containerfile, tag, context, arch=arch, build_args={"BASE": base})
        return tag

    def build(
        self,
        containerfile: Path,
        tag: str,
        context: Path,
        *,
        arch: str | None = None,
        build_args: dict[str, str] | None = None,
        timeout: float = BUILD_S,
    ) -> float:
        """``podman build`` with pip's CA mounted and the host's network; returns its duration in s.

        pip inside a build needs this machine's CA bundle to reach the package registry: it is
        mounted at build time (never copied into a layer), as docker/README.md shows.
        """
        pip_conf = self.root / "pip.conf"
        _write_if_changed(pip_conf, "[global]\ncert = /run/host-ca.crt\n")
        argv = ["build", "--network=host", "--layers", "-f", str(containerfile), "-t", tag]
        argv += ["--arch", arch_name(arch)]
        argv += ["-v", f"{pip_conf}:/etc/pip.conf:ro"]
        if HOST_CA.exists():
            argv += ["-v", f"{HOST_CA}:/run/host-ca.crt:ro"]
        for key, value in (build_args or {}).items():
            argv += ["--build-arg", f"{key}={value}"]
        start = time.monotonic()
        self.run(*argv, str(context), timeout=timeout)
        return time.monotonic() - start

    def python_base(self, arch: str | None = None) -> str:
        """Stand-in for ``python:3.12-slim`` (docker/Dockerfile's ``ARG PYTHON_IMAGE``)."""
        return self.build_cached(IMAGES / "python-base.Containerfile", "python-base", self.debian(arch), arch)

    def mosquitto(self, arch: str | None = None) -> str:
        """Stand-in for ``eclipse-mosquitto:2``, also tagged with that name so compose.yaml finds it."""
        tag = self.build_cached(IMAGES / "mosquitto.Containerfile", "mosquitto", self.debian(arch), arch)
        self.run("tag", tag, "docker.io/library/eclipse-mosquitto:2")
        return tag

    # ------------------------------------------------------------------ Docker API

    @contextlib.contextmanager
    def docker_api(self) -> Iterator[str]:
        """``podman system service`` on a socket of its own; yields ``DOCKER_HOST``; stopped by PID."""
        sock_dir = Path(tempfile.mkdtemp(prefix="aurora-podman-"))
        sock = sock_dir / "podman.sock"
        log = (sock_dir / "service.log").open("wb")
        service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{sock}"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            end = time.monotonic() + 30
            while not sock.exists():
                if service.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"podman system service did not start: {sock_dir / 'service.log'}")
                time.sleep(0.05)
            yield f"unix://{sock}"
        finally:
            service.terminate()
            try:
                service.wait(10)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()
            log.close()
            shutil.rmtree(sock_dir, ignore_errors=True)


class HealthTimers(threading.Thread):
    """Runs ``podman healthcheck run`` for every running container of a compose project.

    The stand-in for the systemd timers podman would use: without it no healthcheck ever runs
    and compose's ``condition: service_healthy`` waits forever. It runs them every ``every_s``
    (faster than compose.yaml's 10 s interval, to keep the tests short; retries still apply).
    """

    def __init__(self, podman: Podman, project: str, every_s: float = 3.0) -> None:
        super().__init__(name=f"health-{project}", daemon=True)
        self.podman, self.project, self.every_s = podman, project, every_s
        self._halt = threading.Event()
        self._has_check: dict[str, bool] = {}

    def run(self) -> None:
        while not self._halt.wait(self.every_s):
            with contextlib.suppress(Exception):  # a container that went away mid-round
                self.round()

    def round(self) -> None:
        listed = self.podman.run(
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            check=False,
        )
        ids = listed.stdout.split()
        for cid in ids:
            if cid not in self._has_check:
                fmt = "{{if .Config.Healthcheck}}yes{{end}}"
                answer = self.podman.run("inspect", "--format", fmt, cid, check=False).stdout.strip()
                self._has_check[cid] = answer == "yes"
        checks = [
            subprocess.Popen(
                ["podman", "healthcheck", "run", cid],
                env=self.podman.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for cid in ids
            if self._has_check.get(cid)
        ]
        for check in checks:
            try:
                check.wait(30)
            except subprocess.TimeoutExpired:
                check.kill()
                check.wait()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def _debootstrap(tar: Path, suite: str, arch: str, mirror: str) -> None:
    """A minimal Debian root file system as a tarball (55 s for amd64, under 2 min for arm64)."""
    tar.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"debootstrap-{suite}-{arch}-", dir=tar.parent))
    try:
        rootfs = work / "rootfs"
        argv: Sequence[str] = [
            "debootstrap",
            "--variant=minbase",
            f"--arch={arch}",
            suite,
            str(rootfs),
            mirror,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=DEBOOTSTRAP_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap {suite} {arch} failed:\n{(done.stdout + done.stderr)[-3000:]}")
        partial = tar.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True, timeout=300)
        partial.replace(tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)
