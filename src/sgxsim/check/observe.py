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

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from sgxsim.check.properties import PteView, VmaView
from sgxsim.hw.consts import PAGE_SIZE, PageType
from sgxsim.hw.epc import EPCM_VALID, Epc
from sgxsim.hw.memory import EPC_BASE_PFN
from sgxsim.hw.paging import (
    PTE_ACCESSED,
    PTE_DIRTY,
    PTE_NX,
    PTE_PFN_MASK,
    PTE_PFN_SHIFT,
    PTE_PRESENT,
    PTE_RW,
    PageTable,
)
from sgxsim.kernel.mm import VM_EXEC, VM_READ, VM_WRITE

_FLAG_BITS = ~PTE_PFN_MASK & ((1 << 64) - 1)


def pte_perms(pte: int) -> str:
    """The access a present user PTE grants: R, plus W (PTE_RW), plus X (no NX)."""
    return _PTE_PERMS[(1 if pte & PTE_RW else 0) | (0 if pte & PTE_NX else 2)]


# The views are frozen value objects, so equal fields may share one object:
# a bounded memo of each constructor spares building them (a frozen
# dataclass costs ~1 us) for the few shapes a search meets again and again.
# A memo hit is the object the constructor would have made, field for field;
# nothing mutable is cached.
pte_view = functools.lru_cache(maxsize=1 << 14)(PteView)
vma_view = functools.lru_cache(maxsize=1 << 14)(VmaView)


def pte_views(pt: PageTable, epc: Epc, secs_index: int, base: int, size: int) -> tuple[PteView, ...]:
    """Every present PTE of ``pt`` that maps an EPC page, as the properties see
    it, in address order.  ``secs_index`` is the EPC index of the enclave's SECS
    (an EPCM entry's ENCLAVESECS), ``base``/``size`` its ELRANGE."""
    return pte_views_of(pt, epc, [(secs_index, base, size)], base)


# The page-table functions below are called on every transition of a search,
# on page tables and EPCMs that take a few shapes again and again: each keeps
# its results by the whole of what it reads (the PTEs, the EPCM arrays and
# its arguments: an exact key, so a hit is what the function would compute),
# up to MEMO_MAX results, then starts afresh.
MEMO_MAX = 1 << 13
_PTE_VIEWS: dict[tuple, tuple[PteView, ...]] = {}
_PT_KEYS: dict[tuple, tuple] = {}


def _memo_put(memo: dict, key: tuple, value):
    if len(memo) >= MEMO_MAX:
        memo.clear()
    memo[key] = value
    return value


def pte_views_of(pt: PageTable, epc: Epc, spans: list[tuple[int, int, int]], origin: int,
                 proc: int = 0) -> tuple[PteView, ...]:
    """:func:`pte_views` for several enclaves: ``spans`` are (SECS index,
    base, size) of each; offsets are taken from ``origin`` (the first
    enclave's base), a PTE in one enclave's ELRANGE must map a page of that
    enclave, a PTE outside every ELRANGE a page of any of them.  ``proc``
    tags the views with the process whose page table it is."""
    key = (tuple(pt.ptes.items()), epc.npages, bytes(epc.flags), epc.secs.tobytes(), epc.addr.tobytes(),
           tuple(spans), origin, proc)
    got = _PTE_VIEWS.get(key)
    if got is None:
        got = _memo_put(_PTE_VIEWS, key, _pte_views_of(pt, epc, spans, origin, proc))
    return got


def _pte_views_of(pt: PageTable, epc: Epc, spans: list[tuple[int, int, int]], origin: int,
                  proc: int) -> tuple[PteView, ...]:
    out = []
    secs_of = {s for s, _, _ in spans}
    ptes, flags, secs, addr, npages = pt.ptes, epc.flags, epc.secs, epc.addr, epc.npages
    for vpn in sorted(ptes):
        pte = ptes[vpn]
        if not pte & PTE_PRESENT:
            continue
        i = ((pte & PTE_PFN_MASK) >> PTE_PFN_SHIFT) - EPC_BASE_PFN  # its EPC index, if in the EPC
        if not 0 <= i < npages:
            continue
        va = vpn << PTE_PFN_SHIFT
        for span in spans:
            if span[1] <= va < span[1] + span[2]:
                break
        else:
            span = None
        valid = bool(flags[i] & EPCM_VALID)  # Epc.is_valid()
        owned = valid and (secs[i] == span[0] if span is not None else secs[i] in secs_of)
        out.append(pte_view(va, va - origin if span is not None else None, pte_perms(pte), valid, owned,
                            addr[i] - origin if owned else None, proc))
    return tuple(out)


