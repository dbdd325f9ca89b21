"""The driver's own logic against test doubles of the CPU and the kernel
services (fake_layers): check order and errno of §2, counts written back,
may_map (§3), fault results (§4.2), access (§4.3), the reclaimer (§5) and
teardown.  End-to-end versions run on the real machine in tests/sgx."""

from __future__ import annotations

import errno
import hashlib
import struct

import pytest
from fake_layers import FakeKernel, File, UserArg, Vma, uapi

from sgxsim.hw import sigstruct as hwsig
from sgxsim.hw.consts import MSR_IA32_SGXLEPUBKEYHASH0, PAGE_SIZE, PageType
from sgxsim.hw.cpu import Cpu
from sgxsim.hw.measure import Measurement
from sgxsim.hw.paging import PTE_ACCESSED
from sgxsim.hw.structs import Secs, Tcs
from sgxsim.kernel.errors import ENOIOCTLCMD, ERESTARTSYS
from sgxsim.kernel.sgx.driver import SgxDriver, SgxDriverSgx2
from sgxsim.kernel.sgx.encl import READ_IMPLIES_EXEC, SGX_ENCL_IOCTL
from sgxsim.kernel.sgx.linux612 import SgxDriver612

BASE = 0x7F00_0000_0000
SIZE = 64 * PAGE_SIZE
S = 0x1000_0000  # user scratch VMA
SI = S + PAGE_SIZE  # a SECINFO
SIG = S + 2 * PAGE_SIZE
SRC = S + 4 * PAGE_SIZE
NOPAGE, SIGBUS = 0x100, 0x2
VM_SHARED_MAY = 0x8 | 0x70
REG, TCS, TRIM = PageType.PT_REG, PageType.PT_TCS, PageType.PT_TRIM
_KEY: list = []


def signing_key():
    """One RSA-3072/e=3 key for the session (generation is slow)."""
    if not _KEY:
        _KEY.append(hwsig.generate_key())
    return _KEY[0]


