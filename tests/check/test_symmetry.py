"""The page-symmetry reduction (check/symmetry.py, issue 10 item 2): reduced
and unreduced searches of the same model agree on verdicts and shortest
trace lengths with fewer states; a page-renamed state has the key of the
real state reached by the renamed actions; the one action that does not
commute with renaming (a whole-enclave mprotect that stops part way) has
its one-step mirror; traces found under the reduction replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgxsim.check import runner, symmetry
from sgxsim.check import scenario as scn
from sgxsim.check.digests import digest
from sgxsim.check.explorer import explore
from sgxsim.check.ghost import Ghost
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action
from sgxsim.check.properties import PROPERTIES, Property
from sgxsim.check.scope import ACTIONS, PAGE, Scope
from sgxsim.cli import main

NO_MPROTECT = tuple(a for a in ACTIONS if a != "mprotect")
# Narrower parameters keep the exhaustive comparisons within CI's time; the
# reduction does not depend on them.
SMALL = {"perms": ("RW", "RX", "RWX"), "sources": ("image", "anon")}


def _search(design, depth, symmetric, **scope):
    return explore(MachineModel(design, Scope(symmetry=symmetric, **scope)), depth=depth)


def _summary(e):
    return {name: f.depth for name, f in e.findings.items()}


@pytest.mark.parametrize("design,depth,scope", [
    ("linux-6.0", 4, {"pages": 2, **SMALL}),
    ("linux-5.11", 4, {"pages": 2, **SMALL}),
    ("no-hook", 4, {"pages": 2, **SMALL}),
    ("safe-to-execute", 3, {"pages": 2}),
    ("linux-6.0", 3, {"pages": 3, "actions": NO_MPROTECT, **SMALL}),
    ("no-hook", 3, {"pages": 3, "actions": NO_MPROTECT, **SMALL}),
])
def test_reduced_and_unreduced_searches_agree(design, depth, scope):
    plain = _search(design, depth, False, **scope)
    reduced = _search(design, depth, True, **scope)
    assert _summary(reduced) == _summary(plain)
    assert reduced.exhausted == plain.exhausted
    assert reduced.states < plain.states
    assert all(r <= p for r, p in zip(reduced.levels, plain.levels, strict=True))


def test_three_pages_with_mprotect_are_not_reduced():
    model = MachineModel("linux-6.0", Scope(pages=3))
    assert symmetry.group(model) == ()
    assert symmetry.group(MachineModel("linux-6.0", Scope(pages=3, actions=NO_MPROTECT))) == ((2, 1, 0),)
    assert symmetry.group(MachineModel("linux-6.0", Scope(pages=2))) == ((1, 0),)
    assert symmetry.group(MachineModel("linux-6.0", Scope(pages=1))) == ()
    assert symmetry.group(MachineModel("linux-6.0", Scope(pages=2, symmetry=False))) == ()


@pytest.mark.parametrize("flag,scope,reduced", [
    # The pages: page 0 is not page 1.
    ("symmetric", {"pages": 2}, lambda m, names: symmetry.group(m, names) == ((1, 0),)),
    # The processes (tests/check/test_process_symmetry.py): the parent is not the child.
    ("process_symmetric", {"processes": 2}, symmetry.swaps),
])
def test_a_property_that_does_not_say_it_is_symmetric_turns_the_reduction_off(flag, scope, reduced):
    class PageZeroOfTheParentNeverMapped(Property):
        name = "page-zero-of-the-parent-never-mapped"

        def check(self, view, before, after, events):
            return "mapped" if any(p.offset == 0 and p.proc == 0 for p in view.ptes) else None

    declared = type("Declared", (PageZeroOfTheParentNeverMapped,), {flag: True})
    model = MachineModel("linux-6.0", Scope(**scope))
    names = ["w-xor-x", PageZeroOfTheParentNeverMapped.name]
    assert reduced(model, ["w-xor-x"])
    PROPERTIES[names[1]] = PageZeroOfTheParentNeverMapped()
    try:
        assert not reduced(model, names)
        PROPERTIES[names[1]] = declared()
        assert reduced(model, names)
    finally:
        del PROPERTIES[names[1]]


def _mirror(a: Action, perm) -> Action:
    """``a`` with the explored pages renamed (a whole-enclave range stays)."""
    whole = a.arg("length", PAGE) != PAGE
    return Action(a.name, tuple((k, perm[v // PAGE] * PAGE if k == "src" or (k == "offset" and not whole)
                                 else v) for k, v in a.args))


def _run(model, actions):
    state, ghost = model.initial(), Ghost()
    for a in actions:
        s = model.step(state, a)
        state, ghost = s.state, ghost.after(s.events)
    return state, ghost


# mremap is never among them: it breaks the symmetry (test below).
CASES = [("linux-6.0", 2, ACTIONS + ("mseal",), 1), ("safe-to-execute", 2, ACTIONS, 1),
         ("no-hook", 2, ACTIONS, 1), ("propagate-source", 2, ACTIONS, 1), ("v40", 2, ACTIONS, 1),
         ("linux-6.12", 3, NO_MPROTECT + ("mseal",), 1), ("safe-to-execute", 3, NO_MPROTECT, 1),
         # Two processes: the pages are renamed in both (the product with the
         # parent/child swap is tests/check/test_process_symmetry.py's).
         ("linux-6.0", 2, ACTIONS, 2), ("linux-5.11", 2, ACTIONS, 2),
         ("no-hook", 3, NO_MPROTECT, 2)]
MODELS = {(d, n, p): MachineModel(d, Scope(pages=n, actions=acts, processes=p)) for d, n, acts, p in CASES}


def _commuting(a: Action) -> bool:
    return not (a.name == "mprotect" and a.arg("length") != PAGE)


@pytest.mark.parametrize("design", ["linux-5.11", "linux-6.0", "linux-6.12"])
def test_a_whole_enclave_mremap_tells_the_pages_apart(design):
    """Why the scope's mremap turns the page reduction off.  Map both pages,
    move one above ELRANGE, then mremap the whole enclave: with the hole at
    page 0 sys_mremap() finds no VMA at its first address and refuses with
    nothing changed; with the hole at page 1 (the mirror) it finds page 0's
    VMA, unmaps the destination (where page 1 went) and only then refuses.
    The mirrored walks end in states that are not mirror images."""
    model = MachineModel(design, Scope(pages=2, actions=ACTIONS + ("mremap",)))
    assert symmetry.group(model) == ()
    walk = [Action.make("mmap", offset=0, length=2 * PAGE, prot="R"),
            Action.make("mremap", offset=0, length=PAGE),
            Action.make("mremap", offset=0, length=2 * PAGE)]
    s1, g1 = _run(model, walk)
    s2, g2 = _run(model, [_mirror(a, (1, 0)) for a in walk])
    sym = symmetry.PageSymmetry(model, ((1, 0),))
    renamed = sym.rename(sym.renamings[0], model.fingerprint(s1), g1.key())
    assert renamed != (model.fingerprint(s2), g2.key())
    # The difference is the moved VMA: kept on one side, unmapped on the other.
    above = model.base + model.size  # where mremap moves page i: above + i * PAGE

    def moved(s):
        return [(v.vm_start - above, v.vm_end - above) for v in s.proc.mm.vmas
                if above <= v.vm_start < above + 2 * PAGE]

    assert moved(s1) == [(0, PAGE)] and moved(s2) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(sorted(MODELS)), data=st.data())
def test_a_renamed_state_is_the_state_the_renamed_actions_reach(case, data):
    """Walk randomly; walk the mirror walk (every page renamed by the
    group's permutation) on a second machine: after every step the renamed
    key of the first is the key of the second, and both have one seen-key."""
    model = MODELS[case]
    (perm,) = symmetry.group(model)
    sym = symmetry.PageSymmetry(model, (perm,))
    ren = sym.renamings[0]
    s1, g1 = model.initial(), Ghost()
    s2, g2 = model.initial(), Ghost()
    for _ in range(data.draw(st.integers(1, 14), label="steps")):
        a = data.draw(st.sampled_from([a for a in model.actions(s1) if _commuting(a)]), label="action")
        s1, g1, s2, g2 = mirror_steps(model, (s1, g1, a), (s2, g2, _mirror(a, perm)))
        fp1, fp2 = model.fingerprint(s1), model.fingerprint(s2)
        assert sym.rename(ren, fp1, g1.key()) == (fp2, g2.key())
        assert sym.key(fp1, g1.key()) == sym.key(fp2, g2.key())


def _hits(step, before, after):
    return {p.name for p in PROPERTIES.values() if p.check(step.view, before, after, step.events)}


def mirror_steps(model, one, other):
    """Step ``a`` from ``(s1, g1, a)`` and its mirror ``b`` from ``(s2, g2,
    b)``: ``b`` must be offered there and fire the same properties; the two
    states and ghosts reached."""
    (s1, g1, a), (s2, g2, b) = one, other
    assert b in model.actions(s2)
    t1, t2 = model.step(s1, a), model.step(s2, b)
    h1, h2 = g1.after(t1.events), g2.after(t2.events)
    assert _hits(t1, g1, h1) == _hits(t2, g2, h2)
    return t1.state, h1, t2.state, h2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(design=st.sampled_from(["linux-6.0", "safe-to-execute", "v40", "no-hook", "propagate-source"]),
       processes=st.sampled_from([1, 2]), data=st.data())
def test_a_whole_enclave_mprotect_has_a_one_step_mirror(design, processes, data):
    """At two pages, a whole-enclave mprotect from a state s reaches t; from
    the mirror state some action reaches t's mirror, with at least t's
    property hits (docs/checker-reach.md: the argument for the swap); with
    two processes, in either process."""
    model = MachineModel(design, Scope(pages=2, processes=processes))
    seen_key = symmetry.seen_key(model)
    walk = []
    state, ghost = model.initial(), Ghost()
    for _ in range(data.draw(st.integers(0, 8), label="steps")):
        a = data.draw(st.sampled_from([a for a in model.actions(state) if _commuting(a)]), label="action")
        walk.append(a)
        s = model.step(state, a)
        state, ghost = s.state, ghost.after(s.events)
    mstate, mghost = _run(model, [_mirror(a, (1, 0)) for a in walk])
    for whole in (a for a in model.actions(state) if not _commuting(a)):
        t = model.step(state, whole)
        gt = ghost.after(t.events)
        want = seen_key(model.fingerprint(t.state), gt.key())
        hits = _hits(t, ghost, gt)
        found = False
        for b in model.actions(mstate):
            u = model.step(mstate, b)
            gu = mghost.after(u.events)
            if seen_key(model.fingerprint(u.state), gu.key()) == want and _hits(u, mghost, gu) >= hits:
                found = True
                break
        assert found, (walk, whole)


@pytest.mark.parametrize("design", ["linux-6.0", "no-hook"])
def test_traces_found_under_the_reduction_replay(design, tmp_path):
    scope = Scope(pages=2, **SMALL)
    factory = lambda d: MachineModel(d, scope)  # noqa: E731
    results = runner.check(factory, [design], depth=4, out_dir=tmp_path)
    found = [r for r in results if r.get("scenario")]
    assert found
    for r in found:
        sc = scn.loads(Path(r["scenario"]).read_text(), r["scenario"])
        rep = runner.replay_scenario(factory, sc)
        assert (rep["verdict"], rep["at"]) == (r["verdict"], len(r["trace"])), r["scenario"]


def test_cli_switch_and_json_scope(tmp_path):
    args = ["check", "--design", "no-hook", "--property", "w-xor-x", "--pages", "2", "--depth", "3",
            "--actions", "mmap,mprotect,init,store",
            "--json", "--out", str(tmp_path)]
    on = CliRunner().invoke(main, args)
    off = CliRunner().invoke(main, args + ["--no-symmetry"])
    assert on.exit_code == 0 and off.exit_code == 0, on.output + off.output
    a, b = json.loads(on.stdout), json.loads(off.stdout)
    assert a["scope"]["symmetry"] is True and b["scope"]["symmetry"] is False
    assert a["scope"]["pages"] == 2
    ra, rb = a["results"][0], b["results"][0]
    assert (ra["verdict"], ra["depth"]) == (rb["verdict"], rb["depth"])
    assert ra["states"] <= rb["states"]
    help_text = CliRunner().invoke(main, ["check", "--help"]).output
    assert "--symmetry / --no-symmetry" in help_text


def test_the_partial_whole_enclave_mprotect_is_mirrored_by_one_page():
    """Page 0 may become RWX, page 1 not: mprotect of both changes page 0
    and fails; in the mirror state, mprotect of page 1 alone gives the
    mirror of that state (and succeeds)."""
    model = MachineModel("linux-6.0", Scope(pages=2))
    add = [Action.make("add_pages", offset=0, source="image", type="REG", perms="RWX"),
           Action.make("add_pages", offset=PAGE, source="image", type="REG", perms="R"),
           Action.make("init"), Action.make("mmap", offset=0, length=PAGE, prot="R"),
           Action.make("mmap", offset=PAGE, length=PAGE, prot="R")]
    s, g = _run(model, add)
    whole = model.step(s, Action.make("mprotect", offset=0, length=2 * PAGE, prot="RWX"))
    assert [e.ok for e in whole.events if e.kind == "mprotect"] == [False]
    assert model.fingerprint(whole.state) != model.fingerprint(s)  # page 0 changed
    m, mg = _run(model, [_mirror(a, (1, 0)) for a in add])
    one = model.step(m, Action.make("mprotect", offset=PAGE, length=PAGE, prot="RWX"))
    key = symmetry.seen_key(model)
    assert key(model.fingerprint(one.state), mg.after(one.events).key()) == \
        key(model.fingerprint(whole.state), g.after(whole.events).key())
    # ... and the mirror's own whole-enclave mprotect changes nothing.
    mw = model.step(m, Action.make("mprotect", offset=0, length=2 * PAGE, prot="RWX"))
    assert model.fingerprint(mw.state) == model.fingerprint(m)


def test_two_enclaves_keep_the_plain_key():
    """The argument is made for one enclave: with two the seen-key is the
    plain digest, so the mirror states (page 0 added, or page 1) stay two
    states."""
    from sgxsim.check.digests import digest

    extra = {"enclaves": 2}
    model = MachineModel("linux-6.0", Scope(pages=2, **extra))
    assert not symmetry.scope_allows(model.sc) and symmetry.group(model) == ()
    assert symmetry.scope_allows(Scope(pages=2)) and not symmetry.scope_allows(Scope(pages=2, symmetry=False))
    key = symmetry.seen_key(model)
    s0 = model.initial()
    keys = []
    for off in (0, PAGE):
        a = next(a for a in model.actions(s0) if a.name == "add_pages" and a.arg("offset") == off
                 and a.arg("enclave", 0) == 0 and a.arg("type") == "REG")
        step = model.step(s0, a)
        fp, gkey = model.fingerprint(step.state), Ghost().after(step.events).key()
        assert key(fp, gkey) == digest((fp, gkey))
        keys.append(key(fp, gkey))
    assert keys[0] != keys[1]
    # The same two states under one process and one enclave fold into one.
    one = MachineModel("linux-6.0", Scope(pages=2))
    k1 = symmetry.seen_key(one)
    folded = set()
    for off in (0, PAGE):
        s = one.step(one.initial(), Action.make("add_pages", offset=off, source="image", type="REG", perms="R"))
        folded.add(k1(one.fingerprint(s.state), Ghost().after(s.events).key()))
    assert len(folded) == 1
    # And the search is the unreduced one (trivially, at a small depth).
    narrow = {"pages": 2, "perms": ("RW", "RX"), "sources": ("image",),
              "actions": ("mmap", "add_pages", "init", "fetch", "fork"), **extra}
    on, off = _search("linux-6.0", 2, True, **narrow), _search("linux-6.0", 2, False, **narrow)
    assert (on.states, on.levels, _summary(on)) == (off.states, off.levels, _summary(off))


def test_two_processes_rename_the_pages_in_both():
    """With --processes 2 the pages are renamed in both processes: the
    states with page 0 or page 1 added and mapped fold, whether the parent
    maps it or, after the fork, the child does (so the child's page table
    and VMAs are renamed too)."""
    model = MachineModel("linux-6.0", Scope(pages=2, processes=2))
    assert symmetry.group(model) == ((1, 0),)
    key = symmetry.seen_key(model)
    for before, proc in (([], "parent"), ([Action.make("fork")], "child")):
        folded, plain = set(), set()
        for off in (0, PAGE):
            add = Action("add_pages", (("offset", off), ("source", "image"), ("type", "REG"), ("perms", "R")))
            s, g = _run(model, before + [add, Action("mmap", (("proc", proc), ("offset", off),
                                                              ("length", PAGE), ("prot", "R")))])
            fp = model.fingerprint(s)
            folded.add(key(fp, g.key()))
            plain.add(digest((fp, g.key())))
        assert len(plain) == 2 and len(folded) == 1


@pytest.mark.parametrize("extra,want", [({"processes": 2}, {"processes": 2, "symmetry": True,
                                                            "process_swap": True}),
                                        ({"enclaves": 2}, {"enclaves": 2, "symmetry": False})])
def test_json_scope_records_the_reduction(extra, want, tmp_path):
    opt = [f"--{k}={v}" for k, v in extra.items()]
    r = CliRunner().invoke(main, ["check", "--design", "no-hook", "--property", "w-xor-x", "--pages", "2",
                                  *opt, "--depth", "2", "--actions", "mmap,init,fork",
                                  "--json", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["scope"] == {"pages": 2, "policy": "selinux", "depth": 2,
                                             "actions": ["mmap", "init", "fork"], **want}
    assert "off by itself with --enclaves 2" in " ".join(
        CliRunner().invoke(main, ["check", "--help"]).output.split())
