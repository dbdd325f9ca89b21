"""The checker's memos against the computations they stand for: on random
runs of the model (steps applied in place and undone by a snapshot's
restore, as the explorer runs them), every memoized answer — the PTE views
and page-table keys of :mod:`sgxsim.check.observe`, the steps
``MachineModel.actions`` offers, a state's digest, the parts of a lazy
view — is the one computed afresh, so a memo that went stale (kept an
answer its inputs no longer give) fails here."""

from __future__ import annotations

import hashlib
import io
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgxsim.check import actions, observe
from sgxsim.check.digests import DIGEST_SIZE, digest
from sgxsim.check.ghost import Ghost
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action
from sgxsim.check.scope import Scope
from sgxsim.hw.consts import PageType
from sgxsim.hw.epc import EPCM_VALID
from sgxsim.hw.memory import EPC_BASE_PFN
from sgxsim.hw.paging import PTE_PFN_MASK, PTE_PFN_SHIFT, PTE_RW

MODELS = {
    "linux-6.0": MachineModel("linux-6.0", Scope(pages=2)),
    "no-hook": MachineModel("no-hook", Scope(pages=2)),
    "linux-6.0, two processes": MachineModel("linux-6.0", Scope(pages=2, processes=2)),
}


def fresh_digest(key) -> bytes:
    """The digest as the module docstring defines it, with a new pickler."""
    buf = io.BytesIO()
    p = pickle.Pickler(buf, 4)
    p.fast = True
    p.dump(key)
    return hashlib.blake2b(buf.getvalue(), digest_size=DIGEST_SIZE).digest()


def check_memos(model: MachineModel, st) -> None:
    epc = st.m.cpu.epc
    spans = [(model._secs_index(st, h), h.base, model.size) for h in st.handles]
    for i, q in enumerate(model.processes(st)):
        pt = q.mm.pgtable
        assert observe.pt_key(pt, epc, model.base) == observe._pt_key(pt, epc, model.base)
        assert observe.pte_views_of(pt, epc, spans, model.base, proc=i) == \
            observe._pte_views_of(pt, epc, spans, model.base, i)
        assert observe.pt_key_and_views(pt, epc, model.base, spans, model.base, i) == \
            (observe._pt_key(pt, epc, model.base), observe._pte_views_of(pt, epc, spans, model.base, i))
    for secs, h in zip(spans, st.handles, strict=True):
        for reg in (False, True):
            assert observe.epc_pages_key(epc, secs[0], h.base, reg) == \
                observe._epc_pages_key(epc, secs[0], h.base, reg)
    sgx2, forked = model.sgx2(st), st.child is not None
    ctxs = [actions.Ctx(h.initialized, sgx2, h.added, forked) for h in st.handles]
    assert model.actions(st) == actions.enabled_in(model.sc, ctxs)
    key = (model.fingerprint(st), Ghost().key())
    assert digest(key) == fresh_digest(key)
    # The explorer's view, read part by part (in another order than the
    # fields'), is the whole view; so is the one made from what the
    # fingerprint read (observe), whose fingerprint is the fingerprint.
    fp, make = model.observe(st)
    assert fp == model.fingerprint(st)
    view = model.view(st)
    for lazy in (model.lazy_view(st), make() if make is not None else model.lazy_view(st)):
        for part in ("vmas", "execmod", "ptes", "execmem"):
            assert getattr(lazy, part) == getattr(view, part)
            assert getattr(lazy, part) is getattr(lazy, part)
    assert (make is None) == (len(st.handles) > 1 or st.child is not None)