class Env:
    def __init__(self, kernel: str = "linux-6.0", n: int = 64, sgx2: bool = True):
        self.cpu = Cpu(n, sgx2=sgx2)
        self.k = FakeKernel(self.cpu)
        cls = {"linux-6.0": SgxDriverSgx2, "linux-6.12": SgxDriver612}.get(kernel, SgxDriver)
        self.d = cls(self.k)
        self.d.sgx_drv_init()
        self.t = self.k.current
        self.t.mm.vmas.append(Vma(self.t.mm, S, S + 64 * PAGE_SIZE, 0x73))
        self.f = File(self.d.fops)
        self.d.sgx_open(None, self.f)
        self.t.files[3] = self.f
        self.meas = Measurement()
        self.attributes = 0x6

    @property
    def encl(self):
        return self.f.private_data

    def ioctl(self, cmd, buf):
        try:
            self.d.sgx_ioctl(self.f, cmd, UserArg(buf))
        except OSError as e:
            return e.errno
        return 0

    def create(self, size=SIZE, base=BASE, attributes=0x6):
        self.attributes = attributes
        self.k.poke(S, Secs(size=size, base=base, ssa_frame_size=1, attributes=attributes,
                            xfrm=3).pack())
        e = self.ioctl(uapi.SGX_IOC_ENCLAVE_CREATE, bytearray(struct.pack("<Q", S)))
        if e == 0:
            self.meas.ecreate(size, 1)
        return e

    def add(self, offset, fill=0, *, sflags=REG << 8 | 3, length=PAGE_SIZE, measure=1,
            src=SRC, secinfo=SI, tcs=False):
        self.k.poke(SI, struct.pack("<Q", sflags) + bytes(56))
        if not tcs:
            self.k.poke(SRC, bytes([fill]) * PAGE_SIZE)
        buf = bytearray(struct.pack("<6Q", src, offset, length, secinfo, measure, 0))
        e = self.ioctl(uapi.SGX_IOC_ENCLAVE_ADD_PAGES, buf)
        count = struct.unpack("<6Q", buf)[5]
        for c in range(0, count, PAGE_SIZE):
            self.meas.eadd(offset + c, sflags)
            if measure:
                self.meas.eextend_page(offset + c, self.k.copy_from_user(self.t, src + c,
                                                                         PAGE_SIZE))
        return e, count

    def init(self, **fields):
        mrenclave = fields.pop("enclavehash", self.meas.digest())
        fields.setdefault("attributes", self.attributes)
        sig = hwsig.sign(hwsig.build(mrenclave, **fields), signing_key())
        self.k.poke(SIG, sig.pack())
        return self.ioctl(uapi.SGX_IOC_ENCLAVE_INIT, bytearray(struct.pack("<Q", SIG)))

    def build(self, pages=((2, 3),), init=True):
        assert self.create() == 0
        self.k.poke(SRC + PAGE_SIZE, Tcs(ossa=PAGE_SIZE, nssa=1, fslimit=0xFFFFFFFF,
                                         gslimit=0xFFFFFFFF).pack())
        assert self.add(0, src=SRC + PAGE_SIZE, sflags=TCS << 8, tcs=True) == (0, PAGE_SIZE)
        assert self.add(PAGE_SIZE) == (0, PAGE_SIZE)
        for page, perms in pages:
            assert self.add(page * PAGE_SIZE, page, sflags=REG << 8 | perms) == (0, PAGE_SIZE)
        if init:
            assert self.init() == 0
        return self

    def mmap(self, first, n, prot, addr=None):
        start = BASE + first * PAGE_SIZE if addr is None else addr
        vma = Vma(self.t.mm, start, start + n * PAGE_SIZE, prot | VM_SHARED_MAY, self.f)
        try:
            self.d.fops.mmap(self.f, vma)
        except OSError as e:
            return e.errno
        self.t.mm.vmas.append(vma)
        return vma

    def munmap(self, vma):
        """do_munmap(): the VMA and its PTEs go."""
        self.t.mm.vmas.remove(vma)
        for vpn in range(vma.vm_start >> 12, vma.vm_end >> 12):
            self.t.mm.pgtable.clear(vpn)

    def fault(self, vma, addr):
        vmf = type("Vmf", (), {})()
        vmf.vma, vmf.address, vmf.why = vma, addr & ~0xFFF, None
        return self.d.vm_ops.fault(vmf)

    def eaccept(self, page: int, flags: int, secinfo_page: int = 1) -> int:
        """The enclave accepts a page: EENTER through the TCS at offset 0,
        EACCEPT with a SECINFO written into an RW page, EEXIT."""
        for p in (0, secinfo_page, page):
            vma = self.mmap(p, 1, 3)
            assert self.fault(vma, BASE + p * PAGE_SIZE) == NOPAGE
            if p == secinfo_page:
                si_vma = vma
        si_la = BASE + secinfo_page * PAGE_SIZE + 0x800
        self.d.sgx_vma_access(si_vma, si_la, bytearray(struct.pack("<Q", flags) + bytes(56)),
                              True)
        lp = self.cpu.lps[0]
        lp.cr3 = self.t.mm.pgtable
        self.cpu.eenter(lp, BASE, 0x1000)
        try:
            return self.cpu.eaccept(lp, si_la, BASE + page * PAGE_SIZE)
        finally:
            self.cpu.eexit(lp, 0x1000)
            lp.cr3 = None

    def sgx2(self, cmd, *fields):
        buf = bytearray(struct.pack(f"<{len(fields)}Q", *fields))
        return self.ioctl(cmd, buf), struct.unpack(f"<{len(fields)}Q", buf)

    def page(self, n):
        return self.encl.page_array[(BASE >> 12) + n]


@pytest.fixture(params=["linux-5.11", "linux-6.0"])
def env(request):
    return Env(request.param)


# -- dispatcher, CREATE --------------------------------------------------------------

