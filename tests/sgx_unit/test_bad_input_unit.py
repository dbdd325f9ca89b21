"""Bad input at the driver boundary (test doubles below it): random ioctl
numbers, struct bytes and bad pointers, mixed with mmap, mprotect, faults,
debug access and reclaim.  Only errnos come out; the invariants hold after
every step."""

from __future__ import annotations

import signal
import struct

from fake_layers import UserArg, uapi
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from test_driver_unit import BASE, PAGE_SIZE, Env

from sgxsim.kernel.errors import Signal

CMDS = [uapi.SGX_IOC_ENCLAVE_CREATE, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, uapi.SGX_IOC_ENCLAVE_INIT,
        uapi.SGX_IOC_ENCLAVE_PROVISION, uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
        uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES]
PTRS = [0, 0x1000_0000, 0x1000_0008, 0x2000_0000, BASE, 0x9000_0000, (1 << 64) - 4096]
NPAGES = 16
u64 = st.one_of(st.sampled_from(PTRS), st.integers(0, (1 << 64) - 1),
                st.integers(0, NPAGES + 1).map(lambda i: i * PAGE_SIZE))


class DriverBadInput(RuleBasedStateMachine):
    @initialize(kname=st.sampled_from(["linux-5.11", "linux-6.0", "linux-6.12"]), sgx2=st.booleans())
    def setup(self, kname, sgx2):
        self.kname, self.sgx2 = kname, sgx2
        self.e = Env(kname, n=24, sgx2=sgx2)
        self.e.d.nr_low_pages, self.e.d.nr_high_pages = 4, 8
        self.vmas = []

    def expect_errno(self, fn, *args):
        try:
            fn(*args)
        except OSError:
            pass

    @rule(cmd=st.one_of(st.sampled_from(CMDS), st.integers(0, (1 << 32) - 1)),
          data=st.one_of(st.none(), st.binary(max_size=64)))
    def raw_ioctl(self, cmd, data):
        self.expect_errno(self.e.d.sgx_ioctl, self.e.f, cmd,
                          UserArg(None if data is None else bytearray(data)))

    @rule(cmd=st.sampled_from(CMDS), fields=st.lists(u64, min_size=6, max_size=6))
    def struct_ioctl(self, cmd, fields):
        self.e.ioctl(cmd, bytearray(struct.pack("<6Q", *fields)))

    @rule(sflags=st.one_of(st.sampled_from([0x203, 0x201, 0x207, 0x100]),
                           st.integers(0, (1 << 64) - 1)),
          page=st.integers(0, NPAGES), n=st.integers(1, 3), src=st.sampled_from(PTRS))
    def add(self, sflags, page, n, src):
        self.e.add(page * PAGE_SIZE, page, sflags=sflags, length=n * PAGE_SIZE,
                   src=src if src != BASE else 0x1000_4000)

    @rule(size_log=st.integers(12, 18), attrs=st.sampled_from([0x6, 0x4, 0x16, 0x26, 0x2]))
    def create(self, size_log, attrs):
        self.e.create(size=max(1 << size_log, NPAGES * PAGE_SIZE), attributes=attrs)

    @rule(n=st.integers(0, 12), init=st.booleans())
    def build(self, n, init):
        """A well-formed enclave, so the deeper paths (reclaim, ELDU, SGX2) are reached."""
        if self.e.create() == 0:
            self.e.add(0, sflags=0x100, tcs=True)
            for i in range(1, n + 1):
                self.e.add(i * PAGE_SIZE, i)
            if init:
                self.e.init()

    @rule(good=st.booleans())
    def init(self, good):
        self.e.init() if good else self.e.init(enclavehash=bytes(32))

    @rule(first=st.integers(-1, NPAGES), n=st.integers(1, 4), prot=st.integers(0, 7))
    def mmap(self, first, n, prot):
        vma = self.e.mmap(first, n, prot)
        if not isinstance(vma, int):
            self.vmas.append(vma)

    @rule(i=st.integers(0, 50), prot=st.integers(0, 7))
    def mprotect(self, i, prot):
        if self.vmas:
            vma = self.vmas[i % len(self.vmas)]
            self.expect_errno(self.e.d.sgx_vma_mprotect, vma, vma.vm_start, vma.vm_end,
                              prot | 0x78)

    @rule(i=st.integers(0, 50))
    def munmap(self, i):
        if self.vmas:
            self.e.munmap(self.vmas.pop(i % len(self.vmas)))

    def touch(self, vma, addr):
        """A fault: NOPAGE or SIGBUS; on 6.0 an EAUG after the SECS was
        reclaimed oopses (fixed in 6.5), and the machine is rebooted."""
        try:
            assert self.e.fault(vma, addr) in (0x100, 0x2)
        except Signal as s:
            assert self.kname == "linux-6.0" and s.signo == signal.SIGKILL, s
            assert "NULL pointer dereference" in self.e.k.oopses[0]
            self.setup(self.kname, self.sgx2)

    @rule(page=st.integers(0, NPAGES))
    def map_and_touch(self, page):
        vma = self.e.mmap(page, 1, 1)
        if not isinstance(vma, int):
            self.vmas.append(vma)
            self.touch(vma, vma.vm_start)

    @rule(i=st.integers(0, 50), page=st.integers(0, 3))
    def fault(self, i, page):
        if self.vmas:
            vma = self.vmas[i % len(self.vmas)]
            addr = min(vma.vm_start + page * PAGE_SIZE, vma.vm_end - PAGE_SIZE)
            self.touch(vma, addr)

    @rule(i=st.integers(0, 50), off=st.integers(0, 2 * PAGE_SIZE), n=st.integers(1, 24),
          write=st.booleans())
    def access(self, i, off, n, write):
        if self.vmas:
            vma = self.vmas[i % len(self.vmas)]
            ret = self.e.d.sgx_vma_access(vma, vma.vm_start + off, bytearray(n), write)
            assert ret < 0 or ret == n

    @rule(cmd=st.sampled_from([uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
                               uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES]),
          page=st.integers(0, NPAGES), n=st.integers(1, 3), value=st.integers(0, 8))
    def sgx2(self, cmd, page, n, value):
        self.e.sgx2(cmd, page * PAGE_SIZE, n * PAGE_SIZE, value, 0, 0)

    @rule(page=st.integers(0, NPAGES))
    def remove(self, page):
        self.e.sgx2(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, page * PAGE_SIZE, PAGE_SIZE, 0)

    @rule()
    def reclaim(self):
        self.e.d.sgx_reclaim_pages()

    @invariant()
    def consistent(self):
        if hasattr(self, "e"):
            assert self.e.d.check_invariants() == []
            assert self.e.d.dmesg == []


DriverBadInput.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestDriverBadInput = DriverBadInput.TestCase
