"""A frontier past its memory bound goes to disk (sgxsim.check.spill) and
comes back in the same order: the search finds the same states, verdicts and
traces as one that keeps everything in memory, the files are really written,
and they are gone afterwards, also when the search ends by an exception."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from sgxsim.check.explorer import explore
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.scope import Scope
from sgxsim.check.spill import Spill, bound_from_env
from sgxsim.cli import main

# Frozen machines are a few KB (compressed) to ~100 KB: 64 KB per run spills
# most levels of this scope in several chunks.
TINY = 64 * 1024
DEPTH = 4


def _files(root) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]


def _summary(exp):
    return (exp.states, exp.levels, exp.exhausted, exp.new_by_action,
            {n: (f.depth, f.path, f.reason) for n, f in exp.findings.items()})


@pytest.fixture
def spill_dir(tmp_path, monkeypatch):
    d = tmp_path / "spill"
    monkeypatch.setenv("SGXSIM_SPILL_DIR", str(d))
    return d


@pytest.mark.parametrize("workers", [1, 2])
def test_a_spilled_search_finds_what_the_in_memory_one_finds(workers, spill_dir):
    model = MachineModel("linux-6.0", Scope(pages=1))
    plain = explore(model, depth=DEPTH, workers=workers)
    assert plain.spilled == 0 and not spill_dir.exists()
    on_disk: list[int] = []

    def progress(exp):  # what is on disk after each level
        on_disk.append(sum(os.path.getsize(f) for f in _files(spill_dir)))

    spilled = explore(model, depth=DEPTH, workers=workers, frontier_mem=TINY, progress=progress)
    assert _summary(spilled) == _summary(plain)
    assert spilled.findings and plain.levels[-2] > 100
    # Written: the counter, and the files seen between levels (the children
    # of a level wait on disk for the next one).
    assert spilled.spilled > 0 and max(on_disk) > 0
    # And removed: nothing is left under the spill directory.
    assert _files(spill_dir) == [] and os.listdir(spill_dir) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_spill_files_are_removed_when_the_search_is_interrupted(workers, spill_dir):
    model = MachineModel("linux-6.0", Scope(pages=1))
    seen: list[list[str]] = []

    def progress(exp):
        seen.append(_files(spill_dir))
        if exp.depth == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        explore(model, depth=DEPTH, workers=workers, frontier_mem=TINY, progress=progress)
    assert seen[-1], "the level interrupted had written its children to disk"
    assert _files(spill_dir) == [] and os.listdir(spill_dir) == []


def test_a_run_keeps_its_order_across_memory_and_disk(tmp_path):
    spill = Spill(bound=20_000, root=str(tmp_path))
    entries = [(i, bytes([i % 256]) * (i * 37 % 900), "ghost", ("fp", i)) for i in range(300)]
    run = spill.run(entries)
    run.append(last := (300, b"", "ghost", ("fp", 300)))
    entries.append(last)
    assert len(run) == 301 and spill.chunks > 10 and run.buf  # on disk and in memory both
    assert list(run) == entries
    assert _files(tmp_path) == []  # a run read is a run removed
    spill.close()
    assert os.listdir(tmp_path) == []


def test_bound_from_the_environment(monkeypatch):
    monkeypatch.delenv("SGXSIM_FRONTIER_MEM", raising=False)
    assert bound_from_env() is None
    monkeypatch.setenv("SGXSIM_FRONTIER_MEM", "1.5")
    assert bound_from_env() == 3 * 2**19
    monkeypatch.setenv("SGXSIM_FRONTIER_MEM", "lots")
    with pytest.raises(ValueError, match="SGXSIM_FRONTIER_MEM must be a number of MB"):
        bound_from_env()


def test_cli_frontier_mem_gives_the_same_json(tmp_path, spill_dir):
    scope = ["check", "--design", "linux-6.0", "--property", "w-xor-x", "--property", "no-stale-pte",
             "--depth", "4", "--json", "--workers", "2"]

    def results(*extra):
        r = CliRunner().invoke(main, [*scope, *extra, "--out", str(tmp_path / "out")])
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)["results"]
        for x in out:
            x.pop("seconds")
        return out

    assert results("--frontier-mem", "0.05") == results()
    assert os.listdir(spill_dir) == []
    # Two designs over two processes, each searching with one worker.
    assert results("--design", "no-hook", "--frontier-mem", "0.05") == results("--design", "no-hook")
    assert os.listdir(spill_dir) == []
    r = CliRunner().invoke(main, [*scope, "--frontier-mem", "0", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "--frontier-mem" in r.output
    r = CliRunner().invoke(main, scope + ["--out", str(tmp_path / "out")],
                           env={"SGXSIM_FRONTIER_MEM": "lots"})
    assert r.exit_code == 2 and "SGXSIM_FRONTIER_MEM must be a number of MB" in r.output


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-inf"])
def test_a_bound_that_is_no_finite_number_is_a_usage_error(tmp_path, value):
    # inf (and 1e400) traced back with OverflowError, nan said "cannot
    # convert float NaN to integer".
    scope = ["check", "--design", "linux-6.0", "--property", "w-xor-x", "--depth", "1",
             "--out", str(tmp_path)]
    r = CliRunner().invoke(main, [*scope, "--frontier-mem", value])
    assert r.exit_code == 2 and "--frontier-mem" in r.output, r.output
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit)
    r = CliRunner().invoke(main, scope, env={"SGXSIM_FRONTIER_MEM": value})
    assert r.exit_code == 2, r.output
    assert f"SGXSIM_FRONTIER_MEM must be a positive number of MB, not {value!r}" in r.output


def test_a_spill_dir_that_is_a_file_is_refused_before_the_search(tmp_path):
    # SGXSIM_SPILL_DIR naming a file traced back (FileExistsError) when the
    # first level spilled.
    (tmp_path / "file").write_text("")
    r = CliRunner().invoke(main, ["check", "--design", "linux-6.0", "--property", "w-xor-x", "--depth", "3",
                                  "--frontier-mem", "0.001", "--out", str(tmp_path / "out")],
                           env={"SGXSIM_SPILL_DIR": str(tmp_path / "file")})
    assert r.exit_code == 2, r.output
    assert "SGXSIM_SPILL_DIR" in r.output and "is not a writable directory" in r.output
    assert "states explored" not in r.output