def test_unknown_ioctl_and_busy(env):
    assert env.ioctl(0x1234, bytearray(8)) == ENOIOCTLCMD
    env.encl.set_bit(SGX_ENCL_IOCTL)  # another thread is inside an ioctl
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_CREATE, None) == errno.EBUSY
    env.encl.clear_bit(SGX_ENCL_IOCTL)
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_CREATE, None) == errno.EFAULT


def test_create_order_and_unwinding(env):
    free = env.d.sgx_nr_free_pages
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_CREATE, None) == errno.EFAULT
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_CREATE,
                     bytearray(struct.pack("<Q", 0x9000_0000))) == errno.EFAULT
    assert env.create(size=3 * PAGE_SIZE) == errno.EINVAL
    assert env.create(size=1 << 63, base=0) == errno.EINVAL  # shmem_file_setup
    assert env.create(base=BASE + PAGE_SIZE) == errno.EIO  # ECREATE #GP
    assert env.d.sgx_nr_free_pages == free and env.encl.page_cnt == 0
    assert env.encl.backing is None and env.encl.va_pages == []
    assert env.create() == 0
    assert env.d.sgx_nr_free_pages == free - 2
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_CREATE, None) == errno.EINVAL  # before the copy


# -- ADD_PAGES ----------------------------------------------------------------------

def test_add_pages_order(env):
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_ADD_PAGES, None) == errno.EINVAL  # not created
    assert env.create() == 0
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_ADD_PAGES, None) == errno.EFAULT
    bad_si = 0x9000_0000
    assert env.add(0, src=SRC + 8, secinfo=bad_si)[0] == errno.EINVAL  # src before secinfo
    for off, ln in [(8, PAGE_SIZE), (0, 0), (0, 100), (SIZE, PAGE_SIZE)]:
        assert env.add(off, length=ln, secinfo=bad_si)[0] == errno.EINVAL
    # A wrapping offset + length passes 5.11's and 6.0's check (6.1 added the
    # overflow test): the SECINFO copy decides.
    assert env.add((1 << 64) - PAGE_SIZE, length=2 * PAGE_SIZE, secinfo=bad_si)[0] == errno.EFAULT
    assert env.add(0, secinfo=bad_si)[0] == errno.EFAULT
    for flags in [0x001, REG << 8 | 2, TCS << 8 | 1, REG << 8 | 0xB, REG << 8 | 1 | 1 << 16,
                  TRIM << 8 | 1]:
        assert env.add(0, sflags=flags) == (errno.EINVAL, 0), hex(flags)
    assert env.encl.page_array == {}


def test_add_pages_source_rules(env):
    assert env.create() == 0
    mm = env.t.mm
    mm.vmas.append(Vma(mm, 0x2000_0000, 0x2000_1000, 0x70))  # PROT_NONE
    mm.vmas.append(Vma(mm, 0x3000_0000, 0x3000_1000, 0x31))  # RW, no VM_MAYEXEC
    free = env.d.sgx_nr_free_pages
    assert env.add(0, src=0x7FFF_0000_0000) == (errno.EFAULT, 0)  # no VMA above
    assert env.add(0, src=0x2000_0000) == (errno.EFAULT, 0)  # gup on PROT_NONE
    assert env.add(0, src=0x3000_0000) == (errno.EACCES, 0)  # noexec source
    # a hole below the noexec VMA: find_vma() gives that VMA, so EACCES wins
    assert env.add(0, src=0x2FFF_F000) == (errno.EACCES, 0)
    assert env.d.sgx_nr_free_pages == free and env.encl.secs_child_cnt == 0
    assert env.d.check_invariants() == []


def test_add_pages_duplicate_and_signals(env):
    assert env.create() == 0
    assert env.add(PAGE_SIZE) == (0, PAGE_SIZE)
    assert env.add(0, length=3 * PAGE_SIZE) == (errno.EBUSY, PAGE_SIZE)
    env.t.pending = True
    assert env.add(8 * PAGE_SIZE, length=2 * PAGE_SIZE) == (ERESTARTSYS, 0)
    env.t.pending = False
    orig = env.d.sgx_encl_add_page

    def then_signal(*a):
        orig(*a)
        env.t.pending = True

    env.d.sgx_encl_add_page = then_signal
    assert env.add(8 * PAGE_SIZE, length=3 * PAGE_SIZE) == (0, PAGE_SIZE)
    assert env.d.check_invariants() == []


