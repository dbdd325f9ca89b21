"""Run every benchmark module and write BENCHMARKS.md.

Each ``benches/bench_*.py`` defines ``TITLE`` and ``run() -> str`` returning a
Markdown section (a table of figures measured side by side in one run).
"""

from __future__ import annotations

import importlib
import pkgutil
import platform
import sys
import time
from pathlib import Path

import benches


def main(argv: list[str]) -> int:
    only = set(argv)
    sections = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(benches.__path__)):
        if not mod.startswith("bench_") or (only and mod not in only):
            continue
        m = importlib.import_module(f"benches.{mod}")
        print(f"== {m.TITLE}", flush=True)
        t = time.perf_counter()
        body = m.run()
        print(body, flush=True)
        sections.append(f"## {m.TITLE}\n\n{body}\n\n_({time.perf_counter() - t:.1f} s)_\n")
    head = (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {time.strftime('%Y-%m-%d')}, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"{platform.processor() or 'unknown CPU'}. Ratios are measured side by side in one run.\n\n"
    )
    if not only:
        Path("BENCHMARKS.md").write_text(head + "\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
