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
        for f in list(t.files.values()) + getattr(t, "blocked_holds", []):
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
    the page caches of files with a name.

    A task that sleeps for ever is never reaped (after a kernel oops: its
    do_exit() waits for the mmap_lock its own oopsed fault holds; or it
    waits for an enclave lock the oops left held): what it holds stays, as
    on the real kernel: its mm's frames, its files and the enclaves behind
    them.  Those are counted as kept; anything else left is still a finding."""
    k = m.kernel
    bad: list[str] = []
    stuck = [t for t in k.tasks if getattr(t, "blocked", None) is not None
             and t.blocked.outcome == "blocked"]  # not a stopped one: SIGCONT resumes it
    if len(k.tasks) > len(stuck):
        bad.append(f"{len(k.tasks) - len(stuck)} tasks left")
    drv = getattr(k, "sgx", None)
    kept_encls: dict[int, Any] = {}
    kept_frames: set[int] = set()
    inodes: list[Any] = []
    for t in stuck:
        files = list(t.files.values()) + t.blocked_holds
        for v in t.mm.vmas:
            if v.vm_file is not None:
                files.append(v.vm_file)
            if drv is not None and v.vm_ops is drv.vm_ops and v.vm_private_data is not None:
                kept_encls[id(v.vm_private_data)] = v.vm_private_data
        for f in files:
            inodes.append(f.inode)
            encl = getattr(f, "private_data", None)
            if drv is not None and encl in drv.encls:
                kept_encls[id(encl)] = encl
        for pte in t.mm.pgtable.ptes.values():
            kept_frames.add(pte_pfn(pte))
    if drv is not None:
        left = [e for e in drv.encls if id(e) not in kept_encls]
        if left:
            bad.append(f"enclaves left: {left}")
        # An oops leaks the EPC pages its path had allocated (Linux.oops_held):
        # those, and those of the enclaves kept, are the kernel's to lose.
        leaked = len({id(p) for p in getattr(k, "oops_held", ())})
        kept = 0
        for encl in kept_encls.values():
            kept += sum(1 for p in encl.page_array.values() if p.epc_page is not None)
            kept += (encl.secs.epc_page is not None) + len(encl.va_pages)
            kept_frames.update((encl.backing or {}).values())
        if drv.sgx_nr_free_pages + leaked + kept != len(drv.epc_pages):
            bad.append(f"EPC pages in use: {len(drv.epc_pages) - drv.sgx_nr_free_pages}"
                       + (f" ({leaked} leaked by an oops)" if leaked else "")
                       + (f" ({kept} of enclaves a task asleep for ever holds)" if kept else ""))
    keep = {k.zero_pfn} | set(boot_frames) | kept_frames
    for inode in list(m.vfs.inodes.values()) + inodes:
        keep.update(inode.pages.values())
    left_frames = set(m.cpu.phys.frames) - keep
    if left_frames:
        bad.append(f"{len(left_frames)} RAM frames left")
    refs_left = set(k.page_refs) - kept_frames
    if refs_left:
        bad.append(f"{len(refs_left)} page_refs left")
    return bad
