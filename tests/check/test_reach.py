"""The cheaper explorer (issue 10): restoring a machine in place gives the
machine a thaw would, the digests are stable across processes, and the
search with every shortcut finds exactly what the plain path finds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, deque
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.check.walks import choices as walk_choices
from tests.check.walks import pick

from sgxsim.check import snapshot
from sgxsim.check.digests import DigestSet, digest
from sgxsim.check.explorer import explore
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action
from sgxsim.check.scope import Scope
from sgxsim.check.snapshot import Snapshot

BUILT = [Action.make("add_pages", offset=0, source="image", type="REG", perms="RX"),
         Action.make("init"), Action.make("mmap", offset=0, length=8192, prot="RWX"),
         Action.make("store", offset=4096)]


@pytest.mark.parametrize("compile_after", [1, 1 << 30])
@pytest.mark.parametrize("design,prefix", [("linux-6.0", 0), ("linux-6.0", 2), ("linux-6.0", 4),
                                           ("safe-to-execute", 3), ("no-hook", 1)])
def test_restore_gives_the_parent_byte_for_byte_after_every_action(design, prefix, compile_after,
                                                                   monkeypatch):
    # Both ways of finding the slots to put back: the per-class tests, and
    # the machine shape's compiled comparer (after COMPILE_AFTER restores).
    monkeypatch.setattr(snapshot, "COMPILE_AFTER", compile_after)
    monkeypatch.setattr(snapshot, "_DIFFS", {})
    monkeypatch.setattr(snapshot, "_USES", {})
    model = MachineModel(design, Scope(pages=2))
    st = model.initial()
    for a in BUILT[:prefix]:
        st = model.step(st, a).state
    st = model.thaw(model.freeze(st))
    # The thawed machine's own bytes: a thaw rebuilds each set by inserting
    # its members in the pickled order, which with colliding string hashes
    # can iterate (and so pickle) in another order than the set pickled.
    blob = model.freeze(st)
    snap = Snapshot(st)
    actions = model.actions(st)
    assert len(actions) > 10
    for a in actions:
        model.apply(st, a)
        snap.restore()
        assert model.freeze(st) == blob, a


def test_snapshot_refuses_objects_it_cannot_restore():
    class Holder:
        def __init__(self):
            self.it = iter([1, 2])
    with pytest.raises(TypeError, match="list_iterator"):
        Snapshot(Holder())


def test_digest_set_members_and_growth():
    s = DigestSet(capacity=4)
    keys = [digest(("state", i)) for i in range(5000)]
    assert all(s.add(k) for k in keys)
    assert not any(s.add(k) for k in keys[::7])
    assert len(s) == 5000 and all(k in s for k in keys)
    assert digest(("state", -1)) not in s
    assert sorted(s) == sorted(keys)
    assert s.nbytes / len(s) <= 64


def test_equal_keys_built_from_distinct_objects_have_one_digest():
    a = (("vma", 0x7F0000000000, "".join(["R", "W"])), (1, 2), b"x" * 3)
    b = (("vma", 0x7F0000000000, "RW"), (1, 2), b"xxx")
    assert a == b and a[0][2] is not b[0][2]
    assert digest(a) == digest(b) and digest(a) != digest((a, 0))


def test_digests_are_the_same_in_another_process():
    """A digest must not depend on hash randomisation (workers on other
    machines exchange them)."""
    model = MachineModel("linux-6.0", Scope(pages=2))
    st = model.initial()
    for a in BUILT:
        st = model.step(st, a).state
    here = digest(model.fingerprint(st)).hex()
    code = ("from sgxsim.check.digests import digest\n"
            "from sgxsim.check.machine_model import MachineModel\n"
            "from sgxsim.check.scope import Scope\n"
            "from tests.check.test_reach import BUILT\n"
            "m = MachineModel('linux-6.0', Scope(pages=2)); st = m.initial()\n"
            "for a in BUILT: st = m.step(st, a).state\n"
            "print(digest(m.fingerprint(st)).hex())\n")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.stdout.strip() == here


@pytest.mark.parametrize("design,depth", [("linux-6.0", 3), ("no-hook", 4)])
def test_new_explorer_finds_what_the_plain_path_finds_with_two_pages(design, depth):
    scope = Scope(pages=2)
    a = explore(MachineModel(design, scope), depth=depth)
    b = explore(MachineModel(design, scope), depth=depth, reuse=False)
    assert a.restores > 0 and b.restores == 0 and b.thaws == b.transitions
    assert (a.states, a.levels, a.transitions) == (b.states, b.levels, b.transitions)
    assert {k: (f.depth, f.path, f.reason, f.states) for k, f in a.findings.items()} == \
           {k: (f.depth, f.path, f.reason, f.states) for k, f in b.findings.items()}


MODELS = {d: MachineModel(d, Scope(pages=2, processes=2)) for d in ("linux-6.0", "no-hook")}


def _walk(model, state, choices):
    """The state after the actions picked by ``choices`` (INIT whenever the
    bias says so and it is offered, so that most walks go past it)."""
    for bias, c in choices:
        model.apply(state, pick(model, state, bias, c))
    return state


_CHOICES = walk_choices(max_size=10)


@pytest.mark.parametrize("design", list(MODELS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=_CHOICES, after=st.lists(_CHOICES, min_size=1, max_size=4))
def test_restore_after_random_action_sequences_gives_the_thaw_byte_for_byte(design, before, after):
    """A parent reached by random actions; from it, several random runs of
    actions (not only one: a run can grow new VMAs, pages and processes, and
    change the machine's shape), each followed by a restore: the machine
    is the thawed parent again, byte for byte, and the next run starts
    from it."""
    model = MODELS[design]
    st_ = model.thaw(model.freeze(_walk(model, model.thaw(model.freeze(model.initial())), before)))
    blob = model.freeze(st_)
    snap = Snapshot(st_)
    for run in after:
        _walk(model, st_, run)
        snap.restore()
        assert model.freeze(st_) == blob, run


@pytest.mark.parametrize("compile_after", [1, 1 << 30])
@pytest.mark.parametrize("design", list(MODELS))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=_CHOICES, steps=_CHOICES, after=st.lists(_CHOICES, min_size=1, max_size=3))
def test_a_snapshot_made_from_an_ancestors_restores_as_a_fresh_one(design, compile_after, before, steps,
                                                                   after):
    """Snapshot.after(), as the explorer makes a node's snapshot from its
    ancestor's: an ancestor reached by random actions, then random steps
    from it; the snapshot made from the ancestor's puts the machine back to
    the node byte for byte after random runs (as a fresh snapshot of the
    node does), made again from it too, and the ancestor's own snapshot
    still puts back the ancestor.  Both ways of finding the slots to put
    back: the compiled comparer of the ancestor's shape for the objects it
    covered and the classes' tests for the new ones, or the tests alone."""
    saved = snapshot.COMPILE_AFTER, dict(snapshot._DIFFS), dict(snapshot._USES)
    snapshot.COMPILE_AFTER = compile_after
    snapshot._DIFFS.clear()
    snapshot._USES.clear()
    try:
        _derived_restores(MODELS[design], before, steps, after)
    finally:
        snapshot.COMPILE_AFTER = saved[0]
        snapshot._DIFFS.clear()
        snapshot._DIFFS.update(saved[1])
        snapshot._USES.clear()
        snapshot._USES.update(saved[2])


def _derived_restores(model, before, steps, after):
    st_ = model.thaw(model.freeze(_walk(model, model.thaw(model.freeze(model.initial())), before)))
    ancestor = model.freeze(st_)
    snap = Snapshot(st_)
    _walk(model, st_, steps)
    node = model.freeze(st_)
    derived = _checked_after(snap)
    for run in after:
        _walk(model, st_, run)
        derived.restore()
        assert model.freeze(st_) == node, run
        again = _checked_after(derived)  # nothing changed since: the same saved contents
        _walk(model, st_, run)
        again.restore()
        assert model.freeze(st_) == node, run
    snap.restore()
    assert model.freeze(st_) == ancestor
    # Restored once (so with its shape's comparer, at COMPILE_AFTER 1), the
    # ancestor's snapshot makes the node's again, as the explorer does for
    # the second and later nodes made from one ancestor.
    _walk(model, st_, steps)
    assert model.freeze(st_) == node
    derived = _checked_after(snap)
    _walk(model, st_, after[0])
    derived.restore()
    assert model.freeze(st_) == node


def _checked_after(snap: Snapshot) -> Snapshot:
    """``snap.after()``, whose saved slots, found by the shape's comparer
    where ``snap`` has one, are those the plain walk over every object saves."""
    derived = snap.after()
    with mock.patch.object(Snapshot, "_changed_slotted", lambda self: None):
        plain = snap.after()
    assert _slots_saved(derived) == _slots_saved(plain)
    return derived


def _slots_saved(snap: Snapshot) -> list:
    """Each slotted object of ``snap`` with what it saved (by identity)."""
    return [(id(x), names, getter, tuple(map(id, vals))) for x, names, getter, vals in snap.slotted] + \
        [tuple(map(id, vals)) for vals in snap._slot_saved]


def test_a_snapshot_made_from_another_sees_each_kind_of_change():
    # Each kind of container changed in turn after the first snapshot, and
    # a new object reachable only through the change: the derived snapshot
    # puts back what was there when it was made.
    p, q, priv = _Plain(), _Plain(), _Private()
    p.a, p.b = [1], {"k": 2}
    q.a = p.a
    buf, dq = bytearray(b"ab"), deque([1])
    root = [p, q, priv, buf, dq, {3}]
    snap = Snapshot(root)
    fresh = [0]
    p.a.append(fresh)          # a list grows a new object
    p.b["k"] = {"new": fresh}  # a dict gets a new dict
    q.b = "set later"          # an unset slot set
    priv.x["n"] = 1
    buf[0] = ord("z")
    dq.append(2)
    root[5].add(4)
    derived = snap.after()
    saved = (list(p.a), dict(p.b), q.b, dict(priv.x), bytes(buf), list(dq), set(root[5]))
    fresh.append(1)            # inside the new object
    p.b["k"]["new2"] = 1       # inside the new dict
    p.a.pop()
    del q.b
    priv.x.clear()
    buf[1] = ord("y")
    dq.clear()
    root[5].clear()
    derived.restore()
    assert (list(p.a), dict(p.b), q.b, dict(priv.x), bytes(buf), list(dq), set(root[5])) == saved
    assert p.a[1] is fresh and fresh == [0] and p.b["k"] == {"new": fresh}
    snap.restore()
    assert p.a == [1] and p.b == {"k": 2} and not hasattr(q, "b") and priv.x == {} and buf == b"ab"


@pytest.mark.parametrize("compile_after", [1, 1 << 30])
def test_a_derived_snapshot_puts_back_a_deleted_slot_of_an_object_new_to_it(monkeypatch, compile_after):
    # The object appeared after the ancestor's snapshot, so the derived one
    # tests it apart from the ancestor's shape (compiled, or per class).
    monkeypatch.setattr(snapshot, "COMPILE_AFTER", compile_after)
    monkeypatch.setattr(snapshot, "_DIFFS", {})  # no comparer compiled by an earlier test
    monkeypatch.setattr(snapshot, "_USES", {})
    p = _Plain()
    p.a, p.b = 1, 2
    root = [p]
    snap = Snapshot(root)
    snap.restore()  # the shape earns its comparer at once when compile_after is 1
    r = _Plain()
    r.a, r.b = 3, 4
    root.append(r)
    derived = snap.after()
    del r.a
    p.b = 5
    derived.restore()
    assert (r.a, r.b, p.a, p.b) == (3, 4, 1, 2)


def test_a_container_subclass_is_refused_not_missed():
    # A Counter pickles by __reduce__ (what marks a shared object): its
    # counts would not be saved, so a snapshot refuses it.
    with pytest.raises(TypeError, match="cannot snapshot a Counter: a subclass of a container"):
        Snapshot([Counter(a=1)])


class _Plain:
    __slots__ = ("a", "b")


class _Private:
    # A private slot is stored under its mangled name (_Private__hidden);
    # "lambda" is a slot that ``o.lambda`` cannot spell (compared through
    # getters instead of the compiled comparer).
    __slots__ = ("__hidden", "x", "lambda")

    def __init__(self):
        self.__hidden = [1]
        self.x = {}
        setattr(self, "lambda", ())

    def hidden(self):
        return self.__hidden


@pytest.mark.parametrize("compile_after", [1, 1 << 30])
def test_snapshot_puts_back_slots_replaced_deleted_or_set_later(compile_after, monkeypatch):
    monkeypatch.setattr(snapshot, "COMPILE_AFTER", compile_after)
    monkeypatch.setattr(snapshot, "_DIFFS", {})
    monkeypatch.setattr(snapshot, "_USES", {})
    p, q = _Plain(), _Plain()
    p.a, p.b = [1], {"k": 2}
    q.a = p.a  # q.b unset: walked by name
    priv = _Private()
    root = [p, q, priv]
    snap = Snapshot(root)
    a, b = p.a, p.b
    p.a = [1]          # equal, not the same object: must be put back
    p.b["k"] = 3
    q.b = "set later"  # unset at the snapshot: removed again
    hidden, empty = priv.hidden(), getattr(priv, "lambda")
    priv._Private__hidden = [1]
    priv.x["new"] = 1
    setattr(priv, "lambda", (1,))
    snap.restore()
    assert p.a is a and p.b is b and b == {"k": 2} and q.a is a and not hasattr(q, "b")
    assert priv.hidden() is hidden and priv.x == {} and getattr(priv, "lambda") is empty
    del p.b            # a slot deleted: every slot is put back by name
    priv._Private__hidden = None
    snap.restore()
    assert p.b is b and priv.hidden() is hidden
