"""The examples of README.md and docs/*.md run, in order, in one temporary
working directory per page (a page reads like one session):

* a ```python block runs (one namespace per page); a ```output block right
  after it is what it must print;
* a block whose info string has ``file=NAME`` (```python file=NAME,
  ```toml file=NAME) is written to NAME instead (a user's file that later
  examples load);
* a ```console block holds ``$ sgxsim ...`` commands, each followed by what it
  prints on stdout; ``...`` in an expected line matches anything, a line that
  is only ``...`` any number of lines; the command must exit 0 unless the
  block ends with ``[exit status N]``.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Pages whose examples need fixtures of their own (native programs built by the
# test suite) run under their own runner instead.
OWN_RUNNER = {"exec.md": ROOT / "tests" / "exec" / "test_docs_exec.py"}
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in OWN_RUNNER)]
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)


def blocks(text: str) -> list[dict]:
    """Every runnable block: kind python/file/console, line, body, and for
    python the expected output (or None)."""
    found = [(m.group(1), m.group(2).strip(), m.group(3), text.count("\n", 0, m.start()) + 1, m.start(),
              m.end()) for m in FENCE.finditer(text)]
    out = []
    for i, (lang, info, body, line, _start, end) in enumerate(found):
        if info.startswith("file="):
            out.append({"kind": "file", "line": line, "name": info[5:], "body": body})
        elif lang == "python":
            nxt = found[i + 1] if i + 1 < len(found) else None
            expected = nxt[2] if nxt and nxt[0] == "output" and not text[end:nxt[4]].strip() else None
            out.append({"kind": "python", "line": line, "body": body, "expected": expected})
        elif lang == "console":
            out.append({"kind": "console", "line": line, "body": body})
    return out


def matches(expected: str, got: str) -> bool:
    """``expected`` with ``...`` wildcards (in a line, or a whole line for
    any number of lines) against ``got``, line by line."""
    pat = "".join(r"(?:.*\n)*?" if line.strip() == "..." else re.escape(line).replace(r"\.\.\.", ".*") + r"\n"
                  for line in expected.splitlines())
    return re.fullmatch(pat, got if got.endswith("\n") or not got else got + "\n") is not None


def test_wildcards():
    assert matches("a ... c\n...\nz\n", "a b c\nx\ny\nz\n")
    assert matches("a\n...\nz\n", "a\nz\n")
    assert not matches("a\nz\n", "a\nb\nz\n")


def commands(body: str) -> list[tuple[str, str, int]]:
    """(command, expected stdout, exit status) of a console block."""
    out: list[list] = []
    for line in body.splitlines(keepends=True):
        if line.startswith("$ "):
            out.append([line[2:].strip(), "", 0])
        elif out:
            m = re.fullmatch(r"\[exit status (\d+)\]\s*", line)
            if m:
                out[-1][2] = int(m.group(1))
            else:
                out[-1][1] += line
    return [tuple(c) for c in out]


def run_command(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(cmd)
    if argv[0] != "sgxsim":
        raise AssertionError(f"a console example runs sgxsim, not {argv[0]!r}")
    return subprocess.run([sys.executable, "-m", "sgxsim.cli", *argv[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@contextlib.contextmanager
def registries_restored():
    """The process-wide registries (kernels and designs, properties) as they
    were: a page's examples register a design or a property of their own,
    which later tests in this process must not see (the fuzzer's CI slice
    draws from every registered design)."""
    from sgxsim.check import properties
    from sgxsim.kernel import registry

    registry.names()  # the providers' kernels first, so a restore keeps them
    kernels, props = dict(registry._KERNELS), dict(properties.PROPERTIES)
    kinds = (list(properties.SAFETY), list(properties.GOALS))
    try:
        yield
    finally:
        registry._KERNELS.clear()
        registry._KERNELS.update(kernels)
        properties.PROPERTIES.clear()
        properties.PROPERTIES.update(props)
        properties.SAFETY[:], properties.GOALS[:] = kinds


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p.read_text())],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_example_runs(page: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with registries_restored():
        run_page(page, tmp_path)


def test_a_page_registration_does_not_outlive_its_page():
    from sgxsim.check import properties
    from sgxsim.kernel import registry
    from sgxsim.kernel.sgx.kernels import Linux60

    before = registry.names()
    with registries_restored():
        registry.register("docs-only-design")(type("DocsOnly", (Linux60,), {}))
        assert "docs-only-design" in registry.names()
        properties.register_property(type("DocsOnlyProp", (properties.Property,), {
            "name": "docs-only-prop", "kind": "goal", "check": lambda *a: False}))
        assert "docs-only-prop" in properties.GOALS
    assert registry.names() == before
    assert "docs-only-prop" not in properties.PROPERTIES and "docs-only-prop" not in properties.GOALS


def run_page(page: Path, tmp_path: Path) -> None:
    """Every runnable block of ``page``, in order, in ``tmp_path``."""
    ns: dict = {"__name__": "__docs__"}
    for b in blocks(page.read_text()):
        where = f"{page.name}, block at line {b['line']}"
        if b["kind"] == "file":
            (tmp_path / b["name"]).write_text(b["body"])
        elif b["kind"] == "python":
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                try:
                    exec(compile(b["body"], f"{page.name}:{b['line']}", "exec"), ns)  # noqa: S102
                except Exception as e:
                    pytest.fail(f"{where}: {type(e).__name__}: {e}")
            if b["expected"] is not None:
                assert buf.getvalue() == b["expected"], where
        else:
            for cmd, expected, status in commands(b["body"]):
                r = run_command(cmd, tmp_path)
                assert r.returncode == status, f"{where}: {cmd}: exit {r.returncode}\n{r.stderr[-3000:]}"
                assert "Traceback" not in r.stderr, f"{where}: {cmd}\n{r.stderr[-3000:]}"
                assert matches(expected, r.stdout), f"{where}: {cmd} printed\n{r.stdout}"


def test_pages_with_their_own_runner_have_one():
    for page, runner in OWN_RUNNER.items():
        assert (ROOT / "docs" / page).exists() and runner.exists(), page
        assert page in runner.read_text(), runner


# Scenario files a page shows to be refused (its console block says so).
BAD_ON_PURPOSE = {("scenarios.md", "bad.toml")}
SCENARIO_FILES = [(p, b["name"]) for p in [*PAGES, *(ROOT / "docs" / n for n in OWN_RUNNER)]
                  for b in blocks(p.read_text()) if b["kind"] == "file" and b["name"].endswith(".toml")]


@pytest.mark.parametrize("page, name", SCENARIO_FILES, ids=lambda x: x.name if isinstance(x, Path) else x)
def test_every_scenario_file_of_the_docs_gives_the_verdict_it_declares(page: Path, name: str, tmp_path):
    # explain.md's escalation.toml declared "violated at step 4" on no-hook
    # and gave "holds": only its explain commands ran, and they do not look
    # at expect.  Each file is replayed by `sgxsim run` (exit status 0: the
    # verdict it declares, at its step), with the page's other files beside it.
    body = None
    for b in blocks(page.read_text()):
        if b["kind"] == "file":
            (tmp_path / b["name"]).write_text(b["body"])
            body = b["body"] if b["name"] == name else body
    (tmp_path / name).write_text(body)
    r = run_command(f"sgxsim run {shlex.quote(name)}", tmp_path)
    want = 2 if (page.name, name) in BAD_ON_PURPOSE else 0
    assert r.returncode == want, f"{page.name}: {name}: exit {r.returncode}\n{r.stdout[-3000:]}"
    assert "Traceback" not in r.stderr


def test_the_docs_scenario_files_are_found():
    assert ("explain.md", "escalation.toml") in {(p.name, n) for p, n in SCENARIO_FILES}
    assert BAD_ON_PURPOSE <= {(p.name, n) for p, n in SCENARIO_FILES}
