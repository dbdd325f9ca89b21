"""docs/enclave-machine-code.md: every ```python block runs, in order, in one
namespace and a temporary directory; a ```output block right after one is
what it must print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "enclave-machine-code.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def test_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer(PAGE.read_text())]
    ns: dict = {"__name__": "__docs__"}
    ran = 0
    for i, (lang, body) in enumerate(blocks):
        if lang != "python":
            continue
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(body, f"{PAGE.name} block {i}", "exec"), ns)  # noqa: S102
        if i + 1 < len(blocks) and blocks[i + 1][0] == "output":
            assert buf.getvalue() == blocks[i + 1][1], f"block {i}"
        ran += 1
    assert ran == 3