_HEAD = 128  # a TCS's fields fit (72 bytes); the rest of its page is reserved, zero
_ZERO_TAIL = bytes(PAGE_SIZE - _HEAD)
_PT_REG = int(PageType.PT_REG)


def page_key(data: bytes | bytearray) -> bytes:
    """A page's contents for a key: the first 128 bytes themselves when the
    rest of the page is zero (a TCS, a fresh page: exact, and no hash of 4
    KiB), else an 8-byte blake2b digest (a different length, so the two
    kinds never meet)."""
    if len(data) == PAGE_SIZE and data.endswith(_ZERO_TAIL):
        return bytes(data[:_HEAD])
    return hashlib.blake2b(data, digest_size=8).digest()


def epc_key(epc: Epc, secs_index: int, base: int, identity: bool = True,
            reg_contents: bool = True, cols: tuple | None = None) -> tuple:
    """The enclave's EPC pages, keyed by offset: (offset, EPCM flags, type,
    digest of the contents), plus the SECS's initialized state and, with
    ``identity``, MRENCLAVE (or the measurement so far).  Without
    ``reg_contents`` the contents of REG pages are left out (for a model
    whose actions never read them); TCS contents (CSSA, flags) always count.
    ``cols``: ``epcm_columns(epc)``, if the caller has it."""
    return (_secs_key(epc, secs_index, identity), epc_pages_key(epc, secs_index, base, reg_contents, cols))


def _secs_key(epc: Epc, secs_index: int, identity: bool):
    st = epc.secs_state.get(secs_index)
    if st is None:
        return None
    if identity:
        return (st.initialized, st.mrenclave, st.measurement.digest() if not st.initialized else b"")
    return (st.initialized,)


# epc_pages_key() is called on every transition of a search and walks every
# EPC page; its answer is kept in two levels, by the whole of what it reads:
# first the EPCM's columns and the arguments (which say which pages count and
# whose contents count), then the keys of those contents.  Exact keys, so a
# hit is what _epc_pages_key() computes (tests/check/test_memos.py).
_EPC_LAYOUTS: dict[tuple, tuple[tuple[int, ...], dict]] = {}
_CONTENTS_MAX = 64  # contents variants kept per EPCM layout


def epcm_columns(epc: Epc) -> tuple:
    """The EPC's size and the EPCM's flags, owners, addresses and types as
    bytes: what the memos below key by (read once per fingerprint, for all
    of them)."""
    return (epc.npages, bytes(epc.flags), epc.secs.tobytes(), epc.addr.tobytes(), bytes(epc.pt))


def epc_pages_key(epc: Epc, secs_index: int, base: int, reg_contents: bool = True,
                  cols: tuple | None = None) -> tuple:
    """The pages part of :func:`epc_key`: (offset, EPCM flags, type, digest
    of the contents) of every valid page the SECS at ``secs_index`` owns,
    sorted.  ``cols``: ``epcm_columns(epc)``, if the caller has it."""
    layout = (cols or epcm_columns(epc), secs_index, base, reg_contents)
    got = _EPC_LAYOUTS.get(layout)
    if got is None:
        got = _memo_put(_EPC_LAYOUTS, layout, (_content_pages(epc, secs_index, reg_contents), {}))
    at, variants = got
    contents = epc.data
    ck = tuple([_content_key(contents.get(i)) for i in at])
    pages = variants.get(ck)
    if pages is None:
        if len(variants) >= _CONTENTS_MAX:
            variants.clear()
        pages = variants[ck] = _epc_pages_key(epc, secs_index, base, reg_contents)
    return pages