def test_add_pages_vm_max_prot_bits(env):
    env.build(pages=[(2, 1), (3, 5), (4, 7)], init=False)
    assert env.page(0).vm_max_prot_bits == 3  # TCS: RW
    assert [env.page(i).vm_max_prot_bits for i in (2, 3, 4)] == [1, 5, 7]
    assert env.page(0).type == TCS and env.page(2).type == REG


# -- INIT, PROVISION ------------------------------------------------------------------

def test_init_order(env):
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_INIT, None) == errno.EINVAL
    env.build(init=False)
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_INIT, None) == errno.EFAULT
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_INIT,
                     bytearray(struct.pack("<Q", 0x9000_0000))) == errno.EFAULT
    assert env.init(vendor=0x1111) == errno.EINVAL
    assert env.init(attributes=1 << 3, attributes_mask=1 << 3) == errno.EINVAL
    assert env.init(miscselect=2, misc_mask=2) == errno.EINVAL
    assert env.init(xfrm=0x3 | 1 << 9, xfrm_mask=1 << 9) == errno.EINVAL
    assert env.init(enclavehash=bytes(32)) == errno.EPERM
    assert env.init(vendor=0x8086) == 0
    modulus = signing_key().public_key().public_numbers().n.to_bytes(384, "little")
    want = hashlib.sha256(modulus).digest()
    got = b"".join(env.cpu.rdmsr(MSR_IA32_SGXLEPUBKEYHASH0 + i).to_bytes(8, "little")
                   for i in range(4))
    assert got == want
    assert env.init() == errno.EINVAL


def test_init_attributes_need_permission(env):
    assert env.create(attributes=0x16) == 0  # PROVISIONKEY
    assert env.init() == errno.EACCES
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, bytearray(struct.pack("<Q", 9))) == \
        errno.EINVAL
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, bytearray(struct.pack("<Q", 3))) == \
        errno.EINVAL  # /dev/sgx_enclave is not /dev/sgx_provision
    env.t.files[4] = File(env.d.provision_fops)
    assert env.ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, bytearray(struct.pack("<Q", 4))) == 0
    assert env.init() == 0
    e2 = Env()
    assert e2.create(attributes=0x26) == 0  # EINITTOKENKEY: never allowed
    assert e2.init() == errno.EACCES


def test_init_unmasked_event_retry_and_signal(env):
    env.build(init=False)
    env.cpu.inject_unmasked_events(25)  # more than one spin round
    assert env.init() == 0
    assert env.cpu.pending_unmasked_events == 0
    e2 = Env()
    e2.build(init=False)
    e2.cpu.inject_unmasked_events(10 ** 6)
    assert e2.init() == errno.EPERM  # still pending after 50 x 20 tries
    assert 10 ** 6 - e2.cpu.pending_unmasked_events == 1000
    e2.t.pending = True
    assert e2.init() == ERESTARTSYS  # after the first spin round
    assert 10 ** 6 - e2.cpu.pending_unmasked_events == 1020


# -- SGX2 ioctls -------------------------------------------------------------------------

def test_sgx2_probe_paths():
    assert Env("linux-5.11").build().sgx2(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, 0, 0, 0)[0] == \
        ENOIOCTLCMD
    assert Env(sgx2=False).build().sgx2(uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, 0, 0, 0)[0] == \
        errno.ENODEV
    e = Env().build(init=False)
    assert e.ioctl(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, None) == errno.EINVAL  # not initialized
    assert e.init() == 0
    assert e.ioctl(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, None) == errno.EFAULT
    assert e.sgx2(uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, 0, 0, 0, 0, 0)[0] == errno.EINVAL


