"""Truncating a file's page cache (mm/truncate.c), and unmapping it from
every address space that maps it (mm/memory.c: unmap_mapping_range()).

Only open(O_TRUNC) truncates in the model (do_open() -> handle_truncate()
-> do_truncate(0) -> ... -> truncate_setsize()); there is no ftruncate(2)."""

from __future__ import annotations

from typing import Any

from sgxsim.hw.paging import PTE_SPECIAL, pte_pfn
from sgxsim.kernel.mm.flags import PAGE_SHIFT, PAGE_SIZE


class TruncateMixin:
    def truncate_setsize(self, inode: Any, newsize: int) -> None:
        # truncate_setsize(): i_size first, then the page cache (a size past
        # the stored bytes stays sparse, as Inode.i_size allows)
        del inode.data[newsize:]
        inode.i_size = newsize if newsize > len(inode.data) else None
        self.truncate_pagecache(inode, newsize)

    def truncate_pagecache(self, inode: Any, newsize: int) -> None:
        # truncate_pagecache(): unmap past the new end (the private COWs of
        # the file's pages too), then drop the cached pages.  The kernel
        # unmaps a second time for pages COWed meanwhile; nothing runs in
        # between here.
        holebegin = (newsize + PAGE_SIZE - 1) >> PAGE_SHIFT
        self.unmap_mapping_range(inode, holebegin, even_cows=True)
        self.truncate_inode_pages(inode, newsize)

    def truncate_inode_pages(self, inode: Any, lstart: int) -> None:
        # truncate_inode_pages_range(): the pages wholly past lstart leave
        # the cache; the page lstart falls in keeps its head, its tail
        # zeroed (truncate_inode_partial_folio()).
        first = (lstart + PAGE_SIZE - 1) >> PAGE_SHIFT
        frames = self.cpu.phys.frames
        for index in [i for i in inode.pages if i >= first]:
            self.cpu.phys.free_frame(inode.pages.pop(index))
        partial = lstart & (PAGE_SIZE - 1)
        if partial:
            pfn = inode.pages.get(lstart >> PAGE_SHIFT)
            if pfn is not None:
                frames[pfn][partial:] = bytes(PAGE_SIZE - partial)

    def unmap_mapping_range(self, inode: Any, first: int, even_cows: bool) -> None:
        """unmap_mapping_pages(mapping, first, 0 (to the end), even_cows):
        every VMA of every mm mapping the file (the i_mmap tree) loses its
        PTEs of file pages from ``first`` on; with ``even_cows`` the private
        copies (anonymous pages) in those places too."""
        seen: set[int] = set()
        for task in self.tasks:
            mm = task.mm
            if mm is None or id(mm) in seen:
                continue
            seen.add(id(mm))
            for vma in mm.vmas:
                f = vma.vm_file
                if f is None or f.inode is not inode:
                    continue
                # the part of the VMA at file page first and beyond
                skip = max(0, first - vma.vm_pgoff)
                start = vma.vm_start + (skip << PAGE_SHIFT)
                if start >= vma.vm_end:
                    continue
                self.zap_file_range(vma, start, vma.vm_end, even_cows)

    def zap_file_range(self, vma: Any, start: int, end: int, even_cows: bool) -> None:
        # zap_page_range_single() with zap_details: without even_cows only
        # the PTEs of the file's own (page cache) pages go
        pt = vma.vm_mm.pgtable
        cached = set(vma.vm_file.inode.pages.values())
        for vpn in pt.populated(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            pte = pt.get(vpn)
            pfn = pte_pfn(pte)
            if not even_cows and pfn not in cached:
                continue
            pt.clear(vpn)
            if not pte & PTE_SPECIAL:
                self.put_frame(pfn)
