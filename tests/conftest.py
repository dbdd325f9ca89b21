"""Shared fixtures: where the public test data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# ../shared next to the checkout; SGXSIM_SHARED names it elsewhere (a git
# worktree, for one).
SHARED = Path(os.environ.get("SGXSIM_SHARED") or ROOT.parent / "shared")
VECTORS = SHARED / "vectors"


@pytest.fixture
def enarx_vector() -> Path:
    """The enarx/sgx measurement vector; skipped where ../shared is absent,
    except in CI (``CI`` set), where its absence is a failure."""
    d = VECTORS / "enarx-sgx"
    if not (d / "encl.bin").is_file():
        why = (f"public vector not available: {d} is absent (it lives in ../shared; "
               "SGXSIM_SHARED names another place)")
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(why)
        pytest.skip(why)
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
