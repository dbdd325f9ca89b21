"""Every ```python block of README.md and docs/*.md runs, in order, one
namespace per page (a page reads like one session, in a temporary working
directory); a ```output block right after a snippet is what that snippet
must print.  ```console blocks (the CLI) are run by the tests of their
commands."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def snippets(text: str) -> list[tuple[int, str, str | None]]:
    """(line, code, expected output or None) of every python block."""
    blocks = [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1, m.end())
              for m in FENCE.finditer(text)]
    out = []
    for i, (lang, body, line, end) in enumerate(blocks):
        if lang != "python":
            continue
        expected = None
        if i + 1 < len(blocks) and blocks[i + 1][0] == "output" \
                and not text[end:text.index("```output", end)].strip():
            expected = blocks[i + 1][1]
        out.append((line, body, expected))
    return out


def test_the_runner_pairs_outputs():
    text = "a\n```python\nprint(1)\n```\n\n```output\n1\n```\n```python\nx = 2\n```\n"
    assert snippets(text) == [(2, "print(1)\n", "1\n"), (9, "x = 2\n", None)]


@pytest.mark.parametrize("page", [p for p in PAGES if snippets(p.read_text())],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_snippet_runs(page: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    monkeypatch.setenv("SGXSIM_DOCS_TMP", str(tmp_path))
    ns: dict = {"__name__": "__docs__"}
    for line, code, expected in snippets(page.read_text()):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                exec(compile(code, f"{page.name}:{line}", "exec"), ns)  # noqa: S102
            except Exception as e:  # pragma: no cover - the failure message is the point
                pytest.fail(f"{page.name}, snippet at line {line}: {type(e).__name__}: {e}")
        if expected is not None:
            assert buf.getvalue() == expected, f"{page.name}, snippet at line {line}"
    assert os.getcwd() == str(tmp_path)
