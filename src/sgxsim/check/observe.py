"""What the checker reads off the real machine: the properties' :class:`View`
and the canonical fingerprint of the hardware state it depends on.

Canonical means independent of allocation accidents: EPC pages are keyed by
their enclave linear address (``ENCLAVEADDRESS`` minus the base), not by their
index in the EPC; RAM frames by the order in which the page table first maps
them, not by their frame number.  Everything else (EPCM flags and types, page
contents, PTE bits including accessed/dirty) is kept, so two states with the
same fingerprint behave the same for every action.
"""

from __future__ import annotations

import hashlib

from sgxsim.check.properties import PteView
from sgxsim.hw.consts import PageType
from sgxsim.hw.epc import EPCM_VALID, Epc
from sgxsim.hw.memory import EPC_BASE_PFN
from sgxsim.hw.paging import PTE_NX, PTE_PFN_MASK, PTE_PFN_SHIFT, PTE_PRESENT, PTE_RW, PageTable

_FLAG_BITS = ~PTE_PFN_MASK & ((1 << 64) - 1)


def _epc_index(epc: Epc, pfn: int) -> int | None:
    i = pfn - EPC_BASE_PFN
    return i if 0 <= i < epc.npages else None


def pte_perms(pte: int) -> str:
    """The access a present user PTE grants: R, plus W (PTE_RW), plus X (no NX)."""
    return "R" + ("W" if pte & PTE_RW else "") + ("" if pte & PTE_NX else "X")


def pte_views(pt: PageTable, epc: Epc, secs_index: int, base: int, size: int) -> tuple[PteView, ...]:
    """Every present PTE of ``pt`` that maps an EPC page, as the properties see
    it, in address order.  ``secs_index`` is the EPC index of the enclave's SECS
    (an EPCM entry's ENCLAVESECS), ``base``/``size`` its ELRANGE."""
    out = []
    for vpn in sorted(pt.ptes):
        pte = pt.ptes[vpn]
        if not pte & PTE_PRESENT:
            continue
        i = _epc_index(epc, (pte & PTE_PFN_MASK) >> PTE_PFN_SHIFT)
        if i is None:
            continue
        va = vpn << PTE_PFN_SHIFT
        valid = epc.is_valid(i)
        owned = valid and epc.secs[i] == secs_index
        out.append(PteView(va, va - base if base <= va < base + size else None, pte_perms(pte), valid,
                           owned, epc.addr[i] - base if owned else None))
    return tuple(out)


def epc_key(epc: Epc, secs_index: int, base: int, identity: bool = True,
            reg_contents: bool = True) -> tuple:
    """The enclave's EPC pages, keyed by offset: (offset, EPCM flags, type,
    digest of the contents), plus the SECS's initialized state and, with
    ``identity``, MRENCLAVE (or the measurement so far).  Without
    ``reg_contents`` the contents of REG pages are left out (for a model
    whose actions never read them); TCS contents (CSSA, flags) always count."""
    pages = []
    for i in range(epc.npages):
        if epc.flags[i] & EPCM_VALID and epc.secs[i] == secs_index and i != secs_index:
            data = epc.data.get(i)
            if data is None or (not reg_contents and epc.pt[i] == PageType.PT_REG):
                digest = b""
            else:
                digest = hashlib.blake2b(data, digest_size=8).digest()
            pages.append((epc.addr[i] - base, epc.flags[i], epc.pt[i], digest))
    pages.sort()
    st = epc.secs_state.get(secs_index)
    if st is None:
        secs = None
    elif identity:
        secs = (st.initialized, st.mrenclave, st.measurement.digest() if not st.initialized else b"")
    else:
        secs = (st.initialized,)
    return (secs, tuple(pages))


def pt_key(pt: PageTable, epc: Epc, base: int) -> tuple:
    """The page table with each target canonicalised: an EPC page by its
    enclave offset (or ``stale`` and a first-seen number when the page is not
    valid), a RAM frame by its first-seen number."""
    ram: dict[int, int] = {}
    stale: dict[int, int] = {}
    out = []
    for vpn in sorted(pt.ptes):
        pte = pt.ptes[vpn]
        pfn = (pte & PTE_PFN_MASK) >> PTE_PFN_SHIFT
        i = _epc_index(epc, pfn)
        if i is None:
            target = ("ram", ram.setdefault(pfn, len(ram)))
        elif epc.flags[i] & EPCM_VALID:
            target = ("epc", epc.addr[i] - base, epc.pt[i])
        else:
            target = ("stale", stale.setdefault(i, len(stale)))
        out.append((vpn, pte & _FLAG_BITS, target))
    return tuple(out)