def test_restrict_permissions():
    e = Env().build(pages=[(2, 7), (3, 3)])
    cmd = uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS
    p = 2 * PAGE_SIZE
    assert e.sgx2(cmd, p, PAGE_SIZE, 8, 0, 0)[0] == errno.EINVAL
    assert e.sgx2(cmd, p, PAGE_SIZE, 2, 0, 0)[0] == errno.EINVAL
    assert e.sgx2(cmd, p, PAGE_SIZE, 1, 1, 0)[0] == errno.EINVAL
    assert e.sgx2(cmd, 0, PAGE_SIZE, 1, 0, 0) == (errno.EINVAL, (0, PAGE_SIZE, 1, 0, 0))
    assert e.sgx2(cmd, p, 2 * PAGE_SIZE, 1, 0, 0) == (0, (p, 2 * PAGE_SIZE, 1, 0, 2 * PAGE_SIZE))
    assert e.cpu.epc.epcm(e.page(2).epc_page.index).perms == 1
    assert e.page(2).vm_max_prot_bits == 7  # unchanged
    # an EAUGed page not yet EACCEPTed (PENDING): SGX_PAGE_NOT_MODIFIABLE in
    # result, -EFAULT, count = the pages done before it
    hole = e.mmap(4, 1, 3)
    assert e.fault(hole, BASE + 4 * PAGE_SIZE) == NOPAGE
    assert e.sgx2(cmd, 3 * PAGE_SIZE, 2 * PAGE_SIZE, 1, 0, 0) == (
        errno.EFAULT, (3 * PAGE_SIZE, 2 * PAGE_SIZE, 1, 20, PAGE_SIZE))
    assert e.sgx2(cmd, 5 * PAGE_SIZE, PAGE_SIZE, 1, 0, 0)[0] == errno.EFAULT  # no page


def test_modify_types_and_remove():
    e = Env().build(pages=[(2, 1), (3, 7), (4, 3)])
    mt, rm = uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES
    assert e.sgx2(mt, 2 * PAGE_SIZE, PAGE_SIZE, 0x100 | TCS, 0, 0)[0] == errno.EINVAL
    assert e.sgx2(mt, 2 * PAGE_SIZE, PAGE_SIZE, REG, 0, 0) == (
        errno.EINVAL, (2 * PAGE_SIZE, PAGE_SIZE, REG, 0, 0))
    assert e.sgx2(mt, 2 * PAGE_SIZE, PAGE_SIZE, TCS, 0, 0)[0] == errno.EPERM  # R only
    vma = e.mmap(3, 1, 7)
    assert e.fault(vma, BASE + 3 * PAGE_SIZE) == NOPAGE
    assert e.t.mm.pgtable.get((BASE >> 12) + 3)
    assert e.sgx2(mt, 3 * PAGE_SIZE, PAGE_SIZE, TCS, 0, 0) == (
        0, (3 * PAGE_SIZE, PAGE_SIZE, TCS, 0, PAGE_SIZE))
    assert not e.t.mm.pgtable.get((BASE >> 12) + 3)  # zapped
    assert (e.page(3).vm_max_prot_bits, e.page(3).type) == (3, TCS)
    assert e.fault(vma, BASE + 3 * PAGE_SIZE) == SIGBUS  # RWX VMA over an RW maximum
    assert e.sgx2(mt, 3 * PAGE_SIZE, PAGE_SIZE, TCS, 0, 0)[0] == errno.EINVAL  # TCS -> TCS
    # REMOVE: only TRIM pages, only after EACCEPT
    assert e.sgx2(rm, 4 * PAGE_SIZE, PAGE_SIZE, 0) == (errno.EPERM, (4 * PAGE_SIZE, PAGE_SIZE, 0))
    assert e.sgx2(mt, 4 * PAGE_SIZE, PAGE_SIZE, TRIM, 0, 0)[0] == 0
    assert e.sgx2(rm, 4 * PAGE_SIZE, PAGE_SIZE, 1)[0] == errno.EINVAL  # count set
    assert e.sgx2(rm, 4 * PAGE_SIZE, PAGE_SIZE, 0)[0] == errno.EPERM  # not accepted
    e.eaccept(4, TRIM << 8 | 0x10)
    pages, children = e.encl.page_cnt, e.encl.secs_child_cnt
    assert e.sgx2(rm, 4 * PAGE_SIZE, PAGE_SIZE, 0) == (0, (4 * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE))
    assert (BASE >> 12) + 4 not in e.encl.page_array
    assert (e.encl.page_cnt, e.encl.secs_child_cnt) == (pages - 1, children - 1)
    assert e.d.check_invariants() == []


