"""What must hold after every fuzzer step, and after every process exited.

Read through public state only: the VMA lists and page tables of the tasks,
the kernel's frame reference counts, the VFS's page caches, and the SGX
driver's own ``check_invariants()``."""

from __future__ import annotations

from typing import Any

from sgxsim.hw.paging import PTE_NX, PTE_PRESENT, PTE_RW, PTE_SPECIAL, pte_pfn
from sgxsim.kernel.mm.flags import (
    MMAP_MIN_ADDR,
    PAGE_MASK,
    PAGE_SHIFT,
    TASK_SIZE,
    VM_EXEC,
    VM_READ,
    VM_WRITE,
)


def check_machine(m: Any) -> list[str]:
    """Broken invariants of a running machine, as text (empty: all hold)."""
    k = m.kernel
    phys = m.cpu.phys
    bad: list[str] = []
    drv = getattr(k, "sgx", None)
    if drv is not None:
        bad += [f"sgx: {b}" for b in drv.check_invariants()]
    mapped: dict[int, int] = {}  # anonymous frame -> PTEs mapping it
    files: dict[int, list] = {}  # id(file) -> [file, holders]
    seen_mms: set[int] = set()
    for t in k.tasks:
        for f in t.files.values():
            files.setdefault(id(f), [f, 0])[1] += 1
        mm = t.mm
        if id(mm) in seen_mms:
            continue
        seen_mms.add(id(mm))
        bad += _check_mm(t, mm, phys, k, mapped, files)
    for pfn, n in mapped.items():
        refs = k.page_refs.get(pfn)
        if refs != n:
            bad.append(f"frame {pfn:#x}: page_refs {refs} but {n} PTEs map it")
    for pfn in k.page_refs:
        if pfn not in mapped:
            bad.append(f"frame {pfn:#x}: page_refs {k.page_refs[pfn]} but no PTE maps it")
    for f, holders in files.values():
        if f.refcount != holders:
            bad.append(f"{f}: refcount {f.refcount} but {holders} fd/VMA references")
    return bad


def _check_mm(t: Any, mm: Any, phys: Any, k: Any, mapped: dict, files: dict) -> list[str]:
    bad: list[str] = []
    prev_end = -1
    pt = mm.pgtable
    covered = 0
    for v in mm.vmas:
        where = f"pid {t.pid} {v}"
        if v.vm_start >= v.vm_end:
            bad.append(f"{where}: empty or inverted VMA")
        if v.vm_start & ~PAGE_MASK or v.vm_end & ~PAGE_MASK:
            bad.append(f"{where}: not page aligned")
        if v.vm_start < MMAP_MIN_ADDR or v.vm_end > TASK_SIZE:
            bad.append(f"{where}: outside [mmap_min_addr, TASK_SIZE)")
        if v.vm_start < prev_end:
            bad.append(f"{where}: overlaps or is out of order")
        prev_end = max(prev_end, v.vm_end)
        if v.vm_file is not None:
            files.setdefault(id(v.vm_file), [v.vm_file, 0])[1] += 1
        flags = v.vm_flags
        for vpn in pt.populated(v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT):
            covered += 1
            pte = pt.ptes[vpn]
            # A PROT_NONE entry is kept not-present with its frame (PAGE_NONE).
            if pte & PTE_PRESENT:
                if not flags & (VM_READ | VM_WRITE | VM_EXEC):
                    bad.append(f"{where}: present PTE {vpn << PAGE_SHIFT:#x} in a PROT_NONE VMA")
                if pte & PTE_RW and not flags & VM_WRITE:
                    bad.append(f"{where}: writable PTE {vpn << PAGE_SHIFT:#x} without VM_WRITE")
                if not pte & PTE_NX and not flags & VM_EXEC:
                    bad.append(f"{where}: executable PTE {vpn << PAGE_SHIFT:#x} without VM_EXEC")
            pfn = pte_pfn(pte)
            if phys.is_epc_pfn(pfn):
                continue  # the driver's invariants cover EPC PTEs
            if pte & PTE_SPECIAL:
                continue
            if pfn not in phys.frames:
                bad.append(f"{where}: PTE {vpn << PAGE_SHIFT:#x} maps freed frame {pfn:#x}")
            elif pfn in k.page_refs:
                mapped[pfn] = mapped.get(pfn, 0) + 1
    if covered != len(pt.ptes):
        bad.append(f"pid {t.pid}: {len(pt.ptes) - covered} PTEs outside every VMA")
    return bad


def check_after_exit(m: Any, boot_frames: set[int] | frozenset[int] = frozenset()) -> list[str]:
    """After every process exited: no enclave, no EPC page (but those an
    oops leaked), no frame left but those the kernel held at boot
    (``boot_frames``: the zero page, the SGX driver's kernel stack page) and
    the page caches of files with a name."""
    k = m.kernel
    bad: list[str] = []
    if k.tasks:
        bad.append(f"{len(k.tasks)} tasks left")
    drv = getattr(k, "sgx", None)
    if drv is not None:
        if drv.encls:
            bad.append(f"enclaves left: {list(drv.encls)}")
        # An oops leaks the EPC pages its path had allocated (Linux.oops_held):
        # those, and only those, are the kernel's to lose.
        leaked = len({id(p) for p in getattr(k, "oops_held", ())})
        if drv.sgx_nr_free_pages + leaked != len(drv.epc_pages):
            bad.append(f"EPC pages in use: {len(drv.epc_pages) - drv.sgx_nr_free_pages}"
                       + (f" ({leaked} leaked by an oops)" if leaked else ""))
    keep = {k.zero_pfn} | set(boot_frames)
    for inode in m.vfs.inodes.values():
        keep.update(inode.pages.values())
    left = set(m.cpu.phys.frames) - keep
    if left:
        bad.append(f"{len(left)} RAM frames left")
    if k.page_refs:
        bad.append(f"{len(k.page_refs)} page_refs left")
    return bad
