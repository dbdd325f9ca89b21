"""The checker's reach (issue 10), the current tree against the previous
release side by side in one run: each measurement runs in a fresh process,
the previous release's (``git archive`` of :data:`PREVIOUS`, put first on
``PYTHONPATH``) and then the current one's, design by design.

* distinct states per second, one worker, ``--pages 2`` without
  ``add_pages`` (the model both releases share) at depth
  ``SGXSIM_BENCH_REACH_DEPTH`` (default 5, the issue's scope) on linux-6.0
  and no-hook, with the states found by each (they must agree), by CPU
  time, the best of two alternating runs;
* the issue's scope as each release defines it: ``--pages 2`` at the same
  depth in each release's own default scope (the previous one: ADD_PAGES in
  offset order, EACCEPTCOPY from the first build-time page, no reduction;
  the current one: ADD_PAGES in any order, EACCEPTCOPY from any build-time
  page, the page symmetry on), the time each takes to exhaust that depth
  and the states each found (different models, so the states differ; the
  shortest trace lengths are compared), by CPU time, one run each;
* the enclave round trip (one ``load`` through the vDSO, EENTER, the
  runtime's step, EEXIT: ``runtime.run``), the same ``load`` as the
  checker issues it (with the checker's own reading after it) and a
  one-page ADD_PAGES as the checker issues it; one ADD_PAGES of 256 pages
  (a loader's segment), per page; all by CPU time, the best of three
  alternating runs;
* the seen-set's bytes per state (tracemalloc).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

TITLE = "Checker reach: the explorer and its hot paths against the previous release"
# The previous release: main before issue 10.
PREVIOUS = "5091f26a22a194cd1fbff11f06bf99dd0913e7a3"
DESIGNS = ("linux-6.0", "no-hook")
ROOT = Path(__file__).resolve().parent.parent


def _previous_tree(into: Path) -> Path:
    blob = subprocess.run(["git", "archive", PREVIOUS, "src"], cwd=ROOT, check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    # Compiled ahead, as the current tree is, so no row pays for it.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into / "src")], check=True)
    return into / "src"


def _probe(src: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])}
    out = subprocess.run([sys.executable, "-m", "benches.reach_probe", *args], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run() -> str:
    depth = int(os.environ.get("SGXSIM_BENCH_REACH_DEPTH", "5"))
    new_src = ROOT / "src"
    with tempfile.TemporaryDirectory() as tmp:
        old_src = _previous_tree(Path(tmp))
        rows = ["| design (--pages 2, the shared model: no add_pages, no symmetry) | depth | states "
                "| previous CPU s | new CPU s | previous states/s "
                "| new states/s | speed-up | target |", "|---|---|---|---|---|---|---|---|---|"]
        mem = []
        for d in DESIGNS:
            # Two alternating runs each, the best CPU time of each (one
            # worker: the process's CPU time is the search's; the wall
            # clock would also count other processes' turns).
            runs = [(_probe(old_src, "explore", d, "2", str(depth)),
                     _probe(new_src, "explore", d, "2", str(depth))) for _ in range(2)]
            old = min((o for o, _ in runs), key=lambda r: r["cpu_seconds"])
            new = min((n for _, n in runs), key=lambda r: r["cpu_seconds"])
            same = all((o["levels"], o["findings"]) == (n["levels"], n["findings"]) for o, n in runs)
            states = f"{new['states']}" + ("" if same else " (DIFFERENT from previous)")
            ro, rn = old["states"] / old["cpu_seconds"], new["states"] / new["cpu_seconds"]
            rows.append(f"| {d} | {depth} | {states} | {old['cpu_seconds']:.1f} "
                        f"| {new['cpu_seconds']:.1f} | {ro:.0f} | {rn:.0f} | {rn / ro:.2f}x | >= 3x |")
        own = ["| design (--pages 2, each release's own default scope) | depth | previous states "
               "| new states (symmetry on) | previous CPU s to exhaust | new CPU s to exhaust | speed-up "
               "| same shortest lengths |", "|---|---|---|---|---|---|---|---|"]
        for d in DESIGNS:
            old = _probe(old_src, "scope", d, "2", str(depth))
            new = _probe(new_src, "scope", d, "2", str(depth))
            # Measured on the larger search (the shared model's no-hook row
            # has under a hundred states: the set's fixed cost would dominate).
            mem.append(f"| seen-set, {d} ({new['states']} states) | {new['seen_bytes_per_state']:.1f} "
                       "B/state | <= 64 |")
            same = {k: len(v) for k, v in old["findings"].items()} == \
                {k: len(v) for k, v in new["findings"].items()}
            own.append(f"| {d} | {depth} | {old['states']} | {new['states']} | {old['cpu_seconds']:.1f} "
                       f"| {new['cpu_seconds']:.1f} | {old['cpu_seconds'] / new['cpu_seconds']:.2f}x "
                       f"| {'yes' if same else 'NO'} |")
        # The best of three alternating runs each: the machine is shared.
        hot = [(_probe(old_src, "hot", "300"), _probe(new_src, "hot", "300")) for _ in range(3)]
        old = {k: min(o[k] for o, _ in hot) for k in hot[0][0]}
        new = {k: min(n[k] for _, n in hot) for k in hot[0][1]}
        many = [(_probe(old_src, "addmany", "256", "4"), _probe(new_src, "addmany", "256", "4"))
                for _ in range(3)]
        for k in many[0][0]:
            old[k] = min(o[k] for o, _ in many)
            new[k] = min(n[k] for _, n in many)
    rows += ["", "The rows above compare the explorers on one model: the previous and the current "
             "release explore the same states (ADD_PAGES left out, no symmetry reduction).  The rows "
             "below compare what a user of each release gets for the issue's scope: each release's "
             "own model at `--pages 2` (the current one offers more ADD orders and EACCEPTCOPY "
             "sources and folds mirror states), so the states differ and the speed-up is the time "
             "to exhaust the depth.", "", *own]
    rows += ["", "| hot path (CPU time) | previous | new | speed-up | target |", "|---|---|---|---|---|",
             f"| enclave round trip (one load: vDSO, EENTER, one step, EEXIT; `runtime.run`) "
             f"| {old['roundtrip_us']:.1f} µs | {new['roundtrip_us']:.1f} µs "
             f"| {old['roundtrip_us'] / new['roundtrip_us']:.2f}x | >= 3x |",
             f"| the same load as the checker issues it (the action, then the checker's "
             f"bookkeeping and view) | {old['checker_load_us']:.1f} µs | {new['checker_load_us']:.1f} µs "
             f"| {old['checker_load_us'] / new['checker_load_us']:.2f}x | |",
             f"| ADD_PAGES of one page (the checker's add_pages) "
             f"| {old['add_page_us']:.1f} µs | {new['add_page_us']:.1f} µs "
             f"| {old['add_page_us'] / new['add_page_us']:.2f}x | >= 3x |",
             *(f"| ADD_PAGES of 256 pages in one ioctl, per page (source {how}) "
               f"| {old[k]:.1f} µs | {new[k]:.1f} µs | {old[k] / new[k]:.2f}x | |"
               for how, k in (("populated", "populated_us_per_page"),
                              ("never touched", "unpopulated_us_per_page"))),
             "", "| memory | measured | target |", "|---|---|---|", *mem,
             "", f"Previous release: `{PREVIOUS[:7]}` (main before issue 10), run from a "
             "`git archive` of it in a fresh process per row, alternating with the current tree.  "
             "One worker; states are distinct states (in the shared-model rows both releases must "
             "find the same levels and traces, or the row says so).  Each exploration is timed from "
             "after the initial state and the checker's RSA signing key (made once per process, "
             "0.1 to 1.5 s at random) exist, in both releases."]
    return "\n".join(rows)
