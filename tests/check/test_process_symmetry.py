"""The parent/child swap (check/symmetry.py ``ProcessSwap``, issue 10 item
2) and ``--child-ioctls``: the swap folds a state and its mirror only where
every step offered from then on is offered to both processes alike
(actions.alike_from); reduced and unreduced searches agree on verdicts and
shortest trace lengths with fewer states where it applies; a state's mirror
is the state the mirrored walk reaches; the child's ioctls go to the kernel
as the caller's (its mm); traces found under the reduction replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.check.test_symmetry import _run, _summary, mirror_steps

from sgxsim.check import actions, runner, symmetry
from sgxsim.check import scenario as scn
from sgxsim.check.actions.abi import SRC
from sgxsim.check.explorer import explore
from sgxsim.check.ghost import Ghost
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action
from sgxsim.check.scope import PAGE, Scope
from sgxsim.cli import main

# Narrow parameters keep the exhaustive comparisons within CI's time.
SGX1 = ("mmap", "mprotect", "add_pages", "init", "load", "store", "fetch", "reclaim", "fork")
SGX2 = ("mmap", "mprotect", "add_pages", "init", "store", "fetch", "restrict", "eaccept", "fork")
NARROW = {"perms": ("RW", "RX", "RWX"), "sources": ("image",)}


def _search(design, depth, symmetric, **scope):
    return explore(MachineModel(design, Scope(symmetry=symmetric, processes=2, **scope)), depth=depth)


@pytest.mark.parametrize("design,depth,scope", [
    # SGX1: after INIT no ioctl can be offered again, so the swap applies
    # from the fork on once INIT is done.
    ("linux-5.11", 5, {"actions": SGX1, **NARROW}),
    ("no-hook", 5, {"actions": SGX1, **NARROW}),
    # SGX2 with --child-ioctls: every state after the fork.
    ("linux-6.0", 5, {"actions": SGX2, "child_ioctls": True, "perms": ("RW", "RX"), "sources": ("image",)}),
    ("safe-to-execute", 4, {"actions": SGX2, "child_ioctls": True, "perms": ("RW", "RX"),
                            "sources": ("image", "anon")}),
    # Two pages: the product of the page swap and the process swap.
    ("linux-5.11", 4, {"pages": 2, "actions": SGX1, "perms": ("RX", "RWX"), "sources": ("image",)}),
])
def test_reduced_and_unreduced_searches_agree(design, depth, scope):
    plain = _search(design, depth, False, **scope)
    reduced = _search(design, depth, True, **scope)
    assert _summary(reduced) == _summary(plain)
    assert _summary(plain)  # something is found, so the lengths are compared
    assert reduced.exhausted == plain.exhausted
    assert reduced.states < plain.states
    assert all(r <= p for r, p in zip(reduced.levels, plain.levels, strict=True))


def test_sgx2_without_child_ioctls_is_not_swapped():
    """On an SGX2 kernel the parent may issue RESTRICT_PERMISSIONS after
    INIT, so no state after the fork is in the swap's region: the reduced
    search is the unreduced one, state for state."""
    scope = {"actions": SGX2, "perms": ("RW", "RX"), "sources": ("image",)}
    model = MachineModel("linux-6.0", Scope(processes=2, **scope))
    assert symmetry.swaps(model)
    on, off = _search("linux-6.0", 4, True, **scope), _search("linux-6.0", 4, False, **scope)
    assert (on.states, on.levels, _summary(on)) == (off.states, off.levels, _summary(off))


def _ctx(initialized, added=(), sgx2=False):
    return actions.Ctx(initialized, sgx2, frozenset(added), True)


def test_the_region_comes_from_what_the_actions_would_offer():
    sgx1 = Scope(processes=2)
    assert [a.name for a in actions.process_bound(sgx1)] == ["add_pages", "init", "restrict", "modtype",
                                                            "remove", "fork"]
    assert actions.alike_from(sgx1, _ctx(True))
    assert not actions.alike_from(sgx1, _ctx(False))  # INIT (and ADD_PAGES) still to come
    assert not actions.alike_from(sgx1, _ctx(True, sgx2=True))  # the SGX2 ioctls after INIT
    # Without init in the scope, before INIT: ADD_PAGES is offered now.
    assert not actions.alike_from(Scope(processes=2, actions=("mmap", "add_pages", "fork")), _ctx(False))
    # Nothing bound to the parent in the scope: every state after the fork.
    assert actions.alike_from(Scope(processes=2, actions=("mmap", "load", "reclaim", "fork")), _ctx(False))
    child = Scope(processes=2, child_ioctls=True)
    assert [a.name for a in actions.process_bound(child)] == ["fork"]
    assert actions.alike_from(child, _ctx(False)) and actions.alike_from(child, _ctx(True, sgx2=True))


def test_the_switch_and_the_scope_turn_the_swap_off():
    # A property of one's own: tests/check/test_symmetry.py.
    assert symmetry.swaps(MachineModel("linux-5.11", Scope(processes=2)))
    assert not symmetry.swaps(MachineModel("linux-5.11", Scope(processes=2, symmetry=False)))
    assert not symmetry.swaps(MachineModel("linux-5.11", Scope()))
    assert not symmetry.swaps(MachineModel("linux-5.11", Scope(processes=2, enclaves=2)))


def _swapped(a: Action) -> Action:
    other = {"parent": "child", "child": "parent"}
    return Action(a.name, tuple((k, other[v] if k == "proc" else v) for k, v in a.args))


def _tagged(view, swap=False):
    """The view's PTEs and VMAs with their process tags (exchanged)."""
    return (sorted((p.va, p.perms, p.proc ^ swap) for p in view.ptes),
            sorted((m.start, m.end, m.prot, m.proc ^ swap) for m in view.vmas))


