"""Deep checker runs (issue 10): one ``sgxsim check`` scope run to the end,
with its wall time, the distinct states of each BFS level and the peak
resident memory of everything it started (its own processes and, with
``--engine ray``, the local Ray cluster it starts), sampled from /proc every two
seconds.  Not a ``bench_`` module: a run takes from minutes to an hour, so
``make bench`` does not start it; BENCHMARKS.md records what it printed.

    python -m benches.deep_runs OUT_DIR -- --design linux-5.11 --pages 2 \\
        --depth 8 --engine ray --workers 2

prints one Markdown row and writes ``OUT_DIR/result.json`` (the check's JSON),
``OUT_DIR/progress.txt`` (its per-level lines) and ``OUT_DIR/scenarios/``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, resident bytes) of ``pid``, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{pid}/statm") as f:
            return ppid, int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and its descendants (a local Ray cluster's
    GCS server and raylet are children of the driver, its workers children
    of the raylet)."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                procs[int(name)] = st
    mine, grew = {root}, True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return sum(rss for pid, (_, rss) in procs.items() if pid in mine)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    args = argv[2:]
    cmd = [sys.executable, "-m", "sgxsim.cli", "check", *args, "--json", "--out", str(out / "scenarios")]
    t0 = time.perf_counter()
    with open(out / "result.json", "w") as res, open(out / "progress.txt", "w") as prog:
        proc = subprocess.Popen(cmd, stdout=res, stderr=prog)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(2)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"sgxsim check exited {proc.returncode}: see {out / 'progress.txt'}", file=sys.stderr)
        return 1
    levels = re.findall(r"level (\d+)/\d+, (\d+) states", (out / "progress.txt").read_text())
    results = json.loads((out / "result.json").read_text())["results"]
    cells = ", ".join(f"{r['property']} {r['verdict']}"
                      + (f" ({len(r['trace'])})" if r["trace"] else "") for r in results)
    print(f"| {' '.join(args)} | {levels[-1][1] if levels else '?'} | {wall / 60:.1f} min "
          f"| {peak / 2**30:.1f} GB | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
