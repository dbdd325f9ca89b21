"""Bad input: random ioctl numbers, struct bytes and pointers (into unmapped,
PROT_NONE or enclave memory), mixed with mmap/mprotect/munmap, touches and
reclaim.  Only errno results and signals may come out, and the driver's
invariants (resident children, EPCM ownership, no PTE to a free EPC page)
hold after every step."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sgx_helpers import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_NONE,
    PROT_READ,
    Encl,
    R,
    W,
    X,
    machine,
)

from sgxsim.hw import uapi
from sgxsim.hw.consts import PAGE_SIZE
from sgxsim.kernel.errors import Signal

CMDS = [uapi.SGX_IOC_ENCLAVE_CREATE, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, uapi.SGX_IOC_ENCLAVE_INIT,
        uapi.SGX_IOC_ENCLAVE_PROVISION, uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
        uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES]
ENCL_PAGES = 16
NONE_PAGE = 0x3000_0000
UNMAPPED = 0x0800_0000
u64 = st.integers(0, (1 << 64) - 1)
small_off = st.integers(0, ENCL_PAGES + 1).map(lambda i: i * PAGE_SIZE)


class BadInput(RuleBasedStateMachine):
    @initialize(kname=st.sampled_from(["linux-5.11", "linux-6.0"]), sgx2=st.booleans())
    def setup(self, kname, sgx2):
        self.m = machine(kname, sgx2=sgx2, epc_pages=24)
        drv = self.m.kernel.sgx
        drv.nr_low_pages, drv.nr_high_pages = 4, 8
        self.e = Encl(self.m, size=ENCL_PAGES * PAGE_SIZE)
        self.proc = self.e.proc
        self.proc.mmap(NONE_PAGE, PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)

    def call(self, fn, *args):
        try:
            fn(*args)
        except (OSError, Signal):
            pass

    def pointer(self, kind, data):
        if kind == "unmapped":
            return UNMAPPED
        if kind == "prot_none":
            return NONE_PAGE
        if kind == "enclave":
            return self.e.base
        return self.e.put(data)

    @rule(cmd=st.one_of(st.sampled_from(CMDS), st.integers(0, (1 << 32) - 1)),
          data=st.binary(min_size=0, max_size=64))
    def ioctl_buffer(self, cmd, data):
        self.call(self.proc.ioctl, self.e.fd, cmd, bytearray(data))

    @rule(cmd=st.sampled_from(CMDS),
          kind=st.sampled_from(["unmapped", "prot_none", "enclave", "data"]),
          data=st.binary(min_size=0, max_size=64))
    def ioctl_pointer(self, cmd, kind, data):
        self.call(self.proc.ioctl, self.e.fd, cmd, self.pointer(kind, data))

    @rule(kind=st.sampled_from(["unmapped", "prot_none", "enclave", "data"]),
          offset=small_off, length=small_off, flags=u64, secinfo=u64,
          src_kind=st.sampled_from(["unmapped", "prot_none", "enclave", "data"]))
    def add_pages_fuzz(self, kind, offset, length, flags, secinfo, src_kind):
        src = self.pointer(src_kind, bytes(PAGE_SIZE))
        si = self.pointer(kind, struct.pack("<Q", secinfo) + bytes(56))
        self.call(self.proc.ioctl, self.e.fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES,
                  bytearray(struct.pack("<6Q", src, offset, length, si, flags & 1, 0)))

    @rule()
    def create(self):
        self.e.create()

    @rule(offset=small_off, perms=st.sampled_from([R, R | W, R | X, R | W | X]))
    def add_page(self, offset, perms):
        self.e.add(offset, flags=perms)

    @rule()
    def init(self):
        self.e.init()

    @rule(name=st.sampled_from(["RESTRICT", "MODIFY", "REMOVE"]), offset=small_off,
          length=small_off, value=st.integers(0, 8))
    def sgx2(self, name, offset, length, value):
        if name == "REMOVE":
            self.e.sgx2(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, offset, length, 0)
        elif name == "MODIFY":
            self.e.sgx2(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, offset, length, value, 0, 0)
        else:
            self.e.sgx2(uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, offset, length, value, 0, 0)

    @rule(first=st.integers(-1, ENCL_PAGES), n=st.integers(1, 4), prot=st.integers(0, 7),
          shared=st.booleans())
    def mmap(self, first, n, prot, shared):
        flags = (MAP_SHARED if shared else MAP_PRIVATE) | MAP_FIXED
        self.call(self.proc.mmap, self.e.base + first * PAGE_SIZE, n * PAGE_SIZE, prot, flags,
                  self.e.fd, 0)

    @rule(first=st.integers(0, ENCL_PAGES), n=st.integers(1, 4), prot=st.integers(0, 7))
    def mprotect(self, first, n, prot):
        self.call(self.proc.mprotect, self.e.base + first * PAGE_SIZE, n * PAGE_SIZE, prot)

    @rule(first=st.integers(0, ENCL_PAGES), n=st.integers(1, 4))
    def munmap(self, first, n):
        self.call(self.proc.munmap, self.e.base + first * PAGE_SIZE, n * PAGE_SIZE)

    @rule(page=st.integers(0, ENCL_PAGES), write=st.booleans())
    def touch(self, page, write):
        addr = self.e.base + page * PAGE_SIZE
        if write:
            self.call(self.proc.poke, addr, b"\x01")
        else:
            self.call(self.proc.peek, addr, 1)

    @rule()
    def reclaim(self):
        self.m.kernel.sgx.sgx_reclaim_pages()

    @invariant()
    def driver_consistent(self):
        if hasattr(self, "m"):
            assert self.m.kernel.sgx.check_invariants() == []


BadInput.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestBadInput = BadInput.TestCase


def test_teardown_after_fuzzing_frees_everything():
    """After random use, closing and exiting returns every EPC page."""
    m = machine(epc_pages=24)
    e = Encl(m, size=ENCL_PAGES * PAGE_SIZE).build([(2 * PAGE_SIZE, R | W)])
    e.mmap(0, 4 * PAGE_SIZE, PROT_READ)
    e.proc.exit()
    assert m.kernel.sgx.sgx_nr_free_pages == 24
