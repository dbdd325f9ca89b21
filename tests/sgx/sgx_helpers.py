"""Building enclaves through the ioctls, the way user space does: structures
poked into user memory, ioctls called through ``Process.ioctl``."""

from __future__ import annotations

import errno
import mmap as _mmap
import os
import struct

from sgxsim.hw import uapi
from sgxsim.hw.consts import PAGE_SIZE, Attribute, PageType, SecinfoFlags, secinfo_flags
from sgxsim.hw.measure import Measurement
from sgxsim.hw.structs import Secs, Tcs
from sgxsim.machine import Machine

PROT_NONE = _mmap.PROT_NONE if hasattr(_mmap, "PROT_NONE") else 0
PROT_READ, PROT_WRITE, PROT_EXEC = 0x1, 0x2, 0x4
RWX = PROT_READ | PROT_WRITE | PROT_EXEC
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20

R, W, X = SecinfoFlags.R, SecinfoFlags.W, SecinfoFlags.X
REG = PageType.PT_REG
TCS = PageType.PT_TCS

ENCL_BASE = 0x7F00_0000_0000
SCRATCH = 0x1000_0000  # user scratch area for structures and page contents
SCRATCH_PAGES = 1024

_KEY = None


def signing_key():
    """One RSA-3072 key (e = 3) for the whole test session: generation is slow."""
    global _KEY
    if _KEY is None:
        from sgxsim.hw import sigstruct as hwsig
        _KEY = hwsig.generate_key()
    return _KEY


def machine(kernel: str = "linux-6.0", **kw) -> Machine:
    kw.setdefault("epc_pages", 256)
    return Machine(kernel=kernel, **kw)


