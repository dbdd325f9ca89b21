"""The 16 tests of tools/testing/selftests/sgx/main.c on the model, with the
kernel's expected values; the SGX2 tests take the real skip paths on 5.11
and on an SGX1 CPU."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sgxsim.cli import main
from sgxsim.user import selftests as S

SGX2_TESTS = {"unclobbered_vdso_oversubscribed_remove", "tcs_permissions", "epcm_permissions",
              "augment", "augment_via_eaccept", "tcs_create", "remove_added_page_no_eaccept",
              "remove_added_page_invalid_access", "remove_added_page_invalid_access_after_eaccept",
              "remove_untouched_page"}


@pytest.mark.parametrize("name,fn", S.TESTS, ids=[n for n, _ in S.TESTS])
def test_passes_on_linux_6_0(name, fn):
    assert S.run_one(fn, "linux-6.0", False) == ("ok", "")


@pytest.mark.parametrize("name,fn", S.TESTS, ids=[n for n, _ in S.TESTS])
def test_linux_5_11_takes_the_skip_paths(name, fn):
    verdict, detail = S.run_one(fn, "linux-5.11", False)
    if name in SGX2_TESTS:
        assert verdict == "skip", detail
        assert ("adding pages" in detail) if name.startswith("augment") else ("ioctls" in detail)
    else:
        assert verdict == "ok", detail


@pytest.mark.parametrize("name,fn", S.TESTS, ids=[n for n, _ in S.TESTS])
def test_sgx1_cpu_takes_the_skip_paths(name, fn):
    verdict, detail = S.run_one(fn, "linux-6.0", True)
    assert verdict == ("skip" if name in SGX2_TESTS else "ok"), detail


def test_oversubscription_really_evicts_and_reloads():
    env = S._oversub_env("linux-6.0", False)
    drv = env.machine.kernel.sgx
    ewb, eldu = drv.stats["ewb"], drv.stats["eldu"]
    assert ewb > 0
    S.put_get(env)
    assert drv.stats["eldu"] > eldu, "the enclave's pages were not loaded back"


def test_cli_prints_tap():
    r = CliRunner().invoke(main, ["selftest", "--kernel", "linux-5.11"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "1..16" in lines
    assert "ok 1 enclave.unclobbered_vdso" in lines
    assert any(line.startswith("ok 10 enclave.augment # SKIP") for line in lines)


def test_linux_6_12_passes_all_sixteen():
    """`sgxsim selftest --kernel linux-6.12`: 6.12's main.c has the same 16
    tests as the 6.0-era suite the model runs (docs/linux-6.12.md)."""
    r = CliRunner().invoke(main, ["selftest", "--kernel", "linux-6.12"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "1..16" in lines and "# Totals: pass:16 fail:0 xfail:0 xpass:0 skip:0 error:0" in lines
    assert not [line for line in lines if "SKIP" in line or line.startswith("not ok")]
