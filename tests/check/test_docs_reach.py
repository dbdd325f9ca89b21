"""Every ``$ sgxsim ...`` example of docs/checker-reach.md runs, and the lines
under it appear in its output."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from sgxsim.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "checker-reach.md"
DOC_DIR = "/tmp/sgxsim-docs-sim"


def _examples() -> list[tuple[str, list[str]]]:
    out = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif line.strip() and line.strip() != "...":
                out[-1][1].append(line.strip())
    return out


def test_the_page_has_examples():
    ex = _examples()
    assert len(ex) >= 4 and all(cmd.startswith("sgxsim ") for cmd, _ in ex)


def test_every_example_runs_and_prints_what_the_page_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a check without --out writes scenarios/ here
    for cmd, expect in _examples():
        args = shlex.split(cmd.replace(DOC_DIR, str(tmp_path / "sim")))[1:]
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, (cmd, r.output)
        for line in expect:
            # "..." in a line stands for anything (a time), as in tests/test_docs.py.
            pat = ".*".join(re.escape(p) for p in line.replace(DOC_DIR, str(tmp_path / "sim")).split("..."))
            assert re.search(pat, r.output), (cmd, line, r.output)
