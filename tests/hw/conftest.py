"""Fixtures for the CPU-model tests."""

from __future__ import annotations

import pytest

from sgxsim.hw import sigstruct as sigmod
from sgxsim.hw.cpu import Cpu


@pytest.fixture(scope="session")
def key():
    return sigmod.generate_key()


@pytest.fixture
def cpu() -> Cpu:
    return Cpu(256)
