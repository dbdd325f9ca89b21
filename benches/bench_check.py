"""The checker on the real Machine, side by side in one run:

* the whole matrix (8 designs x 9 properties) at the default scope and depth,
  with 1 and with 2 workers (designs spread over the workers), against the
  target of 60 s with ``--workers 2``;
* one design (linux-6.0, the largest SGX2 state space) with 1 and 2 workers
  per BFS level;
* per design: distinct states, transitions, the share of transitions that
  needed a fresh copy of the parent (a thaw), states and transitions per
  second.
"""

from __future__ import annotations

import time

from sgxsim.check import runner
from sgxsim.check.cli import DESIGNS, _factory
from sgxsim.check.explorer import explore
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.properties import PROPERTIES
from sgxsim.check.scope import Scope

TITLE = "Checker: BFS over the real Machine"
DEPTH = 6


def _matrix(workers: int) -> float:
    t = time.perf_counter()
    runner.check(_factory(Scope()), list(DESIGNS), list(PROPERTIES), depth=DEPTH, workers=workers)
    return time.perf_counter() - t


def _design(design: str, workers: int):
    model = MachineModel(design, Scope())
    model.initial()
    t = time.perf_counter()
    exp = explore(model, None, depth=DEPTH, workers=workers)
    return exp, time.perf_counter() - t


def run() -> str:
    m1, m2 = _matrix(1), _matrix(2)
    out = ["| run | workers | seconds | speed-up | target |", "|---|---|---|---|---|",
           f"| matrix, 8 designs x 9 properties, depth {DEPTH} | 1 | {m1:.1f} | 1.00x | |",
           f"| matrix, 8 designs x 9 properties, depth {DEPTH} | 2 | {m2:.1f} | {m1 / m2:.2f}x "
           f"| <= 60 s, >= 1.7x |"]
    e1, s1 = _design("linux-6.0", 1)
    e2, s2 = _design("linux-6.0", 2)
    out.append(f"| linux-6.0 alone, workers per BFS level | 1 | {s1:.1f} | 1.00x | |")
    out.append(f"| linux-6.0 alone, workers per BFS level | 2 | {s2:.1f} | {s1 / s2:.2f}x | >= 1.7x |")
    out += ["", "| design | distinct states | transitions | thawed | states/s | transitions/s |",
            "|---|---|---|---|---|---|"]
    for d in DESIGNS:
        exp, s = _design(d, 1)
        out.append(f"| {d} | {exp.states} | {exp.transitions} | {exp.thaws / exp.transitions:.0%} "
                   f"| {exp.states / s:.0f} | {exp.transitions / s:.0f} |")
    out.append("\nDefault scope (one explored page besides the runtime's five, all sources, "
               "perms R/RW/RX/RWX, all actions), one worker per design row.  A transition is one "
               "action on a copy of its parent; 'thawed' is the share that needed a fresh copy "
               "(the rest reused a machine whose fingerprint the previous action left unchanged).")
    return "\n".join(out)