def _owned(epc: Epc, secs_index: int):
    """(index, flags, SECS, type, address) of the valid pages the SECS at
    ``secs_index`` owns (the SECS itself left out), in one pass over the
    EPCM's columns side by side."""
    for row in zip(range(epc.npages), epc.flags, epc.secs, epc.pt, epc.addr, strict=True):
        if row[1] & EPCM_VALID and row[2] == secs_index and row[0] != secs_index:
            yield row


def _content_pages(epc: Epc, secs_index: int, reg_contents: bool) -> tuple[int, ...]:
    """The EPC indices whose contents _epc_pages_key() reads."""
    return tuple(i for i, _, _, t, _ in _owned(epc, secs_index) if reg_contents or t != _PT_REG)


def _content_key(data: bytearray | None) -> bytes:
    return b"" if data is None else page_key(data)


def _epc_pages_key(epc: Epc, secs_index: int, base: int, reg_contents: bool) -> tuple:
    pages = []
    contents = epc.data
    for i, f, _, t, a in _owned(epc, secs_index):
        digest = b"" if not reg_contents and t == _PT_REG else _content_key(contents.get(i))
        pages.append((a - base, f, t, digest))
    pages.sort()
    return tuple(pages)


def pt_key(pt: PageTable, epc: Epc, base: int, cols: tuple | None = None) -> tuple:
    """The page table with each target canonicalised: an EPC page by its
    enclave offset (or ``stale`` and a first-seen number when the page is not
    valid), a RAM frame by its first-seen number.  ``cols``:
    ``epcm_columns(epc)``, if the caller has it."""
    key = (tuple(pt.ptes.items()), cols or epcm_columns(epc), base)
    got = _PT_KEYS.get(key)
    if got is None:
        got = _memo_put(_PT_KEYS, key, _pt_key(pt, epc, base))
    return got


# pt_key() and pte_views_of() of one page table at once (the explorer asks
# for both of every state a transition changes): one key, built and hashed
# once, for the page table, the EPCM and the base, under which each set of
# spans has its views.  Exact keys, as above.
_PT_OBS: dict[tuple, tuple[tuple, dict]] = {}
_SPANS_MAX = 16  # spans variants kept per page table (a search has one or two)


def pt_key_and_views(pt: PageTable, epc: Epc, base: int, spans: list[tuple[int, int, int]], origin: int,
                     proc: int = 0, cols: tuple | None = None) -> tuple[tuple, tuple[PteView, ...]]:
    """``(pt_key(pt, epc, base), pte_views_of(pt, epc, spans, origin,
    proc))``, read and memoized together.  ``cols``: ``epcm_columns(epc)``,
    if the caller has it (the views read the EPCM's flags, owners and
    addresses, all in it)."""
    key = (tuple(pt.ptes.items()), cols or epcm_columns(epc), base)
    got = _PT_OBS.get(key)
    if got is None:
        got = _memo_put(_PT_OBS, key, (_pt_key(pt, epc, base), {}))
    ptk, by_spans = got
    at = (tuple(spans), origin, proc)
    views = by_spans.get(at)
    if views is None:
        if len(by_spans) >= _SPANS_MAX:
            by_spans.clear()
        views = by_spans[at] = _pte_views_of(pt, epc, spans, origin, proc)
    return ptk, views


_NO_AD = ~(PTE_ACCESSED | PTE_DIRTY)
_WITHOUT_AD: dict[tuple, tuple] = {}


def without_ad(key: tuple) -> tuple:
    """A :func:`pt_key` with the PTEs' accessed and dirty bits cleared (for
    the states where nothing can read them: MachineModel._fingerprint)."""
    got = _WITHOUT_AD.get(key)
    if got is None:
        got = _memo_put(_WITHOUT_AD, key, tuple([(vpn, bits & _NO_AD, target) for vpn, bits, target in key]))
    return got


