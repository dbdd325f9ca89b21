"""`sgxsim exec` against the Python API, side by side in one run (issue 9):

* one enclave call (EENTER -> a trivial op -> EEXIT) made by the native test
  loader under `sgxsim exec`, and the same call through the Python API's vDSO
  (the same enclave machine code on the same engine); target <= 3x;
* the kernel's own SGX selftests (built from linux-source-6.12) under
  `sgxsim exec`, and `sgxsim selftest` (the Python re-implementation) with the
  same enclave code (``--encl-elf``) and with the model's test enclave;
  target <= 3x.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TITLE = "sgxsim exec: native programs on the model (issue 9)"
ROOT = Path(__file__).resolve().parents[1]
CALLS = 1000
ROUNDS = 3
# One Machine serves the whole suite under exec, so one EPC size: 64 pages (the
# Python suite uses 96, 48 for the two oversubscribed tests; 48 for all works
# too since the tracking-epoch fix, docs/exec.md "A finding (fixed)").
EXEC_EPC_PAGES = 64


def _timed(argv: list[str], cwd: Path | None = None) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{argv} failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")
    return time.perf_counter() - t


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """fd 1 to /dev/null (for a child that inherits it)."""
    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def _per_call(tmp: Path) -> tuple[float, float, float]:
    sys.path.insert(0, str(ROOT / "tests" / "exec"))
    import edmm

    from sgxsim.exec.engine import EnclaveEngine

    built = edmm.build(tmp)
    scripts = {}
    for n in (0, CALLS):
        scripts[n] = tmp / f"calls{n}.script"
        scripts[n].write_text("enter 0 nop 0 0\n" * n)
    from sgxsim.exec.run import run_program

    exec_t: dict[int, list[float]] = {n: [] for n in scripts}
    cpu_t: dict[int, list[float]] = {n: [] for n in scripts}
    py_t: dict[int, list[float]] = {n: [] for n in scripts}
    # Interleaved, the best of ROUNDS each: the machine is shared.  Exec runs
    # in this process (run_program is the body of `sgxsim exec`), so the
    # server's own CPU time is measured in the same run: the rest of the wall
    # time is the program's side and the scheduler.
    for _ in range(ROUNDS):
        for n in scripts:
            with _quiet():  # the loader's lines
                t, c = time.perf_counter(), time.process_time()
                run_program(built.argv(scripts[n]), env={"PATH": "/usr/bin:/bin"})
                exec_t[n].append(time.perf_counter() - t)
                cpu_t[n].append(time.process_time() - c)
            t = time.perf_counter()
            edmm.run_python(built, EnclaveEngine(), script=scripts[n])
            py_t[n].append(time.perf_counter() - t)
    return tuple((min(d[CALLS]) - min(d[0])) / CALLS for d in (exec_t, py_t, cpu_t))


def run() -> str:
    from sgxsim.exec.upstream import build_selftests

    with tempfile.TemporaryDirectory() as tmp:
        native, python, server_cpu = _per_call(Path(tmp))
    st = build_selftests()
    cli = [sys.executable, "-m", "sgxsim.cli"]
    t_exec = _timed([*cli, "exec", "--epc-pages", str(EXEC_EPC_PAGES), "--", "./test_sgx"],
                    cwd=st.dir)
    t_elf = _timed([*cli, "selftest", "--encl-elf", str(st.dir / "test_encl.elf")])
    t_model = _timed([*cli, "selftest"])
    rows = [
        "| measure | value | target |",
        "|---|---|---|",
        "| one enclave call under `sgxsim exec` (native loader, vDSO direct entry, server, "
        f"engine) | {native * 1e3:.2f} ms | |",
        f"| the same call through the Python API (Vdso + engine) | {python * 1e3:.2f} ms | |",
        f"| ratio exec / Python API | {native / python:.2f}x | <= 3x |",
        f"| of which the server's CPU time (the rest: the program's side and the "
        f"scheduler) | {server_cpu * 1e3:.2f} ms ({server_cpu / python:.2f}x) | |",
        f"| kernel selftests (test_sgx, 16 tests) under `sgxsim exec --epc-pages "
        f"{EXEC_EPC_PAGES}` | {t_exec:.2f} s | |",
        f"| `sgxsim selftest --encl-elf test_encl.elf` (same enclave code) | {t_elf:.2f} s | |",
        f"| `sgxsim selftest` (the model's test enclave) | {t_model:.2f} s | |",
        f"| ratio exec / `selftest --encl-elf` | {t_exec / t_elf:.2f}x | <= 3x |",
        f"| ratio exec / `selftest` | {t_exec / t_model:.2f}x | <= 3x |",
    ]
    return "\n".join(rows) + (
        f"\n\nPer-call figures subtract a run with no calls from a run with {CALLS} "
        f"(build, start-up and teardown cancel out), the best of {ROUNDS} interleaved "
        "rounds; exec runs in the bench's process (`run_program`, the body of `sgxsim "
        "exec`), which also gives the server's CPU time.  The selftest times include each "
        "command's start-up (Python, and for exec the native build check and the "
        "program's fork per test).  The oversubscribed tests size their enclave from "
        "CPUID's EPC size, so each side oversubscribes its own EPC.")
