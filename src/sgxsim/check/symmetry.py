"""Symmetry reduction over the explored enclave pages and, with
``--processes 2``, over the two processes (``--symmetry``).

The explored pages (``--pages N``, offsets ``0 .. N-1``) are alike: the
actions offer each of them the same way (ADD_PAGES in any order,
EACCEPTCOPY from any build-time page), the source mappings hold the same
bytes behind each, and the properties quantify over all pages.  A state and
the state with its pages renamed by a permutation ``p`` of ``0 .. N-1``
(page ``i`` becomes page ``p[i]``) are then mirror images: what one can do in
``k`` steps, the other can do in ``k`` steps with the pages renamed, and the
properties fail on the same transitions.  So the explorer keeps one of them:
a state's *seen-key* is the smallest digest of its key (fingerprint and
ghost key) over the permutations that are symmetries here.  The explorer
still keeps and expands the machine it actually reached (only the key is
canonical), so every trace it reports is a real run of the model.

Which permutations are symmetries (docs/checker-reach.md has the argument):

* ``N = 2``: the swap.  The one thing that tells the two pages apart is
  their order in a whole-enclave ``mprotect``: Linux walks the VMAs in
  address order and stops at the first refusal or hole, keeping the changes
  made before it.  Such a partial change of page 0 is, in the mirror state,
  the single-page ``mprotect`` of page 1 (same VMA step, same result, a
  successful event instead of a refused one, so its property hits are a
  superset); a refusal with nothing changed is, in the mirror, the refused
  single-page ``mprotect`` (or ``munmap`` of the hole).  Reduced and
  unreduced searches find the same verdicts and shortest trace lengths.
* ``N >= 3``: the page order matters more: a VMA over two adjacent pages
  splits differently at its end than in its middle, so only the reversal
  ``i -> N-1-i`` maps every VMA to a VMA, and a whole-enclave ``mprotect``
  that stops after two pages has no one-step mirror.  The reversal is used
  when the scope offers no ``mprotect`` (``--actions``); otherwise no
  reduction.
* Any ``N``: none when the scope offers ``mremap`` (``--actions``): a
  whole-enclave ``mremap`` looks up only its first page's VMA before it
  unmaps its destination, so it refuses a range with a hole at page 0
  untouched and one with a hole further on only after the unmap.
* Off altogether (the plain key) with ``--enclaves 2``
  (:func:`scope_allows`: the argument is made for one enclave), when a
  selected property does not declare
  itself symmetric (:func:`symmetric`), when the design keeps state of its
  own that it does not say how to rename (``design_state``), and, per state,
  when an enclave VMA of either process lacks the ``VM_SPECIAL`` flags that
  keep VMAs from merging with their neighbours (sgx_mmap() sets them; a
  merge would depend on which page sits next to the runtime's VMA).  With
  ``--processes 2`` the pages are renamed in both processes.

The parent/child swap (:class:`ProcessSwap`, ``--processes 2``): after the
fork the two processes' page tables and VMAs change places.  A step of an
action offered to both processes alike (``per_process_in``) or run by the
kernel (``by_kernel``: the reclaimer, whose sgx_zap_enclave_ptes() walks
every mm) has its mirror step; a step bound to the parent (the ioctls
without --child-ioctls) has none.  So the swap is used only in the states
after the fork from which no parent-bound step can be offered again
(:func:`~sgxsim.check.actions.alike_from`, asked of the actions themselves:
on SGX1 kernels after INIT, with --child-ioctls from the fork on).  Besides
its page table and VMAs a process differs from the other only by its
logical processor (mm_cpumask(), read by the IPIs, sent to the union) and
its place on the enclave's mm_list, which only ksgxd's aging reads
(sgx_reclaimer_age() stops at the first young mm; ksgxd runs only with
--enclaves 2, where nothing is reduced).  Off when a selected property does
not declare itself process-symmetric (:func:`process_symmetric`) or the
design keeps state it does not declare ``page-runs``.  With both, the group
is the product; the key is the least digest over it (:class:`Symmetry`).

What the renaming touches: every offset and page number of an explored page
(EPC pages, PTE targets, ``page_array``, the program's ``expect`` and
``added``, the ghost), the page-table entries and VMAs of the explored pages,
of their ``mremap`` targets above ELRANGE and of their source pages (the
frames are renumbered in first-seen order again, as
:func:`~sgxsim.check.observe.pt_key` does), and a design's page runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sgxsim.check import observe
from sgxsim.check import properties as props_mod
from sgxsim.check.digests import digest
from sgxsim.kernel.mm.flags import VM_SPECIAL

PAGE_SHIFT = 12
ENCLAVE_FILE = "/dev/sgx_enclave"
# The built-in properties quantify over all pages and ignore refused
# mprotect events: they are symmetric under renaming pages.  They count the
# PTEs and VMAs of both processes alike (mprotect-honest: those of the
# process its event names), so they are symmetric under the process swap
# too.  A plugin property says so itself.
_BUILTIN = (props_mod.NoEscalation, props_mod.ExecOrigin, props_mod.WXorX, props_mod.NoStalePte,
            props_mod.MprotectHonest, props_mod.RunCode, props_mod.DynamicHeap, props_mod.DynamicCode,
            props_mod.Restrict)

Key = Callable[[Any, tuple], bytes]


def process_symmetric(prop: props_mod.Property) -> bool:
    """Whether ``prop`` may be checked under the parent/child swap: a
    built-in property (each counts the PTEs and VMAs of both processes, or,
    ``mprotect-honest``, those of the process its event names), or one whose
    class sets ``process_symmetric = True`` (its answer on a transition is
    its answer with the two processes' tags exchanged in the view and the
    events)."""
    flag = getattr(prop, "process_symmetric", None)
    return bool(flag) if flag is not None else type(prop) in _BUILTIN


def symmetric(prop: props_mod.Property) -> bool:
    """Whether ``prop`` may be checked under the reduction: a built-in
    property, or one whose class sets ``symmetric = True`` (its answer on a
    transition is its answer on the mirror transition with the explored
    pages renamed, and a refused ``mprotect`` event never makes it fire)."""
    flag = getattr(prop, "symmetric", None)
    return bool(flag) if flag is not None else type(prop) in _BUILTIN


def scope_allows(sc: Any) -> bool:
    """Whether scope ``sc`` lets a reduction run at all: switched on, one
    enclave.  With ``--enclaves 2`` the second enclave's pages are not
    renamed, and ksgxd runs: its LRU order chooses between the two
    enclaves' pages and sgx_reclaimer_age() tests the mms of the enclave's
    mm_list in order, stopping at the first whose PTE was young, so the
    parent (first on the list) and the child are not alike either; the
    plain key is used."""
    return bool(getattr(sc, "symmetry", False)) and getattr(sc, "enclaves", 1) == 1


def swap_allowed(sc: Any) -> bool:
    """Whether scope ``sc`` lets the parent/child swap run: a reduction is
    allowed and there are two processes."""
    return scope_allows(sc) and getattr(sc, "processes", 1) == 2


def swaps(model: Any, names: list[str] | None = None) -> bool:
    """Whether the reduction exchanges parent and child for ``model`` and
    the properties ``names`` (in the states where that is sound:
    :meth:`ProcessSwap.applies`)."""
    sc = getattr(model, "sc", None)
    if sc is None or not swap_allowed(sc):
        return False
    names = list(props_mod.PROPERTIES) if names is None else names
    if not all(process_symmetric(props_mod.PROPERTIES[n]) for n in names):
        return False
    # A design's own state is the enclave's (page-runs: page numbers, no
    # process in them); one that does not say what it is might be per mm.
    return _design_state_kind(model.design) in (None, "page-runs")


def group(model: Any, names: list[str] | None = None) -> tuple[tuple[int, ...], ...]:
    """The permutations of the explored pages (besides the identity) that
    the reduction uses for ``model`` and the properties ``names``; ``()``
    when it is off or has nothing to fold."""
    sc = getattr(model, "sc", None)
    if sc is None or not scope_allows(sc) or getattr(model, "pages", 1) < 2:
        return ()
    names = list(props_mod.PROPERTIES) if names is None else names
    if not all(symmetric(props_mod.PROPERTIES[n]) for n in names):
        return ()
    if _design_state_kind(model.design) not in (None, "page-runs"):
        return ()
    if "mremap" in sc.actions:
        # A whole-enclave mremap tells the pages apart at any N: the syscall
        # looks up only the VMA at its first address (vma_lookup() in
        # sys_mremap(), before mremap_to()), then unmaps the destination and
        # only then finds that the old range spans a hole (vma_to_resize()).
        # So a hole at page 0 refuses it untouched, a hole at page N-1 costs
        # the destination first, and there is no one-step mirror of that.
        return ()
    n = model.pages
    if n == 2:
        return ((1, 0),)
    if "mprotect" in sc.actions:
        return ()
    return (tuple(range(n - 1, -1, -1)),)


def _design_state_kind(design: str) -> str | None:
    """``None`` for a design without state of its own, else how its
    ``design_state`` can be renamed (the driver's ``design_state_kind``;
    ``"opaque"`` when it does not say)."""
    from sgxsim.kernel.registry import kernel_class

    drv = getattr(kernel_class(design), "sgx_driver_class", None)
    if drv is None or getattr(drv, "design_state", None) is None:
        return None
    return getattr(drv, "design_state_kind", "opaque")


def seen_key(model: Any, names: list[str] | None = None) -> Key:
    """The function ``(fingerprint, ghost key) -> 16-byte digest`` the
    explorer deduplicates states by: the plain digest, or the canonical one
    when the reduction applies to ``model``."""
    perms, swap = group(model, names), swaps(model, names)
    if not perms and not swap:
        return lambda fp, gkey: digest((fp, gkey))
    return Symmetry(PageSymmetry(model, perms) if perms else None, ProcessSwap(model) if swap else None).key


class Symmetry:
    """The canonical seen-key under the group the reduction uses for one
    model: the page permutations (``pages``), the parent/child swap (``swap``),
    and, with both, their products (the two commute: one renames pages in
    every process, the other exchanges whole processes)."""

    def __init__(self, pages: PageSymmetry | None, swap: ProcessSwap | None):
        self.pages, self.swap = pages, swap

    def key(self, fp: tuple, gkey: tuple) -> bytes:
        swap = self.swap
        if swap is not None and swap.applies(fp):
            fp = swap.without_ad(fp)
        best = digest((fp, gkey))
        images: list[tuple] = []
        pages = self.pages
        if pages is not None and pages.foldable(fp):
            images = [got for r in pages.renamings if (got := pages.rename(r, fp, gkey)) is not None]
        if swap is not None:
            # Each image is swapped where it lies in the swap's region (a
            # page-renamed state has the renamed pages added).
            images += [(swap.swap(f), g) for f, g in [(fp, gkey)] + images if swap.applies(f)]
        for got in images:
            d = digest(got)
            if d < best:
                best = d
        return best


class ProcessSwap:
    """Exchanging parent and child (``--processes 2``, one enclave): the
    two processes' page tables and VMAs change places in the fingerprint.
    Each process's RAM frames and stale EPC pages are numbered in its own
    page table (observe.pt_key), so the numbering moves with it; the ghost
    holds no process; the program's knowledge (its enclave handle) is
    shared by both.  Sound only in the states where every step offered from
    then on is offered to both processes alike or is the kernel's
    (:meth:`applies`)."""

    def __init__(self, model: Any):
        from sgxsim.check.actions import Ctx, alike_from

        self.sc = model.sc
        self.sgx2 = model.sgx2(model.initial())
        self._ctx, self._alike_from = Ctx, alike_from
        self._region: dict[tuple, bool] = {}

    def applies(self, fp: tuple) -> bool:
        """Whether ``fp`` is a state after the fork where the swap is sound:
        from its context on, no step runs in one given process
        (actions.alike_from)."""
        if len(fp) != 3 or not fp[2]:
            return False  # not forked: one process
        key = fp[0]
        at = (key[5], key[8])  # initialized, the pages added
        got = self._region.get(at)
        if got is None:
            ctx = self._ctx(bool(key[5]), self.sgx2, frozenset(key[8]), True)
            got = self._region[at] = self._alike_from(self.sc, ctx)
        return got

    @staticmethod
    def without_ad(fp: tuple) -> tuple:
        """A forked state's fingerprint with the PTEs' accessed and dirty
        bits left out of both page tables.  fork() makes the child's copies
        old (and clean in a shared mapping: __copy_present_ptes()), so a
        state would never meet its mirror; with one enclave (the swap's
        scope) nothing reads those bits: the ``reclaim`` action writes a
        page back without aging, ksgxd never runs, the EPC never runs short
        and RAM is not reclaimed.  So states that differ in them alone have
        the same futures, and are counted once where the swap applies
        (elsewhere the reduction changes nothing).  Neither applies() nor
        swap() reads the two bits."""
        key, more, ((pt, vmas),) = fp
        return (key[:2] + (observe.without_ad(key[2]),) + key[3:], more, ((observe.without_ad(pt), vmas),))

    @staticmethod
    def swap(fp: tuple) -> tuple:
        key, more, ((pt, vmas),) = fp
        return (key[:2] + (pt, vmas) + key[4:], more, ((key[2], key[3]),))


class _Renaming:
    """One permutation, compiled: explored offsets, page indices and the
    page numbers of the regions that follow the explored pages."""

    __slots__ = ("off", "idx", "vpn", "perm")

    def __init__(self, perm: tuple[int, ...], regions: list[int]):
        page = 1 << PAGE_SHIFT
        self.perm = perm
        self.idx = {i: j for i, j in enumerate(perm) if i != j}
        self.off = {i * page: j * page for i, j in self.idx.items()}
        self.vpn = {r + i: r + j for r in regions for i, j in self.idx.items()}


class PageSymmetry:
    """The canonical seen-key of one model's states under ``perms``."""

    def __init__(self, model: Any, perms: tuple[tuple[int, ...], ...]):
        from sgxsim.check.machine_model import SRC

        self.n = model.pages
        # Page numbers of the first explored page in each region whose
        # pages go with the explored ones: ELRANGE, the mremap targets just
        # above it, and each source mapping (the page ADD_PAGES copies).
        self.regions = sorted([model.base >> PAGE_SHIFT, (model.base + model.size) >> PAGE_SHIFT]
                              + [a >> PAGE_SHIFT for a in SRC.values()])
        self.renamings = [_Renaming(p, self.regions) for p in perms]

    def key(self, fp: tuple, gkey: tuple) -> bytes:
        """The seen-key under these page permutations alone."""
        return Symmetry(self, None).key(fp, gkey)

    @staticmethod
    def foldable(fp: tuple) -> bool:
        """No enclave VMA of any process may merge with a neighbour
        (is_mergeable_vma())."""
        procs = [fp[3]] if len(fp) != 3 else [fp[0][3]] + [v for _pt, v in fp[2]]
        return all(flags & VM_SPECIAL for vmas in procs for _s, _e, flags, path in vmas
                   if path == ENCLAVE_FILE)

    def rename(self, r: _Renaming, fp: tuple, gkey: tuple) -> tuple | None:
        """``(fp, gkey)`` with the explored pages renamed by ``r`` (in every
        process), or ``None`` where the renaming has no image (a VMA over
        pages that it would scatter)."""
        if len(fp) == 3:  # forked: (the parent's key, (), ((pt, vmas),) of the child)
            key, more, children = fp
            got = self.rename(r, key, gkey)
            kids = [(self._pt(r, pt), self._vmas(r, vmas)) for pt, vmas in children]
            if got is None or any(v is None for _pt, v in kids):
                return None
            return (got[0], more, tuple(kids)), got[1]
        extra, (secs, epc), pt, vmas, pages, initialized, meas_ok, expect, added = fp
        vmas2 = self._vmas(r, vmas)
        if vmas2 is None:
            return None
        off, idx = r.off, r.idx
        fp2 = (self._runs(r, extra),
               (secs, tuple(sorted((off.get(e[0], e[0]),) + e[1:] for e in epc))),
               self._pt(r, pt), vmas2,
               tuple(sorted((idx.get(p[0], p[0]),) + p[1:] for p in pages)),
               initialized, meas_ok,
               tuple(sorted((off.get(o, o), v) for o, v in expect)),
               tuple(sorted(off.get(o, o) for o in added)))
        gpages, ran, wrote = gkey
        return fp2, (tuple(sorted((off.get(o, o), g) for o, g in gpages)), ran, wrote)

    @staticmethod
    def _pt(r: _Renaming, pt: tuple) -> tuple:
        """Renamed PTEs, in page order again, with RAM frames and stale EPC
        pages renumbered in first-seen order (as observe.pt_key numbers them)."""
        vpn, off = r.vpn, r.off
        moved = []
        for v, flags, target in pt:
            if target[0] == "epc":
                target = ("epc", off.get(target[1], target[1]), target[2])
            moved.append((vpn.get(v, v), flags, target))
        moved.sort(key=lambda e: e[0])
        ram: dict[int, int] = {}
        stale: dict[int, int] = {}
        out = []
        for v, flags, target in moved:
            kind = target[0]
            if kind == "ram":
                target = ("ram", ram.setdefault(target[1], len(ram)))
            elif kind == "stale":
                target = ("stale", stale.setdefault(target[1], len(stale)))
            out.append((v, flags, target))
        return tuple(out)

    def _vmas(self, r: _Renaming, vmas: tuple) -> tuple | None:
        out = []
        for start, end, flags, path in vmas:
            s, e = start >> PAGE_SHIFT, end >> PAGE_SHIFT
            for base in self.regions:
                lo, hi = max(s, base), min(e, base + self.n)
                if lo >= hi:
                    continue
                inside = {r.perm[i - base] for i in range(lo, hi)}
                if s < base or e > base + self.n:
                    # Reaches beyond the explored pages: must stay in place.
                    if inside != set(range(lo - base, hi - base)):
                        return None
                    continue
                a, b = min(inside), max(inside) + 1
                if b - a != len(inside):
                    return None  # scattered: no VMA is the image
                start, end = (base + a) << PAGE_SHIFT, (base + b) << PAGE_SHIFT
            out.append((start, end, flags, path))
        out.sort()
        return tuple(out)

    def _runs(self, r: _Renaming, extra: tuple) -> tuple:
        """A design's ``page-runs`` state (sorted disjoint ``[lo, hi)`` runs
        of page numbers), renamed: only the part of a run inside a region of
        explored pages is taken page by page, the rest stays as it is."""
        if not extra:
            return extra
        vpn, n = r.vpn, self.n
        pieces = []
        for lo, hi in extra:
            for base in self.regions:
                a, b = max(lo, base), min(hi, base + n)
                if a >= b:
                    continue
                pieces += [(q, q + 1) for q in (vpn.get(p, p) for p in range(a, b))]
                if lo < a:
                    pieces.append((lo, a))
                lo = b
                if lo >= hi:
                    break
            if lo < hi:
                pieces.append((lo, hi))
        pieces.sort()
        out: list[list[int]] = []
        for lo, hi in pieces:
            if out and lo <= out[-1][1]:
                out[-1][1] = max(out[-1][1], hi)
            else:
                out.append([lo, hi])
        return tuple((lo, hi) for lo, hi in out)