def err_of(fn, *args, **kw) -> int:
    """Run a syscall; return its errno (0 on success)."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return 0


class Encl:
    """One enclave being built by one process."""

    def __init__(self, m: Machine, proc=None, *, size: int = 16 * PAGE_SIZE,
                 base: int = ENCL_BASE, attributes: int = Attribute.MODE64BIT | Attribute.DEBUG,
                 xfrm: int = 3, ssa_frame_size: int = 1):
        self.m = m
        self.proc = proc if proc is not None else m.spawn()
        self.size = size
        self.base = base
        self.attributes = attributes
        self.xfrm = xfrm
        self.ssa_frame_size = ssa_frame_size
        self.meas = Measurement()
        self.fd = self.proc.open("/dev/sgx_enclave", os.O_RDWR)
        self.scratch = self.proc.mmap(SCRATCH, SCRATCH_PAGES * PAGE_SIZE,
                                      PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        self.next_scratch = self.scratch

    @property
    def drv(self):
        return self.m.kernel.sgx

    @property
    def encl(self):
        """The kernel's struct sgx_encl behind this fd."""
        return self.proc.files[self.fd].private_data

    # -- user memory -------------------------------------------------------------
    def put(self, data: bytes) -> int:
        """Copy data into fresh scratch pages; return its user address."""
        addr = self.next_scratch
        self.proc.poke(addr, data)
        self.next_scratch += -(-max(len(data), 1) // PAGE_SIZE) * PAGE_SIZE
        return addr

    def ioctl(self, cmd: int, fields: bytes) -> tuple[int, bytearray]:
        """Call an ioctl with a mutable buffer; return (errno, buffer)."""
        buf = bytearray(fields)
        return err_of(self.proc.ioctl, self.fd, cmd, buf), buf

    # -- the build steps -----------------------------------------------------------
    def secs(self) -> bytes:
        return Secs(size=self.size, base=self.base, ssa_frame_size=self.ssa_frame_size,
                    attributes=self.attributes, xfrm=self.xfrm).pack()

    def create(self, secs: bytes | None = None) -> int:
        src = self.put(secs if secs is not None else self.secs())
        e, _ = self.ioctl(uapi.SGX_IOC_ENCLAVE_CREATE, struct.pack("<Q", src))
        if e == 0:
            self.meas.ecreate(self.size, self.ssa_frame_size)
        return e

    def add(self, offset: int, data: bytes | None = None, *, flags: int = R | W,
            pt: int = REG, measure: bool = True, length: int | None = None,
            raw_flags: int | None = None) -> tuple[int, int]:
        """ADD_PAGES; return (errno, count)."""
        length = length if length is not None else PAGE_SIZE
        data = data if data is not None else bytes(length)
        src = self.put(data)
        sflags = raw_flags if raw_flags is not None else secinfo_flags(pt, flags)
        si = self.put(struct.pack("<Q", sflags) + bytes(56))
        e, buf = self.ioctl(uapi.SGX_IOC_ENCLAVE_ADD_PAGES,
                            struct.pack("<6Q", src, offset, length, si,
                                        1 if measure else 0, 0))
        count = struct.unpack_from("<6Q", buf)[5]
        for c in range(0, count, PAGE_SIZE):
            self.meas.eadd(offset + c, sflags)
            if measure:
                self.meas.eextend_page(offset + c, data[c:c + PAGE_SIZE].ljust(PAGE_SIZE, b"\0"))
        return e, count

    def add_tcs(self, offset: int, ssa_offset: int) -> tuple[int, int]:
        tcs = Tcs(ossa=ssa_offset, nssa=1, oentry=0, fslimit=0xFFFFFFFF,
                  gslimit=0xFFFFFFFF).pack()
        return self.add(offset, tcs, flags=0, pt=TCS)

    def sigstruct(self, *, vendor: int = 0, attributes: int | None = None,
                  attributes_mask: int | None = None, mrenclave: bytes | None = None) -> bytes:
        from sgxsim.hw import sigstruct as hwsig
        attrs = self.attributes if attributes is None else attributes
        return hwsig.sign(
            hwsig.build(mrenclave if mrenclave is not None else self.meas.digest(),
                        attributes=attrs, xfrm=self.xfrm,
                        attributes_mask=(attributes_mask if attributes_mask is not None
                                         else ~Attribute.DEBUG & ((1 << 64) - 1)),
                        vendor=vendor),
            signing_key()).pack()

    def init(self, sigstruct: bytes | None = None) -> int:
        addr = self.put(sigstruct if sigstruct is not None else self.sigstruct())
        e, _ = self.ioctl(uapi.SGX_IOC_ENCLAVE_INIT, struct.pack("<Q", addr))
        return e

    def build(self, pages: list[tuple[int, int]] | None = None, *, init: bool = True) -> Encl:
        """CREATE, a TCS at 0 with its SSA at 0x1000, then (offset, perms)
        REG pages, then INIT.  Asserts every step."""
        assert self.create() == 0
        assert self.add_tcs(0, PAGE_SIZE) == (0, PAGE_SIZE)
        assert self.add(PAGE_SIZE, flags=R | W) == (0, PAGE_SIZE)
        for offset, perms in pages or []:
            data = bytes([offset >> 12 & 0xFF]) * PAGE_SIZE
            assert self.add(offset, data, flags=perms) == (0, PAGE_SIZE)
        if init:
            assert self.init() == 0
        return self

    # -- mappings ------------------------------------------------------------------
    def mmap(self, offset: int, length: int, prot: int, flags: int = MAP_SHARED | MAP_FIXED,
             addr: int | None = None) -> int:
        return self.proc.mmap(self.base + offset if addr is None else addr, length, prot,
                              flags, self.fd, 0)

    def sgx2(self, cmd: int, *fields: int) -> tuple[int, tuple[int, ...]]:
        e, buf = self.ioctl(cmd, struct.pack(f"<{len(fields)}Q", *fields))
        return e, struct.unpack(f"<{len(fields)}Q", buf)


def enodev_or_enotty(e: int) -> bool:
    return e in (errno.ENODEV, errno.ENOTTY)