def _pt_key(pt: PageTable, epc: Epc, base: int) -> tuple:
    ram: dict[int, int] = {}
    stale: dict[int, int] = {}
    out = []
    ptes, flags, addr, types, npages = pt.ptes, epc.flags, epc.addr, epc.pt, epc.npages
    for vpn in sorted(ptes):
        pte = ptes[vpn]
        pfn = (pte & PTE_PFN_MASK) >> PTE_PFN_SHIFT
        i = pfn - EPC_BASE_PFN  # its EPC index, if in the EPC
        if not 0 <= i < npages:
            target = ("ram", ram.setdefault(pfn, len(ram)))
        elif flags[i] & EPCM_VALID:
            target = ("epc", addr[i] - base, types[i])
        else:
            target = ("stale", stale.setdefault(i, len(stale)))
        out.append((vpn, pte & _FLAG_BITS, target))
    return tuple(out)


def vm_perms(vm_flags: int) -> str:
    """VM_READ|VM_WRITE|VM_EXEC as R/RW/RX/RWX (W and X only with R, as the
    checker offers them); ``""`` for none of them."""
    return _VM_PERMS[vm_flags & _VM_RWX]


_VM_RWX = VM_READ | VM_WRITE | VM_EXEC
_VM_PERMS = {f: "" if not f else "R" + ("W" if f & VM_WRITE else "") + ("X" if f & VM_EXEC else "")
             for f in range(_VM_RWX + 1) if not f & ~_VM_RWX}
# pte_perms() by (PTE_RW, not NX): index bit 0 = W, bit 1 = X.
_PTE_PERMS = ("R", "RW", "RX", "RWX")


_TYPES = {int(t): t.name.removeprefix("PT_") for t in PageType}


@dataclass(frozen=True, slots=True)
class PageRow:
    """What each layer allows on one ELRANGE page (``sgxsim report``):

    * ``vma`` – the protection of the VMA covering it (``R``, ``RW``, ...;
      ``none`` for a PROT_NONE VMA, ``""`` unmapped);
    * ``pte`` – the access the present PTE grants (``""``: no PTE);
    * ``epcm`` – the EPCM entry of the enclave's page there: type, R/W/X and
      its state (``pending``, ``modified``, ``pr``, ``blocked``); ``""``
      when no valid EPC page has that address (never added, removed, or
      written back);
    * ``maximum`` – the driver's ``vm_max_prot_bits`` (``""``: no
      ``page_array`` entry);
    * ``resident`` – ``epc``, ``swapped`` (written back by the reclaimer) or
      ``""`` (no entry)."""

    offset: int
    vma: str
    pte: str
    epcm: str
    maximum: str
    resident: str


def page_map(mm: Any, epc: Epc, page_array: dict, secs_index: int, base: int, size: int) -> list[PageRow]:
    """One :class:`PageRow` per page of ELRANGE ``[base, base + size)``: the
    VMAs and page table of ``mm``, the EPCM of the pages owned by the SECS
    at EPC index ``secs_index``, and the driver's ``page_array`` (PFN ->
    ``sgx_encl_page``).  Costs pages + VMAs + EPC pages."""
    epcm: dict[int, str] = {}
    for i in range(epc.npages):
        if epc.flags[i] & EPCM_VALID and epc.secs[i] == secs_index and i != secs_index:
            e = epc.epcm(i)
            perms = ("R" if e.r else "") + ("W" if e.w else "") + ("X" if e.x else "")
            state = [n for n, on in (("pending", e.pending), ("modified", e.modified), ("pr", e.pr),
                                     ("blocked", e.blocked)) if on]
            epcm[epc.addr[i] - base] = " ".join([_TYPES.get(e.pt, str(e.pt))] + ([perms] if perms else [])
                                                + state)
    vmas = [v for v in mm.vmas if v.vm_end > base and v.vm_start < base + size]
    rows = []
    for off in range(0, size, PAGE_SIZE):
        va = base + off
        vma = next((v for v in vmas if v.vm_start <= va < v.vm_end), None)
        pte = mm.pgtable.ptes.get(va >> PTE_PFN_SHIFT, 0)
        entry = page_array.get(va >> PTE_PFN_SHIFT)
        rows.append(PageRow(off, "" if vma is None else vm_perms(vma.vm_flags) or "none",
                            pte_perms(pte) if pte & PTE_PRESENT else "", epcm.get(off, ""),
                            "" if entry is None else vm_perms(entry.vm_max_prot_bits),
                            "" if entry is None else "epc" if entry.epc_page is not None else "swapped"))
    return rows
