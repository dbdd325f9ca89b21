"""The kernel's own test enclave, compiled from the kernel source at test time,
runs its real machine code on the engine under the selftests of main.c: 16/16
on linux-6.0, and the same passes and skips as the model's test enclave on
linux-5.11 and on an SGX1 CPU."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sgxsim.cli import main
from sgxsim.exec.engine import EnclaveEngine
from sgxsim.user import selftests as S


@pytest.mark.parametrize("name,fn", S.TESTS, ids=[n for n, _ in S.TESTS])
def test_passes_on_linux_6_0(kernel_test_encl, name, fn):
    assert S.run_one(fn, "linux-6.0", False, kernel_test_encl) == ("ok", "")


@pytest.mark.parametrize("kernel,sgx1", [("linux-5.11", False), ("linux-6.0", True)])
def test_same_verdicts_as_the_model_enclave(kernel_test_encl, kernel, sgx1):
    real = [S.run_one(fn, kernel, sgx1, kernel_test_encl) for _, fn in S.TESTS]
    model = [S.run_one(fn, kernel, sgx1) for _, fn in S.TESTS]
    assert real == model
    assert {v for v, _ in real} == {"ok", "skip"}


def test_the_real_code_runs_on_the_engine(kernel_test_encl):
    env = S.setup_test_encl("linux-6.0", False, elf=kernel_test_encl)
    assert isinstance(env.vdso.library, EnclaveEngine)
    # The real image's layout, not the model's: text spans two pages here.
    assert [s.offset for s in env.encl.segments][:3] == [0, 0x2000, 0x4000]
    S.put_get(env)
    assert env.vdso.library.fills > 0  # pages came through the model's access check


def test_cli_encl_elf(kernel_test_encl, tmp_path):
    elf = tmp_path / "test_encl.elf"
    elf.write_bytes(kernel_test_encl)
    r = CliRunner().invoke(main, ["selftest", "--kernel", "linux-6.0", "--encl-elf", str(elf)])
    assert r.exit_code == 0, r.output
    assert "# Totals: pass:16 fail:0" in r.output
    assert "SKIP" not in r.output


def test_cli_encl_elf_bad_file_is_a_clear_error(tmp_path):
    for name, data in (("garbage.elf", b"not an ELF"), ("empty.elf", b"")):
        bad = tmp_path / name
        bad.write_bytes(data)
        r = CliRunner().invoke(main, ["selftest", "--encl-elf", str(bad)])
        assert r.exit_code == 2 and "not an enclave ELF" in r.output, r.output
        assert "Traceback" not in r.output
