"""Run the benchmark modules and write their sections of BENCHMARKS.md.

Each ``benches/bench_*.py`` defines ``TITLE`` and ``run() -> str`` returning a
Markdown section (a table of figures measured side by side in one run).

``python -m benches`` (``make bench``) runs them all, ``python -m benches
bench_reach bench_scaling`` only those named.  Either way only the sections
that ran are rewritten: BENCHMARKS.md keeps each module's output between
``<!-- bench NAME -->`` and ``<!-- /bench NAME -->``, and everything outside
those markers (notes on a run, figures measured by hand such as the deep
checker runs) stays as it is (:func:`merge`).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import re
import sys
import time
from pathlib import Path

import benches

OUT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"  # wherever it is run from
HEAD = (
    "# Benchmarks\n\n"
    "Ratios are measured side by side in one run.  Each section's block between "
    "`<!-- bench NAME -->` markers is written by `python -m benches [NAME...]` "
    "(`make bench` runs them all) and says when and where it was measured; the "
    "text around the blocks (notes on a run, runs made by hand) is kept when a "
    "benchmark is run again.\n"
)


def block(name: str, body: str) -> str:
    """A module's output between its markers."""
    return f"<!-- bench {name} -->\n{body.rstrip()}\n<!-- /bench {name} -->"


def merge(text: str, sections: list[tuple[str, str, str]]) -> str:
    """``text`` (BENCHMARKS.md, or ``""``) with the block of each ``(name,
    title, body)`` in ``sections`` replaced: between its markers when it has
    them; right under the heading ``## title`` when the section exists but
    has no block yet (the text that was there stays, after it); else as a new
    section at the end.  Everything else is kept byte for byte."""
    if not text.strip():
        text = HEAD
    for name, title, body in sections:
        new = block(name, body)
        pat = re.compile(rf"<!-- bench {re.escape(name)} -->\n.*?<!-- /bench {re.escape(name)} -->",
                         re.DOTALL)
        m = pat.search(text)
        if m:
            # Spliced, not re.sub()'d: a body's backslashes are text, not escapes.
            text = f"{text[:m.start()]}{new}{text[m.end():]}"
            continue
        heading = re.compile(rf"^## {re.escape(title)}\n", re.MULTILINE)
        m = heading.search(text)
        if m:
            text = f"{text[:m.end()]}\n{new}\n{text[m.end():]}"
        else:
            text = f"{text.rstrip()}\n\n## {title}\n\n{new}\n"
    return text


def stamp(started: float, seconds: float, load: tuple[float, float, float]) -> str:
    """When (``started``: a time.time()), where and under what load a block
    was measured."""
    return (f"_(measured from {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC for "
            f"{seconds:.1f} s, "
            f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the start)_")


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benches.__path__) if m.name.startswith("bench_"))
    unknown = sorted(set(argv) - set(names))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    sections = []
    for mod in names:
        if argv and mod not in argv:
            continue
        m = importlib.import_module(f"benches.{mod}")
        print(f"== {m.TITLE}", flush=True)
        load, started = os.getloadavg(), time.time()
        t = time.perf_counter()
        body = m.run()
        print(body, flush=True)
        sections.append((mod, m.TITLE, f"{body.rstrip()}\n\n{stamp(started, time.perf_counter() - t, load)}"))
    OUT.write_text(merge(OUT.read_text() if OUT.exists() else "", sections))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