# -- may_map, faults, access --------------------------------------------------------------

def test_may_map_rules(env):
    env.build(pages=[(2, 1), (3, 5)], init=False)
    assert env.mmap(2, 1, 3) == errno.EACCES
    assert env.mmap(2, 2, 5) == errno.EACCES
    assert not isinstance(env.mmap(3, 1, 5), int)
    assert not isinstance(env.mmap(8, 8, 7), int)  # holes: RWX is fine
    assert not isinstance(env.mmap(0, 1, 3), int)  # TCS: RW
    below = BASE - PAGE_SIZE
    assert not isinstance(env.mmap(0, 1, 1, addr=below), int)  # before INIT: anywhere
    assert env.init() == 0
    after = env.mmap(0, 1, 1, addr=below)
    assert (after == errno.EACCES) == (isinstance(env.d, SgxDriverSgx2))
    env.t.persona = READ_IMPLIES_EXEC
    assert env.mmap(8, 1, 1) == errno.EACCES


def test_mprotect_hook(env):
    env.build(pages=[(2, 3), (3, 1)])
    vma = env.mmap(2, 2, 1)
    with pytest.raises(OSError) as ei:
        env.d.sgx_vma_mprotect(vma, vma.vm_start, vma.vm_end, 3 | VM_SHARED_MAY)
    assert ei.value.errno == errno.EACCES and ei.value.why.rule == "sgx_encl_may_map"
    env.d.sgx_vma_mprotect(vma, vma.vm_start, vma.vm_start + PAGE_SIZE, 3)


def test_get_unmapped_area(env):
    with pytest.raises(OSError) as ei:
        env.d.sgx_get_unmapped_area(env.f, 0, PAGE_SIZE, 0, 0x02)
    assert ei.value.errno == errno.EINVAL
    assert env.d.sgx_get_unmapped_area(env.f, BASE, PAGE_SIZE, 0, 0x01 | 0x10) == BASE


def test_fault_results(env):
    env.build(pages=[(2, 1)], init=False)
    early = env.mmap(4, 1, 7)  # created before the page exists
    assert env.add(4 * PAGE_SIZE, sflags=REG << 8 | 1) == (0, PAGE_SIZE)
    assert env.fault(early, BASE + 4 * PAGE_SIZE) == SIGBUS  # RWX VMA, R page
    vma = env.mmap(2, 1, 1)
    assert env.fault(vma, BASE + 2 * PAGE_SIZE) == NOPAGE
    hole = env.mmap(9, 1, 3)
    assert env.fault(hole, BASE + 9 * PAGE_SIZE) == SIGBUS  # no entry, not initialized
    assert env.init() == 0
    sgx2 = isinstance(env.d, SgxDriverSgx2)
    assert env.fault(hole, BASE + 9 * PAGE_SIZE) == (NOPAGE if sgx2 else SIGBUS)
    if sgx2:
        page = env.page(9)
        assert (page.type, page.vm_max_prot_bits) == (REG, 7)
        assert env.cpu.epc.epcm(page.epc_page.index).pending
    vma.vm_private_data = None
    assert env.fault(vma, BASE + 2 * PAGE_SIZE) == SIGBUS
    assert env.d.check_invariants() == []


def test_eaug_needs_sgx2_cpu_and_elrange():
    e = Env(sgx2=False).build()
    hole = e.mmap(9, 1, 3)
    assert e.fault(hole, BASE + 9 * PAGE_SIZE) == SIGBUS
    e = Env().build(init=False)
    out = e.mmap(0, 1, 3, addr=BASE + SIZE)
    assert e.init() == 0
    assert e.fault(out, BASE + SIZE) == SIGBUS  # EAUG #GP outside ELRANGE
    assert e.d.check_invariants() == [] and (BASE + SIZE) >> 12 not in e.encl.page_array


