"""The straight-through path of the access check (``Cpu._page``) against the
check it shortcuts (``Cpu._admit``): for any PTE, EPCM entry, mode, address
and access, the same bytes, the same fault (code, address, rule, detail),
the same A/D bits and the same AEX."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.hw.leafkit import BASE, Kit

from sgxsim.hw.access import FETCH, READ, WRITE
from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.hw.cpu import Cpu
from sgxsim.hw.epc import (
    EPCM_BLOCKED,
    EPCM_MODIFIED,
    EPCM_PENDING,
    EPCM_R,
    EPCM_VALID,
    EPCM_W,
    EPCM_X,
)
from sgxsim.hw.faults import PF_PROT, PF_SGX, PF_USER, PF_WRITE, HwFault, PageFault
from sgxsim.hw.memory import EPC_BASE_PFN
from sgxsim.hw.paging import (
    PTE_ACCESSED,
    PTE_DIRTY,
    PTE_NX,
    PTE_PRESENT,
    PTE_RW,
    PTE_USER,
    make_pte,
)

DATA = BASE + 2 * PAGE_SIZE  # first data page of Kit.standard()
OUTSIDE = 0x1000_0000  # a RAM page outside ELRANGE

_TEMPLATE: Kit | None = None


class SlowCpu(Cpu):
    """The reference: every access through the full check."""

    def _page(self, lp, la, access, user):
        kind, idx = self._admit(lp, la, access, user)
        if kind == "abort":
            return None
        return self.epc.page(idx) if kind == "epc" else self.phys.frames[idx]


def _kit() -> Kit:
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = Kit().standard()
        _TEMPLATE.ram = _TEMPLATE.map_ram(OUTSIDE)
    return copy.deepcopy(_TEMPLATE)


PTE_BITS = st.sets(st.sampled_from([PTE_PRESENT, PTE_RW, PTE_USER, PTE_ACCESSED, PTE_DIRTY,
                                    PTE_NX])).map(sum)
EPCM_BITS = st.sets(st.sampled_from([EPCM_VALID, EPCM_R, EPCM_W, EPCM_X, EPCM_PENDING,
                                     EPCM_MODIFIED, EPCM_BLOCKED])).map(sum)


def _outcome(kit: Kit, la: int, access: int, user: bool):
    cpu, lp = kit.cpu, kit.lp
    try:
        if access == READ:
            got = cpu.load(lp, la, 8, user)
        elif access == WRITE:
            got = cpu.store(lp, la, b"\x5a" * 8, user)
        else:
            got = cpu.fetch(lp, la, 4)
    except HwFault as f:
        got = (type(f).__name__, getattr(f, "error_code", None), getattr(f, "addr", None), str(f))
    return (got, dict(kit.pt.ptes), lp.enclave is None, dict(lp.regs),
            {i: bytes(p) for i, p in kit.cpu.epc.data.items()})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pte=PTE_BITS, epcm=EPCM_BITS, pt=st.sampled_from([2, 3, 4, 1]),
       where=st.sampled_from(["data", "outside", "epc-outside", "ram-inside"]),
       wrong=st.sampled_from([None, "secs", "addr"]), enclave=st.booleans(),
       access=st.sampled_from([READ, WRITE, FETCH]), user=st.booleans(), off=st.integers(0, 4088))
def test_fast_path_equals_the_full_check(pte, epcm, pt, where, wrong, enclave, access, user, off):
    runs = []
    for cls in (Cpu, SlowCpu):
        kit = _kit()
        kit.cpu.__class__ = cls
        i = kit.data_i[0]
        epc = kit.cpu.epc
        epc.flags[i] = epcm
        epc.pt[i] = pt
        if wrong == "secs":
            epc.secs[i] = kit.tcs_i
        elif wrong == "addr":
            epc.addr[i] = DATA + PAGE_SIZE
        la = {"data": DATA, "outside": OUTSIDE, "epc-outside": OUTSIDE,
              "ram-inside": DATA}[where] + off
        pfn = EPC_BASE_PFN + i if where in ("data", "epc-outside") else kit.ram >> 12
        kit.pt.set(la >> 12, make_pte(pfn, 0) & ~PTE_PRESENT | pte)
        if enclave:
            kit.enter()
        runs.append(_outcome(kit, la, access, user))
    assert runs[0] == runs[1]


class SlowOperandCpu(Cpu):
    """The reference for ENCLU operands: the walk, then the EPC test."""

    def _u_epc(self, lp, leaf, la, access):
        i = self.walk(lp, la, access, True) - EPC_BASE_PFN
        if not 0 <= i < self.epc_pages:
            raise PageFault(la, PF_USER | PF_PROT | PF_SGX | (PF_WRITE if access == WRITE else 0),
                            (f"SDM: {leaf}", f"operand {la:#x} is not in the EPC"))
        return i


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pte=PTE_BITS, where=st.sampled_from(["data", "outside", "none", "non-canonical"]),
       access=st.sampled_from([READ, WRITE]), enclave=st.booleans(), off=st.integers(0, 4095))
def test_operand_walk_equals_the_walker(pte, where, access, enclave, off):
    """EncluMixin._u_epc() walks straight through for a PTE that passes: the
    same EPC index or fault (type, code, address, message) and PTE A/D bits."""
    runs = []
    for cls in (Cpu, SlowOperandCpu):
        kit = _kit()
        kit.cpu.__class__ = cls
        la = {"data": DATA, "outside": OUTSIDE, "none": DATA + 0x100000,
              "non-canonical": 1 << 62}[where] + off
        if where in ("data", "outside"):
            pfn = EPC_BASE_PFN + kit.data_i[0] if where == "data" else kit.ram >> 12
            kit.pt.set(la >> 12, make_pte(pfn, 0) & ~PTE_PRESENT | pte)
        if enclave:
            kit.enter()
        try:
            got = kit.cpu._u_epc(kit.lp, "EACCEPT", la, access)
        except HwFault as f:
            got = (type(f).__name__, getattr(f, "error_code", None), getattr(f, "addr", None), str(f))
        runs.append((got, dict(kit.pt.ptes)))
    assert runs[0] == runs[1]
