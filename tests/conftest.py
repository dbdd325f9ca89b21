"""Shared fixtures: where the public test data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
VECTORS = SHARED / "vectors"


@pytest.fixture
def enarx_vector() -> Path:
    """The enarx/sgx measurement vector; skipped where ../shared is absent."""
    d = VECTORS / "enarx-sgx"
    if not (d / "encl.bin").is_file():
        pytest.skip(f"public vector not available: {d} is absent (it lives in ../shared)")
    return d