CASES = [("linux-5.11", 1, False), ("linux-6.0", 1, True), ("safe-to-execute", 1, True),
         ("propagate-source", 1, True), ("linux-6.0", 2, True), ("linux-5.11", 2, False)]
MODELS = {(d, n, c): MachineModel(d, Scope(pages=n, processes=2, child_ioctls=c, sources=("image", "anon")))
          for d, n, c in CASES}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(sorted(MODELS)), data=st.data())
def test_a_swapped_state_is_the_state_the_swapped_walk_reaches(case, data):
    """Walk randomly (after the fork, only steps whose mirror exists: not
    the parent's own); walk the mirror walk (parent and child exchanged in
    every step) on a second machine: after the fork the swapped fingerprint
    of the first is the fingerprint of the second (up to the PTEs' accessed
    and dirty bits, which fork leaves different), the property hits and the
    views agree up to the exchange, and where the swap applies both have
    one seen-key.  Along the way the context only grows (actions.Ctx)."""
    model = MODELS[case]
    key = symmetry.seen_key(model)
    swap = symmetry.ProcessSwap(model)
    bound = {a.name for a in actions.process_bound(model.sc)}
    s1, g1 = model.initial(), Ghost()
    s2, g2 = model.initial(), Ghost()
    ctx = None
    for _ in range(data.draw(st.integers(1, 14), label="steps")):
        forked = s1.child is not None
        offered = [a for a in model.actions(s1) if not (forked and a.name in bound)]
        if not offered:
            break
        a = data.draw(st.sampled_from(offered), label="action")
        s1, g1, s2, g2 = mirror_steps(model, (s1, g1, a), (s2, g2, _swapped(a) if forked else a))
        fp1, fp2 = model.fingerprint(s1), model.fingerprint(s2)
        assert g1.key() == g2.key()
        if s1.child is None:
            assert fp1 == fp2
        else:
            # Up to the PTEs' accessed and dirty bits: fork() makes the
            # child's copies old, so the walk and its mirror differ there
            # (nothing reads them in these scopes: ProcessSwap.without_ad).
            plain = symmetry.ProcessSwap.without_ad
            assert symmetry.ProcessSwap.swap(plain(fp1)) == plain(fp2)
            assert _tagged(model.view(s1), swap=True) == _tagged(model.view(s2))
            if swap.applies(fp1):
                assert key(fp1, g1.key()) == key(fp2, g2.key())
        now = (s1.initialized, s1.added, s1.child is not None)
        if ctx is not None:
            assert now[0] >= ctx[0] and now[1] >= ctx[1] and now[2] >= ctx[2]
        ctx = now


def test_the_childs_add_pages_reads_its_source_in_the_childs_mm():
    """__sgx_encl_add_page() looks the source up in current->mm and pins it
    there: the child's private copy of the anonymous source, written after
    the fork, is what goes into the enclave."""
    model = MachineModel("linux-6.0", Scope(processes=2, child_ioctls=True))
    state, _ = _run(model, [Action.make("fork")])
    state.child.poke(SRC["anon"], b"the child's page")
    step = model.step(state, Action("add_pages", (("proc", "child"), ("offset", 0), ("source", "anon"),
                                                  ("type", "REG"), ("perms", "RW"))))
    assert [e.ok for e in step.events if e.kind == "add"] == [True]
    epc = step.state.m.cpu.epc
    page = model.enclave_page(step.state, step.state.handles[0], 0).epc_page
    assert bytes(epc.data[page.index][:16]) == b"the child's page"
    # The parent's source page is still zero; its ADD_PAGES copies that.
    mine = model.step(state, Action("add_pages", (("proc", "parent"), ("offset", 0), ("source", "anon"),
                                                  ("type", "REG"), ("perms", "RW"))))
    page = model.enclave_page(mine.state, mine.state.handles[0], 0).epc_page
    assert not any(mine.state.m.cpu.epc.data.get(page.index, b""))


