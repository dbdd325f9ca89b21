"""Every ```console block of docs/exec.md runs, in a directory holding the
native test programs, with the output the page shows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from edmm import NATIVE

DOC = Path(__file__).resolve().parents[2] / "docs" / "exec.md"


def blocks() -> list[list[str]]:
    return [b.splitlines() for b in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S)]


def steps(block: list[str]) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for line in block:
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            out[-1][1].append(line)
    return out


def test_the_page_has_examples():
    assert len(blocks()) >= 3


@pytest.mark.parametrize("index", range(len(blocks())))
def test_console_example(native, tmp_path, index):
    for name in ("cpuid", "badinput"):
        shutil.copy(native[name], tmp_path / name)
    built = native["edmm"]
    for p in (built.loader, built.enclave, built.sigstruct, NATIVE / "edmm.script"):
        shutil.copy(p, tmp_path / p.name)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    for cmd, want in steps(blocks()[index]):
        r = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == want, cmd
