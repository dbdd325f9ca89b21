"""Children kept as (an ancestor's frozen machine, actions) and made again
when they are expanded: the same search as children frozen one by one, and a
model that does not reach the same machine again is caught, not searched."""

from __future__ import annotations

import pytest

from sgxsim.check.actions.abi import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, SCRATCH
from sgxsim.check.explorer import NotDeterministic, WorkerTraceback, explore
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.scope import Scope

PAGE = 4096


def outcome(exp):
    return exp.levels, {k: (f.depth, [str(a) for a in f.path]) for k, f in exp.findings.items()}


@pytest.mark.parametrize("design", ["linux-6.0", "no-hook"])
def test_lazy_children_search_the_same_states(design):
    sc = Scope(pages=1)
    lazy = explore(MachineModel(design, sc), None, depth=4)
    # A frontier bound keeps one frozen machine per child (spill.Run counts
    # its bytes); reuse=False thaws a fresh parent for every transition.
    frozen = explore(MachineModel(design, sc), None, depth=4, frontier_mem=1 << 40)
    plain = explore(MachineModel(design, sc), None, depth=4, reuse=False)
    assert outcome(lazy) == outcome(frozen) == outcome(plain)
    assert lazy.transitions == frozen.transitions == plain.transitions
    # Made again rather than thawed: fewer thaws than parents.
    assert lazy.thaws < frozen.thaws


@pytest.mark.parametrize("freeze_at", [1, 10, 1 << 30])
def test_children_made_again_through_chains_of_actions(freeze_at, monkeypatch):
    """A child kept as an ancestor's frozen machine and the actions from it:
    frozen at every node with children (1), by the default rule, or never
    (every node made again from the root by its whole path): the same
    search."""
    from sgxsim.check import explorer as ex

    monkeypatch.setattr(ex, "FREEZE_AT", freeze_at)
    sc = Scope(pages=2)
    got = explore(MachineModel("linux-6.0", sc), None, depth=4)
    plain = explore(MachineModel("linux-6.0", sc), None, depth=4, reuse=False)
    assert outcome(got) == outcome(plain)
    assert got.transitions == plain.transitions
    if freeze_at > 1:
        assert got.thaws < explore(MachineModel("linux-6.0", sc), None, depth=4, frontier_mem=1 << 40).thaws


class Drifting(MachineModel):
    """The machine model, except that from ``drift`` on every mmap step
    also maps a page more: the same action no longer reaches the same
    machine."""

    drift = False

    def apply(self, st, action, trace=False, view=True):
        step = super().apply(st, action, trace, view)
        if self.drift and action.name == "mmap":
            st.proc.mmap(SCRATCH + 8 * PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        return step


def test_a_model_that_does_not_reach_the_same_machine_again_is_refused():
    model = Drifting("linux-6.0", Scope(pages=1))

    def after_level(exp):
        model.drift = True  # the children of level 1 were made without it

    with pytest.raises(NotDeterministic, match="linux-6.0: .*not deterministic"):
        explore(model, None, depth=3, progress=after_level)


class DriftingLater(MachineModel):
    """Drifts (as :class:`Drifting`) from the fourth mmap a process runs on:
    a worker process records children before and makes them again after."""

    mmaps = 0

    def apply(self, st, action, trace=False, view=True):
        step = super().apply(st, action, trace, view)
        if action.name == "mmap":
            type(self).mmaps += 1
            if type(self).mmaps > 3:
                st.proc.mmap(SCRATCH + 8 * PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        return step


def test_a_worker_process_that_fails_reports_why():
    """With worker processes the failure is the worker's own error, raised in
    the coordinator, not a broken pipe, caused by the worker's traceback."""
    with pytest.raises(NotDeterministic, match="linux-6.0: .*not deterministic") as raised:
        explore(DriftingLater("linux-6.0", Scope(pages=1)), None, depth=3, workers=2)
    cause = raised.value.__cause__
    assert isinstance(cause, WorkerTraceback)
    assert str(cause).startswith("a worker of the search failed:\nTraceback")
    assert "NotDeterministic: linux-6.0: " in str(cause)
