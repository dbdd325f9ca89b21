"""The Linux kernel's own SGX selftests (tools/testing/selftests/sgx, from
Debian's linux-source-6.12, fetched and built at test time) under
`sgxsim exec`: the same passes and skips as sgxsim's Python re-implementation
(`sgxsim selftest`) on every configuration, and 16/16 on linux-6.0.

Run by ``make interop`` (and CI); deselected from ``make test`` (it downloads
the kernel source once into build/cache)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sgxsim.exec.upstream import build_selftests, parse_tap
from sgxsim.user.selftests import tap

pytestmark = pytest.mark.interop

CONFIGS = [("linux-6.0", False), ("linux-5.11", False), ("linux-6.0", True)]


@pytest.fixture(scope="module")
def selftests():
    return build_selftests()


def python_verdicts(kernel: str, sgx1: bool) -> dict[str, str]:
    lines: list[str] = []
    tap(kernel, sgx1, out=lines.append)
    return parse_tap("\n".join(lines))


@pytest.mark.parametrize(("kernel", "sgx1"), CONFIGS, ids=["linux-6.0", "linux-5.11", "sgx1"])
def test_kernel_selftests_under_exec(selftests, kernel, sgx1):
    argv = [sys.executable, "-m", "sgxsim.cli", "exec", "--kernel", kernel]
    argv += ["--sgx1"] if sgx1 else []
    r = subprocess.run([*argv, "--", "./test_sgx"], cwd=selftests.dir, capture_output=True,
                       text=True, timeout=1800)
    got = parse_tap(r.stdout)
    want = python_verdicts(kernel, sgx1)
    assert got == want, r.stdout[-6000:] + r.stderr[-3000:]
    if kernel == "linux-6.0" and not sgx1:
        assert len(got) == 16 and set(got.values()) == {"pass"}
        assert r.returncode == 0


def test_kernel_selftests_with_a_small_epc(selftests):
    """One 48-page EPC serves all 16 tests, the oversubscribed ones first:
    pages reclaimed right after MODIFY_TYPES come back by ELDU into slots of
    other pages; EACCEPT of them must not see those pages' tracking epochs
    (tcs_create failed with SGX_NOT_TRACKED before hw/epc.py cleared them)."""
    r = subprocess.run([sys.executable, "-m", "sgxsim.cli", "exec", "--epc-pages", "48", "--",
                        "./test_sgx"], cwd=selftests.dir, capture_output=True, text=True, timeout=1800)
    got = parse_tap(r.stdout)
    assert len(got) == 16 and set(got.values()) == {"pass"}, r.stdout[-6000:] + r.stderr[-3000:]
    assert r.returncode == 0
