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


@pytest.fixture(scope="session")
def signing_key():  # -> rsa.RSAPrivateKey
    """One fresh RSA-3072 e=3 key per test session (generation is slowish)."""
    from sgxsim.hw.sigstruct import generate_key

    return generate_key()


def pytest_addoption(parser):
    parser.addoption("--diff-seed", type=int, default=20261123,
                     help="seed of the differential mm test's random sequences")
    parser.addoption("--diff-count", type=int, default=2000,
                     help="number of 20-step sequences the differential mm test runs")
