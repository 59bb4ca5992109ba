"""No test reads outside the checkout: tests/conftest.py refuses such opens in every run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, reads_outside_checkout


def test_a_neighbour_of_the_checkout_is_outside(tmp_path: Path) -> None:
    repo = tmp_path / "work" / "aurora"
    assert reads_outside_checkout(repo.parent / "shared" / "spec" / "registers.md", repo)
    assert reads_outside_checkout(str(repo / ".." / "shared"), repo)
    assert not reads_outside_checkout(repo / "tests" / "data" / "registers.json", repo)
    assert not reads_outside_checkout("/etc/ssl/certs/ca-certificates.crt", repo)
    assert not reads_outside_checkout(3, repo)  # a file descriptor


def test_opening_a_neighbour_of_this_checkout_is_refused() -> None:
    neighbour = REPO.parent / "shared" / "README.md"
    if not reads_outside_checkout(neighbour):
        pytest.skip(f"this checkout sits in a system or home directory ({REPO.parent}): not checked")
    with pytest.raises(PermissionError, match="inside the checkout"):
        neighbour.open()
