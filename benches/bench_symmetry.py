"""The page-symmetry reduction (``--symmetry``, check/symmetry.py): the same
search with and without it, side by side in one run, one worker.

* ``--pages 2`` at depth ``SGXSIM_BENCH_SYM_DEPTH2`` (default 5), linux-6.0:
  the swap of the two pages;
* ``--pages 3`` at depth ``SGXSIM_BENCH_SYM_DEPTH3`` (default 4), linux-6.0,
  without ``mprotect`` (``--actions``): the reversal of the three pages (with
  ``mprotect`` offered, three pages have no sound reduction and the two
  searches are the same one);
* ``--processes 2`` at depth ``SGXSIM_BENCH_SYM_DEPTHP`` (default 5),
  linux-5.11: the parent/child swap, from INIT on (an SGX1 kernel offers no
  ioctl after it); at depth ``SGXSIM_BENCH_SYM_DEPTHP`` - 1, linux-6.0 with
  ``--child-ioctls``: the swap from the fork on;
* ``--pages 2 --processes 2 --child-ioctls`` at depth
  ``SGXSIM_BENCH_SYM_DEPTHPP`` (default 4), linux-6.0: the product of the
  page swap and the process swap.

Each row checks that both searches give the same verdicts and shortest trace
lengths, and reports states, time and their ratios.
"""

from __future__ import annotations

import os
import time

from sgxsim.check.explorer import explore
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.scope import ACTIONS, Scope

TITLE = "Symmetry reduction: states and time with and without --symmetry"


def _search(design: str, depth: int, symmetry: bool, **scope) -> tuple:
    model = MachineModel(design, Scope(symmetry=symmetry, **scope))
    model.initial()
    # CPU seconds of this process: the machine is shared, wall time is not
    # the search's own (the search runs in this one process).
    t = time.process_time()
    e = explore(model, None, depth=depth)
    return e, time.process_time() - t


def run() -> str:
    d2 = int(os.environ.get("SGXSIM_BENCH_SYM_DEPTH2", "5"))
    d3 = int(os.environ.get("SGXSIM_BENCH_SYM_DEPTH3", "4"))
    dp = int(os.environ.get("SGXSIM_BENCH_SYM_DEPTHP", "5"))
    dpp = int(os.environ.get("SGXSIM_BENCH_SYM_DEPTHPP", "4"))
    no_mprotect = tuple(a for a in ACTIONS if a != "mprotect")
    two = {"processes": 2}
    cases = [("linux-6.0", 2, d2, {}, "all", "page swap"),
             ("linux-6.0", 3, d3, {"actions": no_mprotect}, "all but mprotect", "page reversal"),
             ("linux-5.11", 1, dp, two, "all, --processes 2", "process swap (after INIT)"),
             ("linux-6.0", 1, dp - 1, {**two, "child_ioctls": True}, "all, --processes 2 --child-ioctls",
              "process swap (after the fork)"),
             ("linux-6.0", 2, dpp, {**two, "child_ioctls": True}, "all, --processes 2 --child-ioctls",
              "page swap x process swap")]
    rows = ["| design | pages | actions | reduction | depth | states off | states on | states ratio "
            "| CPU s off | CPU s on | time ratio | same verdicts and lengths |", "|---" * 12 + "|"]
    for design, pages, depth, extra, label, group in cases:
        off, t_off = _search(design, depth, False, pages=pages, **extra)
        on, t_on = _search(design, depth, True, pages=pages, **extra)
        same = {k: f.depth for k, f in off.findings.items()} == {k: f.depth for k, f in on.findings.items()}
        rows.append(f"| {design} | {pages} | {label} | {group} | {depth} | {off.states} | {on.states} "
                    f"| {off.states / on.states:.2f}x | {t_off:.1f} | {t_on:.1f} | {t_off / t_on:.2f}x "
                    f"| {'yes' if same else 'NO'} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows += ["", f"One worker, the two searches one after the other in one process, timed in CPU "
             f"seconds of that process (load average {load:.1f} at the end).  The ratios are "
             "unreduced / reduced: a swap or the reversal can at most halve a level, the product of "
             "the two swaps quarter it."]
    return "\n".join(rows)
