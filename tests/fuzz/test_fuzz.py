"""The fuzzer (docs/fuzzing.md): its CI slice, its corpus of reproductions,
the examples of its page, and that it does report what it hunts."""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sgxsim.cli import main
from sgxsim.fuzz import fuzz, make_case, reproduction, run_case
from sgxsim.fuzz.runner import Case, shrink
from sgxsim.kernel import registry


def _terminal_sigint() -> None:
    """In the child before exec: SIGINT at its default, as in a terminal's
    foreground job (a CI runner or a background shell may start us with it
    ignored, and an ignored SIGINT is inherited and rightly left ignored)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.py"))
CI_SEED, CI_CASES = 12, 2000


def test_ci_slice_finds_nothing():
    rep = fuzz(CI_SEED, cases=CI_CASES, shrink_seconds=30)
    assert rep.cases == CI_CASES and set(rep.by_kernel) == set(registry.names())
    assert rep.steps > 10 * CI_CASES
    assert rep.findings == [], "\n\n".join(src for _, _, src in rep.findings)


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_reproduction_runs_clean(path):
    runpy.run_path(str(path), run_name="__main__")


def test_cases_are_a_function_of_the_seed():
    a, b = make_case(5, 17), make_case(5, 17)
    assert a == b and make_case(6, 17) != a
    assert reproduction(a) == reproduction(b)


def test_a_planted_leak_is_found_shrunk_and_reproduced(monkeypatch):
    from sgxsim.kernel.linux import Linux

    monkeypatch.setattr(Linux, "evict_inode", lambda self, inode: None)
    case = Case("linux", 32, [("spawn",), ("mmap", 0, ("raw", 0), 0x4000, 3, 0x21, -1, 0),
                              ("peek", 0, ("at", 0, 0, 0), 8), ("mprotect", 0, ("at", 0, 0, 0),
                                                                0x1000, 1),
                              ("poke", 0, ("at", 1, 1, 0), 8)])
    out = run_case(case)
    assert out.finding is not None and "RAM frames left" in out.finding.detail
    small = shrink(case, out.finding, budget_s=30)
    assert len(small.steps) < len(case.steps)
    src = reproduction(small)
    with pytest.raises(AssertionError, match="RAM frames left"):
        exec(compile(src, "repro.py", "exec"), {})


def test_a_stray_exception_and_a_slow_step_are_findings(monkeypatch):
    from sgxsim.kernel.process import Process

    case = Case("linux-6.0", 32, [("spawn",), ("mprotect", 0, ("at", 0, 0, 0), 0x1000, 1)])
    monkeypatch.setattr(Process, "mprotect", lambda self, *a: {}["boom"])
    f = run_case(case).finding
    assert f.kind == "exception" and f.signature.startswith("KeyError")
    monkeypatch.setattr(Process, "mprotect", lambda self, *a: time.sleep(2))
    f = run_case(case, step_seconds=0.2).finding
    assert f.kind == "timeout"


def test_ctrl_c_keeps_the_report_of_the_cases_finished(monkeypatch):
    # fuzz() lost everything to a KeyboardInterrupt; now Interrupted (still
    # a KeyboardInterrupt) carries the report of the cases finished.  A case
    # whose finding was being shrunk is not one of them.
    import sgxsim.fuzz as F
    from sgxsim.fuzz.runner import Finding, Outcome

    def fake_run_case(case):
        n = fake_run_case.calls = getattr(fake_run_case, "calls", 0) + 1
        if n == 4:
            raise KeyboardInterrupt
        finding = Finding("exception", f"planted {n}", "", 0) if n in (2, 3) else None
        return Outcome(steps=10, finding=finding)

    def fake_shrink(case, finding, budget):
        if finding.signature == "planted 3":
            raise KeyboardInterrupt  # Ctrl-C while shrinking case 3's finding
        return case

    monkeypatch.setattr(F, "run_case", fake_run_case)
    monkeypatch.setattr(F, "shrink", fake_shrink)
    with pytest.raises(F.Interrupted) as e:
        fuzz(0, cases=10)
    assert isinstance(e.value, KeyboardInterrupt)
    rep = e.value.report
    assert (rep.cases, rep.steps) == (2, 20)
    assert [f.signature for _, f, _ in rep.findings] == ["planted 2"]


def test_cli_ctrl_c_prints_the_summary_and_exits_130(tmp_path):
    # Ctrl-C printed click's "Aborted!" and exited 1, which for fuzz means
    # "something was found" (docs/fuzzing.md), with no summary.
    import os
    import signal
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "sgxsim.cli", "fuzz", "--seconds", "600"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=_terminal_sigint)
    try:
        first = p.stderr.readline()  # the progress line after 50 cases: it is fuzzing
        assert first.startswith("# 50 cases"), first
        os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "Aborted" not in err and "Traceback" not in err
    summary = out.splitlines()[-1]
    assert summary.startswith("fuzz seed 0: ") and " 0 findings" in summary
    cases = int(summary.split(": ")[1].split()[0])
    assert cases >= 50
    assert err.splitlines()[-1] == (f"interrupted: the findings and the summary above are those of the {cases} "
                                    "cases finished before Ctrl-C")


# docs/fuzzing.md's examples run in tests/test_docs.py.


def test_cli_rejects_an_unknown_kernel():
    r = CliRunner().invoke(main, ["fuzz", "--cases", "1", "--kernel", "linux-9"])
    assert r.exit_code == 2 and "unknown kernel" in r.output


def test_epc_starvation_ends_a_case_without_a_finding():
    # Found by the first 30-minute run (seed 2026, case 13176): eleven
    # enclaves (SECS and VA pages, which no reclaimer can take) leave three
    # usable pages of a 16-page EPC, fewer than one entry needs at once: the
    # fault path retries for ever, as any kernel would.
    out = run_case(make_case(2026, 13176), step_seconds=2)
    assert out.finding is None and out.starved.startswith("EPC starvation")


def test_a_livelock_with_reclaimable_epc_is_still_a_finding(monkeypatch):
    from sgxsim.kernel.sgx.main import SgxMain

    # Undo finding 1's fix: ksgxd runs at every fault's return again.
    monkeypatch.setattr(SgxMain, "ksgxd_service_after_fault",
                        lambda self, vmf: self.ksgxd_service())
    case = Case("linux-6.0", 24, [("spawn",), ("build", 0, 1),
                                  ("enter", 0, 4, (0, 0, 0), (0, 0, 0, 0), 2, 0, "none", False)])
    out = run_case(case, step_seconds=2)
    assert out.finding is not None and out.finding.kind == "timeout" and not out.starved


def test_cli_rejects_a_run_of_no_time():
    # --seconds 0 ran nothing and reported "0 cases ... ()" as a clean run.
    for opt, bad in (("--seconds", "0"), ("--seconds", "-1"), ("--seconds", "nan"),
                     ("--shrink-seconds", "nan")):
        r = CliRunner().invoke(main, ["fuzz", "--cases", "1", opt, bad])
        assert r.exit_code == 2 and opt in r.output, (opt, bad, r.output)


def test_a_step_timeout_swallowed_once_still_ends_the_step():
    # The interpreter drops an exception raised in a finalizer or weakref
    # callback; when the alarm's StepTimeout landed there (the garbage
    # collector running one mid-step), the one alarm was spent and CI's
    # starvation case ran for ever.  The alarm now fires again until the
    # step ends.  Here the step itself swallows the first one.
    import signal

    from sgxsim.fuzz.runner import Live, _alarm, _execute

    lines = ["try:\n    while True:\n        pass\nexcept BaseException:\n    pass\nwhile True:\n    pass"]
    old = signal.signal(signal.SIGALRM, _alarm)  # as run_case() installs it
    try:
        finding = _execute(lines, {}, Live(), 0, 0.2, True)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert finding is not None and finding.kind == "timeout"
