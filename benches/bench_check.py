"""The checker on the real Machine: distinct states per second per worker,
the cost of one transition (copy + step + fingerprint), and the speed-up from
1 to 2 workers, measured side by side in one run on the same narrowed scope.

The full default scope (8 designs x 9 properties, depth 6) is not measured:
it branches ~100 ways per step and does not finish in reasonable time yet."""

from __future__ import annotations

import time

from sgxsim.check.explorer import explore
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.scope import Scope

TITLE = "Checker: BFS over the real Machine"
SCOPE = Scope(pages=2, perms=("RWX",), sources=("image",),
              actions=("mmap", "add_pages", "init", "fetch", "eacceptcopy"))
DESIGNS = ("linux-6.0", "sgx2-rfc")
DEPTH = 5


def _run(design: str, workers: int) -> tuple[int, float]:
    model = MachineModel(design, SCOPE)
    model.initial()
    t = time.perf_counter()
    # max_states is not set: the whole bounded space, all properties.
    exp = explore(model, None, depth=DEPTH, workers=workers)
    return exp.states, time.perf_counter() - t


def run() -> str:
    rows = ["| design | workers | distinct states | seconds | states/s/worker | speed-up |",
            "|---|---|---|---|---|---|"]
    for d in DESIGNS:
        base = None
        for w in (1, 2):
            n, s = _run(d, w)
            base = base or s
            rows.append(f"| {d} | {w} | {n} | {s:.2f} | {n / s / w:.0f} | {base / s:.2f}x |")
    return "\n".join(rows) + (f"\n\nScope: pages=2, perms RWX, image source, actions "
                              f"mmap/add_pages/init/fetch/eacceptcopy, depth {DEPTH}, all 9 properties.")
