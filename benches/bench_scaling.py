"""Scaling of the exhaustive search (issue 10): one design at one scope,
explored four times in one run: the local engine with one worker and with
two, the Ray engine with one actor and with two (one local Ray cluster for
both, its start-up timed on its own).

* ``wall s``: the whole search; ``start-up s``: until the workers are ready
  (forked processes, or Ray actors); ``search s``: the rest, the levels;
* ``CPU path s``: per level the busiest worker's CPU seconds, plus the
  coordinator's CPU seconds where the workers are other processes: the wall
  time the search would take on cores of its own (what a loaded machine
  cannot show in wall time);
* the states, levels and findings of the four runs must agree (the row says
  so if not).

Scope: ``SGXSIM_BENCH_SCALING_DESIGN`` (default linux-6.0), ``--pages 2``,
depth ``SGXSIM_BENCH_SCALING_DEPTH`` (default 4: about 25 s of CPU on one
worker).
"""

from __future__ import annotations

import os
import time

TITLE = "Checker scaling: 1 and 2 workers on the local and the Ray engine"


def _row(name, workers, exp, ref):
    same = (exp.states, exp.levels, {k: (f.depth, f.path) for k, f in exp.findings.items()}) == ref
    search = exp.seconds - exp.startup
    return (f"| {name} | {workers} | {exp.states}{'' if same else ' (DIFFERENT)'} | {exp.seconds:.1f} "
            f"| {exp.startup:.1f} | {search:.1f} | {exp.cpu_path:.1f} | {exp.states / search:.0f} |")


def run() -> str:
    from sgxsim.check.explorer import explore
    from sgxsim.check.machine_model import MachineModel
    from sgxsim.check.ray_engine import session
    from sgxsim.check.scope import Scope

    design = os.environ.get("SGXSIM_BENCH_SCALING_DESIGN", "linux-6.0")
    depth = int(os.environ.get("SGXSIM_BENCH_SCALING_DEPTH", "4"))
    model = MachineModel(design, Scope(pages=2))
    load0 = os.getloadavg()
    runs = {}
    for w in (1, 2):
        runs[("local", w)] = explore(model, depth=depth, workers=w)
    t = time.perf_counter()
    with session(None, 2):
        ray_start = time.perf_counter() - t
        for w in (1, 2):
            runs[("ray", w)] = explore(model, depth=depth, workers=w, engine="ray")
    load1 = os.getloadavg()
    first = runs[("local", 1)]
    ref = (first.states, first.levels, {k: (f.depth, f.path) for k, f in first.findings.items()})
    rows = [f"Scope: `{design} --pages 2 --depth {depth}`, every property; {first.transitions} "
            f"transitions.", "",
            "| engine | workers | states | wall s | start-up s | search s | CPU path s | states/s (search) |",
            "|---|---|---|---|---|---|---|---|"]
    rows += [_row(e, w, x, ref) for (e, w), x in runs.items()]

    def search(k):
        return runs[k].seconds - runs[k].startup

    def path(k):
        return runs[k].cpu_path

    rows += ["", "| ratio | by search wall time | by CPU path (own cores) | target |", "|---|---|---|---|"]
    for e in ("local", "ray"):
        rows.append(f"| {e}: 1 -> 2 workers speed-up | {search((e, 1)) / search((e, 2)):.2f}x "
                    f"| {path((e, 1)) / path((e, 2)):.2f}x | >= 1.7x |")
    rows.append(f"| Ray against local at 2 workers (overhead) | "
                f"{search(('ray', 2)) / search(('local', 2)) - 1:+.0%} "
                f"| {path(('ray', 2)) / path(('local', 2)) - 1:+.0%} | <= +15% |")
    rows += ["", f"Ray's local cluster took {ray_start:.1f} s to start (not in any row; each Ray row's "
             "start-up is its actors').  Load average (1, 5, 15 min) before: "
             f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after: {load1[0]:.2f} {load1[1]:.2f} "
             f"{load1[2]:.2f}, on {os.cpu_count()} CPUs.  On a shared machine the wall-time ratios are "
             "a floor: with the kernel's autogroup scheduling all the processes of one session share "
             "one session's CPU share, so a second worker gains wall time only from idle cores; the "
             "CPU-path column is what the engines would do on cores of their own."]
    return "\n".join(rows)