def test_access(env):
    env.build(pages=[(2, 3)])
    vma = env.mmap(2, 1, 3)
    buf = bytearray(11)
    assert env.d.sgx_vma_access(vma, BASE + 2 * PAGE_SIZE + 3, buf, False) == 11
    assert buf == bytes([2]) * 11
    assert env.d.sgx_vma_access(vma, BASE + 2 * PAGE_SIZE + 5, bytearray(b"hey"), True) == 3
    buf = bytearray(8)
    env.d.sgx_vma_access(vma, BASE + 2 * PAGE_SIZE, buf, False)
    assert buf == bytes([2]) * 5 + b"hey"
    hole = env.mmap(9, 1, 3)
    assert env.d.sgx_vma_access(hole, BASE + 9 * PAGE_SIZE, bytearray(8), False) == -errno.EFAULT
    e2 = Env()
    assert e2.create(attributes=0x4) == 0  # not DEBUG
    assert e2.add(2 * PAGE_SIZE) == (0, PAGE_SIZE)
    v2 = e2.mmap(2, 1, 3)
    assert e2.d.sgx_vma_access(v2, BASE + 2 * PAGE_SIZE, bytearray(8), False) == -errno.EFAULT


# -- reclaim and teardown ----------------------------------------------------------------

def test_reclaim_round_trip(env):
    e = Env("linux-6.0", n=40) if isinstance(env.d, SgxDriverSgx2) else Env("linux-5.11", n=40)
    e.d.nr_low_pages, e.d.nr_high_pages = 4, 8
    e.build(pages=[(i, 3) for i in range(2, 50)])
    assert e.d.stats["ewb"] > 0 and e.cpu.stats["ewb"] == e.d.stats["ewb"]
    assert e.d.dmesg == []  # no EWB failed
    assert e.d.check_invariants() == []
    vma = e.mmap(0, 64, 3)
    for i in range(2, 50):
        assert e.fault(vma, BASE + i * PAGE_SIZE) == NOPAGE
        buf = bytearray(8)
        assert e.d.sgx_vma_access(vma, BASE + i * PAGE_SIZE, buf, False) == 8
        assert buf == bytes([i]) * 8, i
        assert e.d.check_invariants() == []
    assert e.d.stats["eldu"] > 0 and e.cpu.stats["eldu"] == e.d.stats["eldu"]
    # everything out, SECS last; a fault brings the SECS back first
    e.d.nr_high_pages = 1000
    e.d.ksgxd()
    assert e.encl.secs_child_cnt == 0 and e.encl.secs.epc_page is None
    assert e.fault(vma, BASE + 7 * PAGE_SIZE) == NOPAGE
    assert e.encl.secs.epc_page is not None and e.encl.secs_child_cnt == 1
    assert e.d.check_invariants() == []


def test_young_page_survives_a_scan():
    e = Env(n=64).build(pages=[(2, 3), (3, 3)])
    vma = e.mmap(2, 2, 3)
    for i in (2, 3):
        assert e.fault(vma, BASE + i * PAGE_SIZE) == NOPAGE
    vpn = (BASE >> 12) + 2
    e.t.mm.pgtable.set(vpn, e.t.mm.pgtable.get(vpn) | PTE_ACCESSED)  # the CPU set A
    e.d.nr_to_scan = 64
    e.d.sgx_reclaim_pages()
    assert e.page(2).epc_page is not None and e.page(3).epc_page is None
    assert e.t.mm.pgtable.get(vpn) and not e.t.mm.pgtable.get(vpn + 1)
    assert e.d.check_invariants() == []


