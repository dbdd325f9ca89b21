"""Simulation at three pages, with fork (issue 10; docs/checker-reach.md,
"Simulation at three and four pages, with fork").

The report there ran every design for thousands of walks; CI pins a cheap
slice of the same command: two designs at ``--pages 3 --processes 2
--walk-depth 30`` from one seed, through the CLI.  A run with the same seed
and more walks makes the same first walks (walk *i*'s generator depends on
the seed and *i* only, and the restart pool on the walks before it), so the
slice's finds are the report's finds of its first walks.  Pinned: every
verdict and shrunk length; every shrunk scenario replays with ``sgxsim run``;
and no find of the slice needs the child or a third page: with the ``fork`` dropped and
the child's steps given to the parent (and a violation's one explored page
renamed page 0), it still violates the property (or reaches the goal), and
never in fewer steps than the exhaustive default matrix's shortest trace.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tests.check.test_default_matrix import EXPECTED as MATRIX

from sgxsim.check import runner
from sgxsim.check import scenario as scn
from sgxsim.check.cli import _factory
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action
from sgxsim.check.properties import PROPERTIES
from sgxsim.check.scope import Scope
from sgxsim.check.simulate import first_hit
from sgxsim.cli import main

PAGES, WALKS, WALK_DEPTH, SEED = 3, 300, 30, 1
# Per design and property: the verdict's first letter (violated, reachable,
# no violation / not reached in WALKS walks) and the shrunk trace's length.
#                  no-esc exec  w^x   stale honest run   heap  dcode restrict
EXPECTED = {
    "no-hook":   ("v6", "v4", "v6", "n", "n", "n", "n", "n", "n"),
    "linux-6.0": ("n", "v4", "v4", "n", "n", "n", "r5", "n", "n"),
}


def _cell(r: dict) -> str:
    return r["verdict"][0] + (str(len(r["trace"])) if r["trace"] else "")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim3")
    args = ["check", "--simulate", "--pages", str(PAGES), "--processes", "2", "--walk-depth",
            str(WALK_DEPTH), "--walks", str(WALKS), "--seed", str(SEED), "--json", "--out", str(out)]
    for d in EXPECTED:
        args += ["--design", d]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["scope"] == {"pages": PAGES, "policy": "selinux", "processes": 2}
    return {(r["design"], r["property"]): r for r in doc["results"]}


def test_every_verdict_and_shrunk_length_is_pinned(sim):
    got = {d: tuple(_cell(sim[(d, p)]) for p in PROPERTIES) for d in EXPECTED}
    assert got == EXPECTED
    for r in sim.values():
        assert r["verdict"] not in ("holds", "unreachable")
        if not r["trace"]:
            assert r["verdict"].endswith(f"in {WALKS} walks")


def test_every_shrunk_scenario_replays_with_sgxsim_run(sim):
    found = [r for r in sim.values() if r["trace"]]
    assert found
    for r in found:
        res = CliRunner().invoke(main, ["run", r["scenario"]])
        assert res.exit_code == 0, res.output
        assert f"verdict: {r['verdict']} at step {len(r['trace'])}" in res.output


def one_process(steps: list[Action]) -> list[Action]:
    """``steps`` without the fork, every step run by the (only) process."""
    return [Action(a.name, tuple((k, v) for k, v in a.args if k != "proc")) for a in steps if a.name != "fork"]


def pages_touched(steps: list[Action]) -> set[int]:
    """The explored pages a trace adds, enters or changes (its mappings aside)."""
    return {v for a in steps if a.name not in ("mmap", "mprotect", "munmap")
            for k, v in a.args if k in ("offset", "src")}


def on_page_0(steps: list[Action]) -> list[Action]:
    """``steps`` with their one explored page renamed page 0 (a whole-enclave
    range becomes that page's)."""
    return [Action(a.name, tuple((k, 0 if k == "offset" else 0x1000 if k == "length" else v)
                                 for k, v in a.args)) for a in steps]


def test_every_find_needs_neither_the_child_nor_a_third_page(sim):
    finds = children = 0
    for (d, p), r in sim.items():
        if not r["trace"]:
            continue
        sc = scn.read(r["scenario"])
        finds += 1
        children += any(a.arg("proc") == "child" for a in sc.steps)
        steps = one_process(sc.steps)
        pages = pages_touched(steps)
        if PROPERTIES[p].kind == "safety":
            assert len(pages) == 1, (d, p)
        # One page: the default scope's; two (a goal): the same pages, one process.
        model = MachineModel(d, Scope() if len(pages) == 1 else Scope(pages=PAGES))
        hit = first_hit(model, on_page_0(steps) if len(pages) == 1 else steps, p)
        assert hit is not None, (d, p)
        # Never shorter than the exhaustive default matrix's shortest trace.
        assert hit[0] >= int(MATRIX[d][list(PROPERTIES).index(p)][1:]), (d, p)
    assert finds == 6
    # The walks do run the child: ddmin cannot give a child's step to the
    # parent, so the fork stays in the shrunk trace.
    assert children >= 2


# What the three-page run found that the one-process matrices cannot have:
# safe-to-execute's w-xor-x (it holds there) falls once a fork gives the
# enclave page a second mm.  Exhaustively, in a narrowed one-page scope.
ACTIONS = ("mmap", "mprotect", "init", "load", "store")


@pytest.mark.parametrize(("processes", "cell"), [(1, "h"), (2, "v5")])
def test_safe_to_execute_w_xor_x_needs_the_second_process(processes, cell, tmp_path):
    scope = Scope(perms=("RW", "RX"), sources=("image",), processes=processes,
                  actions=ACTIONS + (("fork",) if processes == 2 else ()))
    res = runner.check(_factory(scope), ["safe-to-execute"], ["w-xor-x"], depth=6, workers=1, out_dir=tmp_path)
    assert _cell(res[0]) == cell
    if processes == 2:
        assert [a["action"] for a in res[0]["trace"]] == ["mmap", "init", "load", "fork", "mprotect"]
        assert res[0]["trace"][-1]["proc"] == "parent"


def test_propagate_source_changes_the_callers_vma_only():
    """The three-page run's exec-origin on propagate-source, at one page: the
    ADD_PAGES propagation rewrites the parent's VMA, the child's copy keeps
    RWX and runs the page added from a non-exec source.  In one process the
    same steps find the VMA made RW and fetch nothing."""
    steps = [Action.make("mmap", proc="parent", offset=0, length=0x1000, prot="RWX"), Action.make("fork"),
             Action.make("add_pages", offset=0, source="anon", type="REG", perms="RWX"), Action.make("init"),
             Action.make("fetch", proc="child", offset=0)]
    hit = first_hit(MachineModel("propagate-source", Scope(processes=2)), steps, "exec-origin")
    assert hit is not None and hit[0] == 5 and "without VM_EXEC" in hit[1]
    assert first_hit(MachineModel("propagate-source", Scope()), one_process(steps), "exec-origin") is None
