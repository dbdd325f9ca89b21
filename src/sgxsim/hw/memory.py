"""Physical memory: ordinary RAM frames and the EPC's place in the address map.

RAM is sparse: a frame exists only once the kernel allocates it.  The EPC is
a contiguous physical range starting at :data:`EPC_BASE` whose page contents
and EPCM belong to :mod:`sgxsim.hw.epc`; :class:`PhysMem` only tells which
range a physical address lies in.  The model's kernel uses an identity direct
map, so the kernel linear address of a frame equals its physical address
(ENCLS operands are such addresses).
"""

from __future__ import annotations

from sgxsim.hw.consts import PAGE_SHIFT, PAGE_SIZE

RAM_BASE = 0x0010_0000  # first allocatable RAM frame (above the legacy 1 MiB)
EPC_BASE = 0x80_0000_0000  # 512 GiB: far above any RAM the model allocates
EPC_BASE_PFN = EPC_BASE >> PAGE_SHIFT

_ZERO_PAGE = bytes(PAGE_SIZE)


class PhysMem:
    """RAM frames, allocated by the kernel, addressed by page frame number."""

    __slots__ = ("frames", "_free", "_next_pfn", "epc_pages")

    def __init__(self, epc_pages: int):
        self.frames: dict[int, bytearray] = {}
        self._free: list[int] = []
        self._next_pfn = RAM_BASE >> PAGE_SHIFT
        self.epc_pages = epc_pages

    # -- address map ---------------------------------------------------------
    def is_epc(self, paddr: int) -> bool:
        return EPC_BASE <= paddr < EPC_BASE + (self.epc_pages << PAGE_SHIFT)

    def is_epc_pfn(self, pfn: int) -> bool:
        return EPC_BASE_PFN <= pfn < EPC_BASE_PFN + self.epc_pages

    def is_ram_pfn(self, pfn: int) -> bool:
        return pfn in self.frames

    # -- RAM frames ----------------------------------------------------------
    def alloc_frame(self, data: bytes | None = None) -> int:
        """Allocate a zeroed (or ``data``-filled) RAM frame; return its PFN."""
        pfn = self._free.pop() if self._free else self._next_pfn
        if pfn == self._next_pfn:
            self._next_pfn += 1
            if self._next_pfn >= EPC_BASE_PFN:
                raise MemoryError("model RAM exhausted")
        self.frames[pfn] = bytearray(data if data is not None else _ZERO_PAGE)
        return pfn

    def free_frame(self, pfn: int) -> None:
        del self.frames[pfn]
        self._free.append(pfn)

    def frame(self, pfn: int) -> bytearray:
        return self.frames[pfn]

    def read(self, paddr: int, n: int) -> bytes:
        """Read ``n`` bytes of RAM at ``paddr`` (may cross frames)."""
        off = paddr & (PAGE_SIZE - 1)
        if 0 < n <= PAGE_SIZE - off:  # within one frame
            return bytes(self.frames[paddr >> PAGE_SHIFT][off : off + n])
        out = bytearray()
        while n > 0:
            pfn, off = paddr >> PAGE_SHIFT, paddr & (PAGE_SIZE - 1)
            take = min(n, PAGE_SIZE - off)
            out += self.frames[pfn][off : off + take]
            paddr += take
            n -= take
        return bytes(out)

    def write(self, paddr: int, data: bytes) -> None:
        off = paddr & (PAGE_SIZE - 1)
        n = len(data)
        if 0 < n <= PAGE_SIZE - off:  # within one frame
            self.frames[paddr >> PAGE_SHIFT][off : off + n] = data
            return
        mv = memoryview(data)
        while mv:
            pfn, off = paddr >> PAGE_SHIFT, paddr & (PAGE_SIZE - 1)
            take = min(len(mv), PAGE_SIZE - off)
            self.frames[pfn][off : off + take] = mv[:take]
            paddr += take
            mv = mv[take:]
