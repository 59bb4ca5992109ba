"""The image built for linux/arm64 (qemu user emulation, as docker/README.md shows) and its smoke
test: the simulator and ``aurora_fetch`` inside the arm64 image. Slow (every build step runs
emulated), so only ``make arm64`` runs it (AURORA_TEST_ARM64=1)."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from .podman import REPO, Podman

pytestmark = [
    pytest.mark.containers,
    pytest.mark.arm64,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(not os.environ.get("AURORA_TEST_ARM64"), reason="make arm64 runs it (qemu: slow)"),
]

BINFMT = Path("/proc/sys/fs/binfmt_misc")
# inside the container: the sim on a TCP port, wait until it listens, then fetch from it
SMOKE = (
    "aurora_sim --tcp 127.0.0.1:2000 >/tmp/sim.out 2>/tmp/sim.log & "
    "for i in $(seq 600); do python -m aurora.setup.healthcheck listening 2000 >/dev/null && break; "
    "sleep 0.1; done; uname -m; aurora_fetch tcp://127.0.0.1:2000/ 745-747"
)


def _enable_qemu() -> None:
    """Register qemu-aarch64 with the kernel (binfmt_misc), as qemu-user-static's package would."""
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=False)
    subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, check=False)
    if not (BINFMT / "qemu-aarch64").exists():
        pytest.fail("qemu-aarch64 is not registered with binfmt_misc: run 'make setup' (qemu-user-static)")


def test_the_arm64_image_builds_and_runs_the_sim_and_fetch() -> None:
    if os.geteuid() != 0:
        pytest.skip("the container tests need root: rootful podman (docker/README.md)")
    _enable_qemu()
    podman = Podman.configured()
    start = time.monotonic()
    base = podman.python_base("arm64")
    base_s = time.monotonic() - start
    image = f"localhost/aurora-test/suite:arm64-{uuid.uuid5(uuid.NAMESPACE_URL, str(REPO)).hex[:12]}"
    build_s = podman.build(
        REPO / "docker/Dockerfile", image, REPO, arch="arm64", build_args={"PYTHON_IMAGE": base}, timeout=3000
    )
    arch = podman.run("image", "inspect", "--format", "{{.Architecture}}", image).stdout.strip()
    assert arch == "arm64"
    run_start = time.monotonic()
    done = podman.run("run", "--rm", "--arch", "arm64", "--read-only", image, "sh", "-c", SMOKE, timeout=600)
    run_s = time.monotonic() - run_start
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "aarch64"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "Heating Set Point (745)",
        "Cooling Set Point (746)",
        "Ambient Temperature (747)",
    ], done.stdout + done.stderr
    assert all(re.search(r": -?\d+\.\d°F$", line) for line in lines[1:])
    print(
        f"\narm64 figures: base_images_s={base_s:.0f} image_build_s={build_s:.0f} smoke_run_s={run_s:.0f} "
        f"image_size_mb={podman.image_size(image) / 1e6:.0f}"
    )
