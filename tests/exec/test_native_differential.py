"""What runtimes do, natively under `sgxsim exec` and on the Python API: the
same enclave machine code, the same script, the same results errno for
errno and fault for fault (tests/exec/native/edmm.script)."""

from __future__ import annotations

import os
import subprocess
import sys

import edmm
import pytest

from sgxsim.exec.engine import EnclaveEngine

CONFIGS = [("linux-6.0", True), ("linux-5.11", True), ("linux-6.0", False)]


@pytest.mark.parametrize(("kernel", "sgx2"), CONFIGS, ids=["linux-6.0", "linux-5.11", "sgx1"])
def test_native_loader_matches_the_python_api(native, kernel, sgx2):
    _matches(native["edmm"], kernel, sgx2)


# How the vDSO's ENCLU reaches the server (docs/exec.md): the direct entry
# (the default, tested above), the direct entry loading every reply through
# its trap, and the ENCLU raising SIGILL.
@pytest.mark.parametrize("entry", ["trap", "sigill"])
def test_every_vdso_entry_matches_the_python_api(native, entry):
    _matches(native["edmm"], "linux-6.0", True, entry)


def _matches(built, kernel, sgx2, entry=None):
    argv = [sys.executable, "-m", "sgxsim.cli", "exec", "--kernel", kernel]
    argv += [] if sgx2 else ["--sgx1"]
    env = dict(os.environ)
    if entry:
        env["SGXSIM_VDSO_ENTRY"] = entry
    r = subprocess.run([*argv, "--", *built.argv()], capture_output=True, text=True, timeout=300,
                       env=env)
    assert r.returncode == 0, r.stderr
    want = edmm.run_python(built, EnclaveEngine(), kernel=kernel, sgx2=sgx2)
    assert r.stdout.splitlines() == want


def test_the_sequence_shows_what_runtimes_trip_over(native):
    """The outcomes the runtimes' trackers report, from the model (linux-6.0)."""
    out = dict(line.split(" -> ", 1) for line in
               edmm.run_python(native["edmm"], EnclaveEngine())[1:])
    assert out["enter 0 eaccept a000 20b"].endswith("op.ret 0")  # EAUG by EACCEPT
    assert "vector 14 error_code 0x8007" in out["enter 0 write 7000 7"]  # restricted to R
    assert out["mprotect c000 1000 rwx"] == "-1 EACCES"  # a TCS is never RWX
    assert "function 4" in out["enter c000 nop 0 0"]  # entry through the new TCS
    assert out["remove 8000 1000"] == "0 - count 0x1000"
    assert "vector 14 error_code 0x8005" in out["enter 0 read 8000 0"]  # removed
