"""Simulation mode (issue 10): from one seed the random walks find every
violation the exhaustive default matrix finds (depth 6, tests/check/
test_default_matrix.py), every shrunk trace replays to its violation with
``sgxsim run``, the same seed gives the same walks, and a walk that finds
nothing never says "holds"."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from tests.check.test_default_matrix import EXPECTED

from sgxsim.check import runner
from sgxsim.check.cli import _factory
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action
from sgxsim.check.properties import PROPERTIES
from sgxsim.check.scope import Scope
from sgxsim.check.simulate import first_hit, shrink, simulate, verdict
from sgxsim.cli import main

# One seed for every design; 3,000 walks of 8 actions on two workers.
SEED, WALKS, WALK_DEPTH = 0, 3000, 8


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    res = runner.simulate(_factory(Scope()), list(EXPECTED), list(PROPERTIES), walks=WALKS,
                          walk_depth=WALK_DEPTH, seed=SEED, workers=2, out_dir=out)
    return {(r["design"], r["property"]): r for r in res}


@pytest.mark.parametrize("design", list(EXPECTED))
def test_simulation_finds_every_violation_of_the_exhaustive_matrix(swarm, design):
    for prop, cell in zip(PROPERTIES, EXPECTED[design], strict=True):
        r = swarm[(design, prop)]
        if cell.startswith("v"):
            assert r["verdict"] == "violated", (design, prop)
            # Shrunk, but never shorter than the shortest trace there is.
            assert len(r["trace"]) >= int(cell[1:])
        elif PROPERTIES[prop].kind == "safety":
            # Nothing deeper than 6 in this scope breaks these either (8 actions).
            assert r["verdict"] in ("violated", f"no violation in {WALKS} walks")


def test_every_shrunk_trace_replays_with_sgxsim_run(swarm):
    found = [r for r in swarm.values() if r["trace"]]
    assert len(found) >= 20
    for r in found:
        res = CliRunner().invoke(main, ["run", r["scenario"]])
        assert res.exit_code == 0, res.output
        assert f"verdict: {r['verdict']} at step {len(r['trace'])}" in res.output


def test_verdicts_never_say_holds(swarm):
    for r in swarm.values():
        assert r["verdict"] not in ("holds", "unreachable")
        if not r["trace"]:
            assert r["verdict"].endswith(f"in {WALKS} walks")


def test_same_seed_same_walks_and_another_seed_other_walks():
    model = MachineModel("linux-6.0", Scope(pages=3))
    a = simulate(model, ["w-xor-x", "dynamic-heap"], walks=60, walk_depth=30, seed=5)
    b = simulate(model, ["w-xor-x", "dynamic-heap"], walks=60, walk_depth=30, seed=5)
    c = simulate(model, ["w-xor-x", "dynamic-heap"], walks=60, walk_depth=30, seed=6)
    key = lambda s: {k: (f.walk, f.found_at, f.path) for k, f in s.findings.items()}  # noqa: E731
    assert key(a) == key(b) and a.steps == b.steps
    assert key(a) != key(c) or a.steps != c.steps
    assert verdict("w-xor-x", a) == "violated"


def test_shrinking_keeps_the_violation_and_drops_what_it_does_not_need():
    model = MachineModel("no-hook", Scope())
    noise = [Action.make("mprotect", offset=0, length=4096, prot="R"),
             Action.make("munmap", offset=0, length=4096)]
    path = noise + [Action.make("mmap", offset=0, length=4096, prot="RWX"), *noise[:1],
                    Action.make("mmap", offset=0, length=4096, prot="RWX"),
                    Action.make("add_pages", offset=0, source="image", type="REG", perms="RWX"),
                    Action.make("init"), Action.make("load", offset=0),
                    Action.make("fetch", offset=0)]
    assert first_hit(model, path, "w-xor-x") is not None
    small = shrink(model, path, "w-xor-x")
    assert [a.name for a in small] == ["mmap", "add_pages", "init", "load"]
    # 1-minimal: without any one of its actions the violation is gone.
    for i in range(len(small)):
        assert first_hit(model, small[:i] + small[i + 1:], "w-xor-x") is None
    with pytest.raises(ValueError):
        shrink(model, noise, "w-xor-x")