def test_the_childs_add_pages_is_checked_against_the_childs_vmas():
    """propagate-source refuses ADD_PAGES when no enclave VMA of the
    caller covers the page: the child's mmap, not the parent's, lets the
    child add it."""
    model = MachineModel("propagate-source", Scope(processes=2, child_ioctls=True))

    def add(proc):
        return Action("add_pages", (("proc", proc), ("offset", 0), ("source", "image"), ("type", "REG"),
                                    ("perms", "RX")))

    mmap = Action("mmap", (("proc", "child"), ("offset", 0), ("length", PAGE), ("prot", "RX")))
    state, _ = _run(model, [Action.make("fork"), mmap])
    assert [e.ok for e in model.step(state, add("child")).events if e.kind == "add"] == [True]
    assert [e.ok for e in model.step(state, add("parent")).events if e.kind == "add"] == [False]


@pytest.mark.parametrize("design,acts", [("linux-6.0", SGX2), ("linux-5.11", SGX1)])
def test_traces_found_under_the_reduction_replay(design, acts, tmp_path):
    scope = Scope(processes=2, child_ioctls=True, actions=acts, perms=("RW", "RX", "RWX"), sources=("image",))
    factory = lambda d: MachineModel(d, scope)  # noqa: E731
    results = runner.check(factory, [design], depth=5, out_dir=tmp_path)
    found = [r for r in results if r.get("scenario")]
    assert found
    for r in found:
        text = Path(r["scenario"]).read_text()
        assert "child_ioctls = true" in text
        sc = scn.loads(text, r["scenario"])
        rep = runner.replay_scenario(factory, sc)
        assert (rep["verdict"], rep["at"]) == (r["verdict"], len(r["trace"])), r["scenario"]


def test_cli_flag_json_scope_and_errors(tmp_path):
    args = ["check", "--design", "linux-5.11", "--property", "w-xor-x", "--processes", "2", "--depth", "3",
            "--actions", "mmap,add_pages,init,fork", "--json", "--out", str(tmp_path)]
    r = CliRunner().invoke(main, args + ["--child-ioctls"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["scope"] == {"pages": 1, "policy": "selinux", "processes": 2,
                                             "child_ioctls": True,
                                             "actions": ["mmap", "add_pages", "init", "fork"], "depth": 3,
                                             "symmetry": True, "process_swap": True}
    r = CliRunner().invoke(main, args + ["--no-symmetry"])
    assert json.loads(r.stdout)["scope"]["process_swap"] is False
    r = CliRunner().invoke(main, ["check", "--design", "linux-5.11", "--child-ioctls", "--depth", "1"])
    assert r.exit_code == 2 and "--child-ioctls needs --processes 2" in r.output
    assert "--child-ioctls" in CliRunner().invoke(main, ["check", "--help"]).output


BASE = """design = "linux-5.11"
property = "w-xor-x"
expect = "holds"

[scope]
{scope}

[[step]]
action = "fork"

[[step]]
action = "add_pages"
{proc}offset = 0
source = "image"
type = "REG"
perms = "RX"
"""


def test_scenario_files_name_the_ioctls_process_only_with_child_ioctls():
    ok = scn.loads(BASE.format(scope="processes = 2\nchild_ioctls = true", proc='proc = "child"\n'))
    assert ok.steps[1].arg("proc") == "child" and ok.scope["child_ioctls"] is True
    with pytest.raises(scn.ScenarioError, match="add_pages takes no such key"):
        scn.loads(BASE.format(scope="processes = 2", proc='proc = "child"\n'))
    with pytest.raises(scn.ScenarioError, match="scope.child_ioctls"):
        scn.loads(BASE.format(scope="processes = 2\nchild_ioctls = 1", proc='proc = "child"\n'))
    with pytest.raises(scn.ScenarioError, match="needs scope processes = 2"):
        scn.loads(BASE.format(scope="child_ioctls = true", proc=""))