def test_pcmd_pages_truncated_when_empty():
    e = Env(n=64).build(pages=[(2, 3)])
    e.d.nr_high_pages = 1000
    e.d.ksgxd()
    assert e.encl.backing  # contents, SECS and PCMD pages
    vma = e.mmap(0, 3, 3)
    for i in range(3):
        assert e.fault(vma, BASE + i * PAGE_SIZE) == NOPAGE
    # SECS contents and its PCMD slot stay until the SECS is reloaded; each
    # reloaded page dropped its contents page; the PCMD page went once empty
    assert sorted(e.encl.backing) == []


def test_teardown_frees_every_page(env):
    e = Env("linux-6.0", n=40) if isinstance(env.d, SgxDriverSgx2) else Env("linux-5.11", n=40)
    e.d.nr_low_pages, e.d.nr_high_pages = 4, 8
    frames = len(e.cpu.phys.frames)
    e.build(pages=[(i, 3) for i in range(2, 50)])
    vma = e.mmap(0, 4, 3)
    e.fault(vma, BASE + 2 * PAGE_SIZE)
    e.munmap(vma)
    e.d.sgx_release(None, e.f)  # last file reference
    assert e.d.sgx_nr_free_pages == 40 and e.d.encls == []
    assert e.encl.released and e.encl.backing is None
    assert not any(e.cpu.epc.is_valid(i) for i in range(40))
    assert len(e.cpu.phys.frames) <= frames + 1 + 49  # user pages only: backing freed
    assert e.d.check_invariants() == []


def test_mm_exit_drops_its_reference():
    e = Env().build()
    vma = e.mmap(0, 2, 3)
    assert len(e.encl.mm_list) == 1 and e.encl.refcount == 2
    e.munmap(vma)
    for notifier in list(e.t.mm.notifiers):
        notifier.release(e.t.mm)  # exit_mmap(): mmu_notifier_release
    assert e.encl.mm_list == [] and e.encl.refcount == 1
    e.d.sgx_release(None, e.f)
    assert e.d.sgx_nr_free_pages == 64


@pytest.mark.parametrize("missing", ["flc", "sgx1"])
def test_drv_init_needs_flc_and_sgx1(missing):
    cpu = Cpu(8)
    setattr(cpu, missing, False)
    k = FakeKernel(cpu)
    d = SgxDriverSgx2(k)
    with pytest.raises(OSError) as ei:
        d.sgx_drv_init()
    assert ei.value.errno == errno.ENODEV and k.devs == {}
    ok = FakeKernel(Cpu(8))
    SgxDriver(ok).sgx_drv_init()
    assert sorted(ok.devs) == ["/dev/sgx_enclave", "/dev/sgx_provision"]


def test_drv_init_reserved_masks():
    cpu = Cpu(8)
    cpu.attributes_valid, cpu.miscselect_valid, cpu.xfrm_valid = 0x36, 0x1, 0x7
    d = SgxDriver(FakeKernel(cpu))
    d.sgx_drv_init()
    assert d.sgx_attributes_reserved_mask & 0x36 == 0 and d.sgx_attributes_reserved_mask & 0x1
    assert d.sgx_attributes_reserved_mask & (1 << 10)  # AEX-notify reserved on 5.11/6.0
    assert d.sgx_misc_reserved_mask == (1 << 64) - 2
    assert d.sgx_xfrm_reserved_mask == ((1 << 64) - 1) & ~0x7


def test_reclaim_one_chosen_page():
    e = Env().build(pages=[(2, 3), (3, 3)])
    assert e.d.sgx_reclaim_page(e.page(3))
    assert e.page(3).epc_page is None and e.page(2).epc_page is not None
    assert not e.d.sgx_reclaim_page(e.page(3))  # not resident any more
    assert e.d.stats["ewb"] == 1 and e.d.check_invariants() == []
    vma = e.mmap(3, 1, 3)
    assert e.fault(vma, BASE + 3 * PAGE_SIZE) == NOPAGE  # ELDU
    buf = bytearray(8)
    assert e.d.sgx_vma_access(vma, BASE + 3 * PAGE_SIZE, buf, False) == 8
    assert buf == bytes([3]) * 8
