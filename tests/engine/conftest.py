"""Fixtures: the kernel's test_encl.elf and sgxsim's own enclave, built once.

test_encl.elf is built at test time from Debian's linux-source-6.12 with the
selftests' own Makefile (sgxsim.exec.upstream, the same tree `make interop`
uses); nothing of it is committed.  A source that cannot be fetched is a
failure, not a skip."""

from __future__ import annotations

import pytest

from sgxsim.exec import encl as E
from sgxsim.exec.upstream import build_selftests


@pytest.fixture(scope="session")
def kernel_test_encl() -> bytes:
    return (build_selftests().dir / "test_encl.elf").read_bytes()


@pytest.fixture(scope="session")
def own_encl(tmp_path_factory) -> bytes:
    return E.build(tmp_path_factory.mktemp("encl")).read_bytes()
