"""Fixtures: the kernel's test_encl.elf and sgxsim's own enclave, built once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kselftest_sgx  # noqa: E402

from sgxsim.exec import encl as E  # noqa: E402


@pytest.fixture(scope="session")
def kernel_test_encl() -> bytes:
    try:
        return kselftest_sgx.test_encl_elf().read_bytes()
    except kselftest_sgx.Unavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def own_encl(tmp_path_factory) -> bytes:
    return E.build(tmp_path_factory.mktemp("encl")).read_bytes()
