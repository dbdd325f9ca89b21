"""Hypothesis: random leaf sequences against an independent shadow of the
rules (permissions only shrink under EMODPR and only grow under EMODPE,
PENDING/MODIFIED/BLOCKED pages are never accessible from the enclave, SECS
with children cannot be removed, EWB needs a completed ETRACK, EWB->ELDU
round-trips contents and EPCM state)."""

from __future__ import annotations

import struct

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sgxbuild import Enclave

from sgxsim.hw import sigstruct as sigmod
from sgxsim.hw.consts import PageType, SgxReturn, secinfo_flags
from sgxsim.hw.cpu import Cpu
from sgxsim.hw.epc import EPCM_BLOCKED, EPCM_MODIFIED, EPCM_PENDING, EPCM_RWX, EPCM_VALID
from sgxsim.hw.faults import HwFault, PageFault

KEY = sigmod.generate_key()
AEP = 0x40_1000
NREG = 4
PERMS = st.sampled_from([0, 1, 3, 4, 5, 7])


class LeafMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.cpu = Cpu(64)
        self.e = Enclave(self.cpu, KEY, reg_pages=NREG)
        self.lp = self.cpu.lps[0]
        self.lp.cr3 = self.e.pt
        self.other = self.cpu.lps[1]  # a thread that may stay inside
        self.other.cr3 = self.e.pt
        self.va = self.e.b.alloc_epc()
        self.cpu.epa(self.va)
        self.evicted: dict[int, tuple] = {}  # k -> (backing, pcmd, slot, contents, flags, pt)
        self.need_track: set[int] = set()  # blocked with no ETRACK since
        self.waiting = False  # `other` was inside at the last ETRACK and has not left

    # -- helpers ---------------------------------------------------------------
    def idx(self, k):
        return self.cpu.epc.index(self.e.pages[self.e.reg(k)])

    def run_inside(self, fn):
        cpu, lp = self.cpu, self.lp
        cssa = struct.unpack_from("<I", cpu.epc.page(cpu.epc.index(self.e.tcs)), 24)[0]
        (cpu.eresume if cssa else cpu.eenter)(lp, self.e.tcs_la, AEP)
        try:
            return fn()
        except HwFault as f:
            assert lp.enclave is None  # the AEX left enclave mode
            return f
        finally:
            if lp.enclave is not None:
                cpu.eexit(lp, AEP)

    def secinfo_in_enclave(self, flags):
        la = self.e.base + 0x2000 + 0x40  # an RW REG page of the enclave (SSA frame 1)
        self.cpu.store(self.lp, la, struct.pack("<Q", flags) + bytes(56))
        return la

    # -- rules -----------------------------------------------------------------
    @rule(k=st.integers(0, NREG - 1), perms=PERMS)
    def emodpr(self, k, perms):
        if k in self.evicted:
            return
        i = self.idx(k)
        before = self.cpu.epc.flags[i]
        try:
            r = self.cpu.emodpr(self.e.b.put_secinfo(perms), self.e.pages[self.e.reg(k)])
        except PageFault:
            return
        after = self.cpu.epc.flags[i]
        assert after & EPCM_RWX & ~before == 0  # never adds a permission
        if r == 0:
            assert after & EPCM_RWX == before & perms & EPCM_RWX

    @precondition(lambda self: self.other.enclave is None)  # one TCS: one thread inside
    @rule(k=st.integers(0, NREG - 1), perms=PERMS)
    def emodpe(self, k, perms):
        if k in self.evicted:
            return
        i = self.idx(k)
        before = self.cpu.epc.flags[i]

        def go():
            si = self.secinfo_in_enclave(perms)
            self.cpu.emodpe(self.lp, si, self.e.reg(k))
        self.run_inside(go)
        after = self.cpu.epc.flags[i]
        assert before & EPCM_RWX & ~after == 0  # never removes a permission

    @rule(k=st.integers(0, NREG - 1), trim=st.booleans())
    def emodt(self, k, trim):
        if k in self.evicted:
            return
        pt = PageType.PT_TRIM if trim else PageType.PT_TCS
        try:
            self.cpu.emodt(self.e.b.put_secinfo(secinfo_flags(pt)), self.e.pages[self.e.reg(k)])
        except PageFault:
            pass

    @rule(k=st.integers(0, NREG - 1))
    def eblock(self, k):
        if k in self.evicted:
            return
        if self.cpu.eblock(self.e.pages[self.e.reg(k)]) == 0:
            self.need_track.add(k)

    @rule()
    def etrack(self):
        r = self.cpu.etrack(self.e.secs)
        if self.waiting:
            assert r == SgxReturn.SGX_PREV_TRK_INCMPL
        else:
            assert r == 0
            self.need_track.clear()
            self.waiting = self.other.enclave is not None

    @precondition(lambda self: self.other.enclave is None)
    @rule()
    def other_enters(self):
        cpu = self.cpu
        cssa = struct.unpack_from("<I", cpu.epc.page(cpu.epc.index(self.e.tcs)), 24)[0]
        try:
            (cpu.eresume if cssa else cpu.eenter)(self.other, self.e.tcs_la, AEP)
        except HwFault:
            pass

    @precondition(lambda self: self.other.enclave is not None)
    @rule()
    def other_exits(self):
        self.cpu.eexit(self.other, AEP)
        self.waiting = False

    @rule(k=st.integers(0, NREG - 1))
    def ewb(self, k):
        if k in self.evicted:
            return
        cpu, b = self.cpu, self.e.b
        i = self.idx(k)
        f, pt, contents = cpu.epc.flags[i], cpu.epc.pt[i], bytes(cpu.epc.page(i))
        back = cpu.phys.alloc_frame() << 12
        pcmd = cpu.phys.alloc_frame() << 12
        slot = self.va + 8 * (k + 1)
        r = cpu.ewb(b.put_pageinfo(0, back, pcmd, 0), self.e.pages[self.e.reg(k)], slot)
        if not f & EPCM_BLOCKED:
            assert r == SgxReturn.SGX_PAGE_NOT_BLOCKED
        elif k in self.need_track or self.waiting:
            assert r == SgxReturn.SGX_NOT_TRACKED
        else:
            assert r == 0
            self.evicted[k] = (back, pcmd, slot, contents, f, pt)
            self.need_track.discard(k)
            self.e.pt.clear(self.e.reg(k) >> 12)

    @rule(k=st.integers(0, NREG - 1))
    def eldu(self, k):
        if k not in self.evicted:
            return
        cpu, b = self.cpu, self.e.b
        back, pcmd, slot, contents, f, pt = self.evicted.pop(k)
        new = b.alloc_epc()
        la = self.e.reg(k)
        assert cpu.eldu(b.put_pageinfo(la, back, pcmd, self.e.secs), new, slot) == 0
        j = cpu.epc.index(new)
        assert bytes(cpu.epc.page(j)) == contents
        assert (cpu.epc.flags[j], cpu.epc.pt[j], cpu.epc.addr[j]) == (f, pt, la)
        self.e.pages[la] = new
        self.e.map(la, new)

    @rule()
    def eremove_secs(self):
        assert self.cpu.eremove(self.e.secs) == SgxReturn.SGX_CHILD_PRESENT

    # -- invariants --------------------------------------------------------------
    @invariant()
    def unusable_pages_are_inaccessible(self):
        if self.other.enclave is not None:
            return
        for k in range(NREG):
            if k in self.evicted:
                continue
            i = self.idx(k)
            f = self.cpu.epc.flags[i]
            assert f & EPCM_VALID
            if f & (EPCM_PENDING | EPCM_MODIFIED | EPCM_BLOCKED):
                r = self.run_inside(lambda k=k: self.cpu.load(self.lp, self.e.reg(k), 1))
                assert isinstance(r, PageFault) and r.sgx


TestLeafMachine = LeafMachine.TestCase
TestLeafMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