@pytest.mark.parametrize("name", list(MODELS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(choices=st.lists(st.tuples(st.booleans(), st.integers(0, 10_000)), min_size=1, max_size=10))
def test_memos_answer_as_the_computation(name, choices):
    model = MODELS[name]
    st_ = model.thaw(model.freeze(model.initial()))
    snap = model.snapshot(st_)
    check_memos(model, st_)
    for undo, c in choices:
        acts = model.actions(st_)
        init = [a for a in acts if a.name == "init"]
        action = init[0] if init and c % 4 == 0 else acts[c % len(acts)]
        model.apply(st_, action, view=False)
        check_memos(model, st_)
        if undo:
            # Back to the state the snapshot was taken of, as after an
            # explorer transition; else go on from here (a new snapshot).
            snap.restore()
        else:
            snap = model.snapshot(st_)
        check_memos(model, st_)


def test_a_memo_stays_bounded():
    model = MODELS["linux-6.0"]
    st_ = model.thaw(model.freeze(model.initial()))
    saved = observe.MEMO_MAX
    try:
        observe.MEMO_MAX = 2
        for base in range(5):
            observe.pt_key(st_.proc.mm.pgtable, st_.m.cpu.epc, base << 12)
            assert len(observe._PT_KEYS) <= 2
    finally:
        observe.MEMO_MAX = saved


def test_every_input_of_a_page_table_memo_is_in_its_key():
    # A state with PTEs into the EPC; then each thing the functions read is
    # changed in turn under them (also where no model step would change it
    # alone): each answer must follow.
    model = MODELS["linux-6.0"]
    st_ = model.initial()
    for a in (Action.make("init"), Action.make("mmap", offset=0, length=2 * 4096, prot="RW"),
              Action.make("load", offset=0), Action.make("store", offset=0)):
        st_ = model.step(st_, a).state
    epc, pt = st_.m.cpu.epc, st_.proc.mm.pgtable
    spans = [(model._secs_index(st_, st_.handles[0]), model.base, model.size)]
    index = {vpn: ((pte & PTE_PFN_MASK) >> PTE_PFN_SHIFT) - EPC_BASE_PFN for vpn, pte in pt.ptes.items()}
    mapped = [(vpn, i) for vpn, i in index.items() if 0 <= i < epc.npages]
    assert mapped
    vpn, i = mapped[0]

    secs_i = spans[0][0]
    tcs = next(j for j in range(epc.npages) if epc.flags[j] & EPCM_VALID and epc.pt[j] == PageType.PT_TCS)
    reg = next(j for j in range(epc.npages) if epc.flags[j] & EPCM_VALID and epc.pt[j] == PageType.PT_REG
               and epc.secs[j] == secs_i)

    def same() -> None:
        for contents in (False, True):
            assert observe.epc_pages_key(epc, secs_i, model.base, contents) == \
                observe._epc_pages_key(epc, secs_i, model.base, contents)
        assert observe.pt_key(pt, epc, model.base) == observe._pt_key(pt, epc, model.base)
        assert observe.pte_views_of(pt, epc, spans, model.base) == \
            observe._pte_views_of(pt, epc, spans, model.base, 0)
        assert observe.pt_key_and_views(pt, epc, model.base, spans, model.base) == \
            (observe._pt_key(pt, epc, model.base), observe._pte_views_of(pt, epc, spans, model.base, 0))

    same()
    for change in (lambda: pt.ptes.__setitem__(vpn, pt.ptes[vpn] ^ PTE_RW),
                   lambda: epc.flags.__setitem__(i, epc.flags[i] ^ EPCM_VALID),
                   lambda: epc.flags.__setitem__(i, epc.flags[i] ^ EPCM_VALID),
                   lambda: epc.secs.__setitem__(i, epc.secs[i] + 1),
                   lambda: epc.addr.__setitem__(i, epc.addr[i] + 4096),
                   lambda: epc.pt.__setitem__(i, epc.pt[i] ^ 3),
                   # the EPC pages' part: a TCS's contents (always counted),
                   # a REG page's (counted only with contents), a page
                   # without contents, an owner, a type
                   lambda: epc.data[tcs].__setitem__(8, epc.data[tcs][8] ^ 1),
                   lambda: epc.data[tcs].__setitem__(4000, 1),
                   lambda: epc.data[reg].__setitem__(0, epc.data[reg][0] ^ 0xFF),
                   lambda: epc.data.pop(reg),
                   lambda: epc.secs.__setitem__(reg, epc.secs[reg] + 1),
                   lambda: epc.secs.__setitem__(reg, epc.secs[reg] - 1),
                   lambda: epc.pt.__setitem__(reg, int(PageType.PT_TCS)),
                   lambda: epc.pt.__setitem__(reg, int(PageType.PT_REG)),
                   lambda: epc.flags.__setitem__(reg, epc.flags[reg] ^ EPCM_VALID)):
        change()
        same()
