"""`make demo` as the README promises: broker, sim, bridge and web come up and data flows."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_the_demo_starts_the_whole_suite_and_fetches_through_the_broker() -> None:
    """scripts/demo.py --check: the same start-up as `make demo`, then it proves a fetch and stops."""
    root = Path(tempfile.mkdtemp(prefix="aurora-demo-"))
    root.chmod(0o711)  # mosquitto, after dropping root, must pass through to its files
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "demo.py"), "--check", "--root", str(root / "demo")],
            capture_output=True,
            text=True,
            timeout=180,
        )
        logs = "\n".join(p.read_text(errors="replace") for p in (root / "demo" / "logs").glob("*.log"))
        assert 0 == done.returncode, done.stdout + done.stderr + logs
        assert "Heating Set Point (745): 68.0°F" in done.stdout
        assert "web UI      http://127.0.0.1:" in done.stdout
        secret_values = {p.read_text().strip() for p in (root / "demo" / "etc").rglob("password")}
        assert secret_values and not any(v in done.stdout + logs for v in secret_values)
    finally:
        shutil.rmtree(root, ignore_errors=True)
