"""Paths of the test data kept in the repository (tests/data/README.md says where each came from).

No test reads anything outside the checkout, so a clone anywhere passes ``make test``."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"

JFCLICHE_FLAT = DATA / "jfcliche-flat.yml"
"""A real unit's full scan (ABC 3.06 ABCSTD, AXB 2.03, AWL 2.01) as ``address: raw word``."""
ORIG_FETCH_VALID = DATA / "orig-fetch-valid.yml"
"""What the original ``aurora_fetch <seed dump> valid --yaml`` printed."""
SEED_DUMP = DATA / "orig-seed-dump.yml"
"""The original's seed dump (a small unit)."""
ORIG_BRIDGE_RETAINED = DATA / "orig-bridge-retained.txt"
"""Every retained message the original bridge (v1.6.4) published for the seed dump."""
SPEC_REGISTERS = DATA / "registers.json"
"""The register map as its source document lists it."""
SPEC_CONSTANTS = DATA / "register_constants.json"
"""REGISTER_RANGES, breakpoints and fault names as the source document lists them."""
RPC_FUZZ_SEEDS = DATA / "rpc-fuzz-seeds.jsonl"
"""Hostile payloads for the ``$modbus`` parsers, one JSON line each (topic, hex payload, why)."""
