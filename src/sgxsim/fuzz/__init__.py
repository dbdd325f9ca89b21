"""The project's own fuzzer: seeded random and hostile call sequences on every
kernel and design, invariants after every step, findings shrunk into runnable
reproductions.  ``sgxsim fuzz --seconds N --seed S`` (docs/fuzzing.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sgxsim.fuzz.runner import Case, Finding, make_case, reproduction, run_case, shrink

__all__ = ["Interrupted", "Report", "fuzz", "make_case", "reproduction", "run_case", "shrink"]


@dataclass
class Report:
    seed: int
    cases: int = 0
    steps: int = 0
    seconds: float = 0.0
    by_kernel: dict[str, int] = field(default_factory=dict)
    starved: int = 0  # cases that ended in EPC starvation (runner.WORKING_SET)
    findings: list[tuple[Case, Finding, str]] = field(default_factory=list)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fuzz`: still a KeyboardInterrupt, carrying the
    :class:`Report` of the cases finished before it (their findings shrunk)."""

    def __init__(self, report: Report):
        super().__init__()
        self.report = report


def fuzz(seed: int, seconds: float | None = None, cases: int | None = None,
         kernels: list[str] | None = None, shrink_seconds: float = 60.0,
         progress: Callable[[Report], None] | None = None) -> Report:
    """Run cases 0, 1, 2, ... of ``seed`` until ``cases`` ran or ``seconds``
    passed (whichever comes first; one of them is needed).  The cases are a
    function of the seed alone, so a time-bounded run does a prefix of the
    same sequence.  Each finding is shrunk (one per distinct signature).
    Ctrl-C raises :class:`Interrupted` with the report of the cases
    finished (a case counts once it ran and its finding was shrunk)."""
    if seconds is None and cases is None:
        raise ValueError("give seconds or cases")
    rep = Report(seed)
    t0 = time.perf_counter()
    seen: set[tuple[str, str]] = set()
    i = 0
    try:
        while (cases is None or i < cases) and (seconds is None or time.perf_counter() - t0 < seconds):
            case = make_case(seed, i, kernels)
            out = run_case(case)
            f = out.finding
            found = None
            if f is not None and (f.kind, f.signature) not in seen:
                small = shrink(case, f, shrink_seconds)
                found = (small, f, reproduction(small))
            rep.cases += 1
            rep.steps += out.steps
            rep.by_kernel[case.kernel] = rep.by_kernel.get(case.kernel, 0) + 1
            rep.starved += bool(out.starved)
            if found is not None:
                seen.add((f.kind, f.signature))
                rep.findings.append(found)
            i += 1
            if progress is not None and i % 50 == 0:
                rep.seconds = time.perf_counter() - t0
                progress(rep)
    except KeyboardInterrupt:
        rep.seconds = time.perf_counter() - t0
        raise Interrupted(rep) from None
    rep.seconds = time.perf_counter() - t0
    return rep
