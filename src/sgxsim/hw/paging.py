"""Page tables: written by the kernel, walked by the CPU.

One :class:`PageTable` per address space (mm).  It is sparse: a dict from
virtual page number to a PTE value laid out like an x86-64 PTE, so that the
kernel's cost follows the number of present entries, never the size of a
range.
"""

from __future__ import annotations

from bisect import bisect_left, insort

PTE_PRESENT = 1 << 0
PTE_RW = 1 << 1
PTE_USER = 1 << 2
PTE_ACCESSED = 1 << 5
PTE_DIRTY = 1 << 6
PTE_SPECIAL = 1 << 9  # software bit: a VM_PFNMAP entry (no struct page)
PTE_NX = 1 << 63
PTE_PFN_SHIFT = 12
PTE_PFN_MASK = ((1 << 52) - 1) & ~((1 << PTE_PFN_SHIFT) - 1)


_CANONICAL_TOP = (0, (1 << 17) - 1)  # bits 63:47 of a canonical address (4-level paging)


def canonical(la: int) -> bool:
    """SDM Vol 3A 3.3.7.1: bits 63:47 all equal (4-level paging).  ``la`` is
    a 64-bit register's value: whoever forms a sum wraps it modulo 2**64
    first, as the CPU does; a value no register holds (negative, or 2**64
    and above) is not canonical."""
    return la >> 47 in _CANONICAL_TOP


def make_pte(pfn: int, flags: int) -> int:
    return (pfn << PTE_PFN_SHIFT) | flags | PTE_PRESENT


def pte_pfn(pte: int) -> int:
    return (pte & PTE_PFN_MASK) >> PTE_PFN_SHIFT


class PageTable:
    """vpn -> PTE.  Absent keys are not-present entries.

    ``ptes`` may be read and its existing entries rewritten in place (the CPU
    sets A/D bits); entries are added and removed through :meth:`set` and
    :meth:`clear`, which keep a sorted index so that a range query costs the
    entries in the range, never the size of the range or of the table."""

    __slots__ = ("ptes", "_keys")

    def __init__(self) -> None:
        self.ptes: dict[int, int] = {}
        self._keys: list[int] = []

    def get(self, vpn: int) -> int:
        return self.ptes.get(vpn, 0)

    def set(self, vpn: int, pte: int) -> None:
        if vpn not in self.ptes:
            insort(self._keys, vpn)
        self.ptes[vpn] = pte

    def clear(self, vpn: int) -> int:
        """Remove the entry; return the old PTE (0 if none)."""
        if vpn not in self.ptes:
            return 0
        del self._keys[bisect_left(self._keys, vpn)]
        return self.ptes.pop(vpn)

    def clear_range(self, lo_vpn: int, hi_vpn: int) -> list[tuple[int, int]]:
        """Remove every entry in ``[lo_vpn, hi_vpn)``; return ``(vpn, old
        PTE)`` in order.  One slice of the index goes, so unmapping n entries
        costs O(n), not n deletions from a sorted list."""
        keys = self._keys
        lo, hi = bisect_left(keys, lo_vpn), bisect_left(keys, hi_vpn)
        ptes = self.ptes
        out = [(vpn, ptes.pop(vpn)) for vpn in keys[lo:hi]]
        del keys[lo:hi]
        return out

    def set_range(self, entries: list[tuple[int, int]]) -> None:
        """Add ``(vpn, pte)`` entries, in ascending order, into a range that
        has none (a moved mapping's destination): one splice of the index."""
        if not entries:
            return
        keys = self._keys
        at = bisect_left(keys, entries[0][0])
        if at < len(keys) and keys[at] <= entries[-1][0]:
            for vpn, pte in entries:  # not an empty range: one at a time
                self.set(vpn, pte)
            return
        keys[at:at] = [vpn for vpn, _ in entries]
        self.ptes.update(entries)

    def populated(self, lo_vpn: int, hi_vpn: int) -> list[int]:
        """The vpns in ``[lo_vpn, hi_vpn)`` that have an entry, in order."""
        keys = self._keys
        return keys[bisect_left(keys, lo_vpn) : bisect_left(keys, hi_vpn)]

    def copy(self) -> PageTable:
        pt = PageTable()
        pt.ptes = dict(self.ptes)
        pt._keys = list(self._keys)
        return pt
