"""Test helper: drive the CPU model the way a kernel does (RAM frames for the
ENCLS operands, EPC pages by index, page tables for an LP)."""

from __future__ import annotations

from sgxsim.hw import sigstruct as S
from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.hw.cpu import Cpu
from sgxsim.hw.epc import Epc
from sgxsim.hw.memory import EPC_BASE_PFN
from sgxsim.hw.paging import PTE_NX, PTE_RW, PTE_USER, PageTable, make_pte
from sgxsim.hw.structs import Pageinfo, Secinfo, Secs, Tcs

BASE = 0x4000_0000
RW, RX, R, RWX = 0x3, 0x5, 0x1, 0x7
REG, TCS, TRIM = 0x200, 0x100, 0x400


def epa(i: int) -> int:
    return Epc.paddr(i)


class Kit:
    """A tiny 'kernel' around a Cpu."""

    def __init__(self, epc_pages: int = 32, sgx2: bool = True, **kw):
        self.cpu = Cpu(epc_pages, sgx2=sgx2, **kw)
        self.pt = PageTable()
        self.lp = self.cpu.lps[0]
        self.lp.cr3 = self.pt
        self.next_epc = 0
        self.scratch = self.frame()
        self.secinfo_pa = self.frame()
        self.pginfo_pa = self.scratch

    def frame(self, data: bytes | None = None) -> int:
        return self.cpu.phys.alloc_frame(data) << 12

    def alloc_epc(self) -> int:
        i = self.next_epc
        self.next_epc += 1
        return i

    def pageinfo(self, linaddr=0, srcpge=0, secinfo=0, secs=0) -> int:
        self.cpu.phys.write(self.pginfo_pa, Pageinfo(linaddr=linaddr, srcpge=srcpge,
                                                     secinfo=secinfo, secs=secs).pack())
        return self.pginfo_pa

    def secinfo(self, flags: int) -> int:
        self.cpu.phys.write(self.secinfo_pa, Secinfo(flags=flags).pack())
        return self.secinfo_pa

    # -- building ----------------------------------------------------------------------
    def ecreate(self, size=0x8000, base=BASE, ssa=1, attributes=0x4, xfrm=3, **kw) -> int:
        secs = Secs(size=size, base=base, ssa_frame_size=ssa, attributes=attributes, xfrm=xfrm,
                    **kw)
        i = self.alloc_epc()
        src = self.frame(secs.pack())
        self.cpu.ecreate(self.pageinfo(srcpge=src, secinfo=self.secinfo(0)), epa(i))
        self.secs_i, self.base, self.size = i, base, size
        return i

    def eadd(self, offset: int, flags: int, data: bytes = bytes(PAGE_SIZE), measure=True) -> int:
        i = self.alloc_epc()
        src = self.frame(data)
        self.cpu.eadd(self.pageinfo(self.base + offset, src, self.secinfo(flags),
                                    epa(self.secs_i)), epa(i))
        if measure:
            for j in range(16):
                self.cpu.eextend(epa(self.secs_i), epa(i) + j * 256)
        self.map(self.base + offset, i, rw=True, x=True)
        return i

    def einit(self, key=None, **build_kw) -> int:
        key = key or self.key()
        mr = self.cpu.epc.secs_state[self.secs_i].measurement.digest()
        sig = S.sign(S.build(mr, **build_kw), key)
        self.set_lehash(S.mrsigner(sig))
        return self.cpu.einit(self.frame(sig.pack() + bytes(PAGE_SIZE - 1808)),
                              epa(self.secs_i), self.frame())

    _KEY = None

    @classmethod
    def key(cls):
        if cls._KEY is None:
            cls._KEY = S.generate_key()
        return cls._KEY

    def set_lehash(self, digest: bytes) -> None:
        for k in range(4):
            self.cpu.wrmsr(0x8C + k, int.from_bytes(digest[8 * k : 8 * k + 8], "little"))

    def eaug(self, offset: int) -> int:
        i = self.alloc_epc()
        self.cpu.eaug(self.pageinfo(self.base + offset, 0, 0, epa(self.secs_i)), epa(i))
        self.map(self.base + offset, i, rw=True, x=True)
        return i

    def map(self, la: int, epc_index: int, rw=True, x=True) -> None:
        flags = PTE_USER | (PTE_RW if rw else 0) | (0 if x else PTE_NX)
        self.pt.set(la >> 12, make_pte(EPC_BASE_PFN + epc_index, flags))

    def map_ram(self, la: int, rw=True, x=False) -> int:
        pa = self.frame()
        flags = PTE_USER | (PTE_RW if rw else 0) | (0 if x else PTE_NX)
        self.pt.set(la >> 12, make_pte(pa >> 12, flags))
        return pa

    # -- a standard small enclave: TCS at 0, SSA at 1, data pages from 2 ----------------
    def standard(self, data_pages: int = 2, data_flags: int = RW, init: bool = True):
        self.ecreate()
        tcs = Tcs(ossa=PAGE_SIZE, nssa=1, oentry=2 * PAGE_SIZE, fslimit=0xFFFFFFFF,
                  gslimit=0xFFFFFFFF)
        self.tcs_i = self.eadd(0, TCS, tcs.pack())
        self.ssa_i = self.eadd(PAGE_SIZE, REG | RW)
        self.data_i = [self.eadd((2 + k) * PAGE_SIZE, REG | data_flags) for k in range(data_pages)]
        if init:
            assert self.einit() == 0
        return self

    def enter(self) -> None:
        self.lp.regs["rip"] = 0x1000
        self.cpu.eenter(self.lp, self.base, 0x5000)

    def secinfo_in_enclave(self, offset: int, flags: int) -> int:
        """Write a SECINFO into an enclave data page (as the enclave would)."""
        la = self.base + offset
        i = self.cpu.epc.index((self.pt.get(la >> 12) >> 12 & ((1 << 40) - 1)) << 12)
        off = la & 0xFFF
        self.cpu.epc.page(i)[off : off + 64] = Secinfo(flags=flags).pack()
        return la


# -- row setups for the table-driven leaf tests: ``f(env, ops)`` with ``env.k`` a Kit --
def operand(key: str, value: int):
    """Set one operand of the leaf under test."""
    def f(env, ops):
        ops[key] = value
    return f


def secs_at(key: str, la: int):
    """The enclave's SECS page mapped at ``la``, passed as operand ``key``."""
    def f(env, ops):
        env.k.map(la, env.k.secs_i)
        ops[key] = la
    return f


def va_page_at(key: str, la: int):
    """A fresh VA page (EPA) mapped at ``la``, passed as operand ``key``."""
    def f(env, ops):
        i = env.k.alloc_epc()
        env.k.cpu.epa(epa(i))
        env.k.map(la, i)
        ops[key] = la
    return f
