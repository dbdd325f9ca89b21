"""Test helper: build enclaves through the ENCLS leaves the way a kernel does
(RAM frames for PAGEINFO/SECINFO/source pages, EPC pages by index), and map
them into a page table for an enclave thread.  Not part of the model."""

from __future__ import annotations

import struct

from sgxsim.hw.consts import PAGE_SIZE, Attribute, PageType, secinfo_flags
from sgxsim.hw.cpu import Cpu
from sgxsim.hw.epc import Epc
from sgxsim.hw.paging import PTE_NX, PTE_RW, PTE_USER, PageTable, make_pte
from sgxsim.hw.structs import Secs, Tcs

REG_RW = secinfo_flags(PageType.PT_REG, 3)
REG_RWX = secinfo_flags(PageType.PT_REG, 7)
TCS_FLAGS = secinfo_flags(PageType.PT_TCS)


class Builder:
    """Kernel-side scratch frames and an EPC page allocator."""

    def __init__(self, cpu: Cpu):
        self.cpu = cpu
        phys = cpu.phys
        self.scratch = phys.alloc_frame() << 12  # PAGEINFO @0, SECINFO @64, PCMD @128
        self.src = phys.alloc_frame() << 12  # source page / SIGSTRUCT
        self.token = phys.alloc_frame() << 12
        # One EPC allocator per CPU, shared by every Builder on it (the test
        # helper's "kernel"): pages handed out in index order.
        if not hasattr(cpu, "_test_epc_next"):
            cpu._test_epc_next = 0

    # -- memory ------------------------------------------------------------------
    def alloc_epc(self) -> int:
        i = self.cpu._test_epc_next
        self.cpu._test_epc_next += 1
        return Epc.paddr(i)

    def put_pageinfo(self, linaddr: int = 0, srcpge: int = 0, secinfo: int = 0,
                     secs: int = 0) -> int:
        self.cpu.phys.write(self.scratch, struct.pack("<QQQQ", linaddr, srcpge, secinfo, secs))
        return self.scratch

    def put_secinfo(self, flags: int) -> int:
        self.cpu.phys.write(self.scratch + 64, struct.pack("<Q", flags) + bytes(56))
        return self.scratch + 64

    def put_src(self, data: bytes) -> int:
        self.cpu.phys.write(self.src, data.ljust(PAGE_SIZE, b"\0"))
        return self.src

    # -- leaves ------------------------------------------------------------------
    def ecreate(self, size: int, base: int, ssa: int = 1,
                attributes: int = Attribute.MODE64BIT, xfrm: int = 3,
                miscselect: int = 0) -> int:
        secs = Secs(size=size, base=base, ssa_frame_size=ssa, attributes=int(attributes),
                    xfrm=xfrm, miscselect=miscselect)
        epc = self.alloc_epc()
        self.put_src(secs.pack())
        pi = self.put_pageinfo(srcpge=self.src, secinfo=self.put_secinfo(0))
        self.cpu.ecreate(pi, epc)
        return epc

    def eadd(self, secs: int, linaddr: int, data: bytes, flags: int,
             measure: bool = True) -> int:
        epc = self.alloc_epc()
        self.put_src(data)
        pi = self.put_pageinfo(linaddr, self.src, self.put_secinfo(flags), secs)
        self.cpu.eadd(pi, epc)
        if measure:
            for off in range(0, PAGE_SIZE, 256):
                self.cpu.eextend(secs, epc + off)
        return epc

    def einit(self, secs: int, sigstruct: bytes, token: bytes = bytes(304)) -> int:
        self.cpu.phys.write(self.src, sigstruct.ljust(PAGE_SIZE, b"\0"))
        self.cpu.phys.write(self.token, token.ljust(PAGE_SIZE, b"\0"))
        return self.cpu.einit(self.src, secs, self.token)

    def set_launch_hash(self, mrsigner: bytes) -> None:
        for n in range(4):
            self.cpu.wrmsr(0x8C + n, int.from_bytes(mrsigner[8 * n : 8 * n + 8], "little"))


def tcs_page(ossa: int, nssa: int = 1, oentry: int = 0) -> bytes:
    return Tcs(ossa=ossa, nssa=nssa, oentry=oentry).pack()


def map_page(pt: PageTable, la: int, paddr: int, *, write: bool = True, nx: bool = False,
             user: bool = True) -> None:
    flags = (PTE_RW if write else 0) | (PTE_USER if user else 0) | (PTE_NX if nx else 0)
    pt.set(la >> 12, make_pte(paddr >> 12, flags))


class Enclave:
    """A small initialised enclave: TCS at base, SSA at base+0x1000, REG
    pages after; every page mapped RW(X) in ``pt``.  Signed with ``key``."""

    def __init__(self, cpu: Cpu, key, *, base: int = 0x10_0000_0000, size: int = 0x10000,
                 reg_pages: int = 2, reg_flags: int = REG_RWX, attributes: int = 0,
                 miscselect: int = 0):
        from sgxsim.hw import sigstruct as sigmod

        self.cpu = cpu
        self.b = Builder(cpu)
        self.base = base
        self.pt = PageTable()
        attrs = int(Attribute.MODE64BIT) | attributes
        self.secs = self.b.ecreate(size, base, attributes=attrs, miscselect=miscselect)
        self.tcs_la = base
        self.tcs = self.b.eadd(self.secs, base, tcs_page(0x1000, nssa=2, oentry=0x2000),
                               TCS_FLAGS)
        self.pages = {base: self.tcs}
        ssa = self.b.eadd(self.secs, base + 0x1000, b"", REG_RW)
        ssa2 = self.b.eadd(self.secs, base + 0x2000, b"", REG_RW)
        self.pages[base + 0x1000] = ssa
        self.pages[base + 0x2000] = ssa2
        for k in range(reg_pages):
            la = base + 0x3000 + k * PAGE_SIZE
            self.pages[la] = self.b.eadd(self.secs, la, bytes([k + 1]) * 16, reg_flags)
        mr = cpu.epc.secs_state[cpu.epc.index(self.secs)].measurement.digest()
        sig = sigmod.sign(sigmod.build(mr, attributes=attrs), key)
        self.mrsigner = sigmod.mrsigner(sig)
        self.b.set_launch_hash(self.mrsigner)
        assert self.b.einit(self.secs, sig.pack()) == 0
        for la, pa in self.pages.items():
            map_page(self.pt, la, pa)

    def reg(self, k: int) -> int:
        return self.base + 0x3000 + k * PAGE_SIZE

    def map(self, la: int, paddr: int, **kw) -> None:
        map_page(self.pt, la, paddr, **kw)
