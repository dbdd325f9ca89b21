"""Every ioctl error of linux-sgx-driver.md §2, in the driver's check order."""

from __future__ import annotations

import errno
import os
import pickle
import signal
import struct

import pytest
from sgx_helpers import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    REG,
    TCS,
    Encl,
    R,
    W,
    X,
    err_of,
    machine,
)

from sgxsim.hw import uapi
from sgxsim.hw.consts import MSR_IA32_SGXLEPUBKEYHASH0, PAGE_SIZE, Attribute, PageType
from sgxsim.kernel.sgx.encl import SGX_ENCL_IOCTL

UNMAPPED = 0x0800_0000  # below every VMA: no stack to grow into


@pytest.fixture(params=["linux-5.11", "linux-6.0", "linux-6.12"])
def kname(request):
    return request.param


def free_pages(m):
    return m.kernel.sgx.sgx_nr_free_pages


# -- dispatcher ------------------------------------------------------------------

def test_unknown_ioctl_is_enotty(kname):
    e = Encl(machine(kname))
    assert e.ioctl(0xC000A4FF, bytes(8))[0] == errno.ENOTTY
    # The sgx_vepc ioctl number is not this device's.
    assert e.ioctl(uapi.SGX_IOC_VEPC_REMOVE_ALL, b"")[0] == errno.ENOTTY


def test_ioctl_handlers_follow_overrides(kname):
    """sgx_ioctl() builds its table once per driver class, but the handler
    is the instance's: an override (here on the instance) is what runs, and
    a table whose entries are not the driver's own methods is asked anew."""
    e = Encl(machine(kname))
    drv = e.drv
    seen = []
    orig = drv.sgx_ioc_enclave_create
    drv.sgx_ioc_enclave_create = lambda encl, arg: seen.append("create") or orig(encl, arg)
    assert e.create() == 0 and seen == ["create"]

    class Odd(type(drv)):
        def sgx_ioctl_table(self):
            table = super().sgx_ioctl_table()
            table[uapi.SGX_IOC_ENCLAVE_PROVISION] = lambda encl, arg: seen.append("odd") or 0
            return table

    drv.__class__ = Odd
    assert e.ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, struct.pack("<Q", 0))[0] == 0
    assert seen == ["create", "odd"]
    assert e.ioctl(0xC000A4FF, bytes(8))[0] == errno.ENOTTY
    # A table set on this driver instance alone is asked, not its class's.
    drv.sgx_ioctl_table = lambda: {}
    assert e.ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, struct.pack("<Q", 0))[0] == errno.ENOTTY


def test_concurrent_ioctl_is_ebusy():
    """A second ioctl while one is running on the same enclave: -EBUSY."""
    e = Encl(machine())
    assert e.create() == 0
    seen = []
    drv = e.drv
    orig = drv.sgx_encl_add_page

    def add_page_and_race(*a, **kw):
        # Another thread of the process issues an ioctl meanwhile.
        seen.append(e.ioctl(uapi.SGX_IOC_ENCLAVE_INIT, struct.pack("<Q", 0))[0])
        return orig(*a, **kw)

    drv.sgx_encl_add_page = add_page_and_race
    assert e.add(0) == (0, PAGE_SIZE)
    assert seen == [errno.EBUSY]
    assert not e.encl.test_bit(SGX_ENCL_IOCTL)


# -- CREATE ------------------------------------------------------------------------

def test_create_errors_in_order(kname):
    m = machine(kname)
    e = Encl(m)
    nfree = free_pages(m)
    # 2. the argument itself unreadable
    assert err_of(e.proc.ioctl, e.fd, uapi.SGX_IOC_ENCLAVE_CREATE, UNMAPPED) == errno.EFAULT
    # 4. the SECS source unreadable
    assert e.ioctl(uapi.SGX_IOC_ENCLAVE_CREATE, struct.pack("<Q", UNMAPPED))[0] == errno.EFAULT
    # sgx_encl_create 1: size not a power of two
    bad = bytearray(e.secs())
    bad[0:8] = (3 * PAGE_SIZE).to_bytes(8, "little")
    assert e.create(bytes(bad)) == errno.EINVAL
    # ECREATE itself refuses a misaligned base: -EIO, and nothing leaks
    bad = bytearray(e.secs())
    bad[8:16] = (e.base + PAGE_SIZE).to_bytes(8, "little")
    assert e.create(bytes(bad)) == errno.EIO
    assert free_pages(m) == nfree
    assert e.encl.page_cnt == 0 and e.encl.va_pages == []
    assert e.create() == 0
    # 1. already created: EINVAL before the (bad) argument is read
    assert err_of(e.proc.ioctl, e.fd, uapi.SGX_IOC_ENCLAVE_CREATE, UNMAPPED) == errno.EINVAL
    assert free_pages(m) == nfree - 2  # the SECS and one VA page


def test_create_huge_size_backing_fails():
    e = Encl(machine())
    bad = bytearray(e.secs())
    bad[0:8] = (1 << 63).to_bytes(8, "little")
    assert e.create(bytes(bad)) == errno.EINVAL  # shmem_file_setup()


# -- ADD_PAGES -----------------------------------------------------------------------

def add_raw(e, src, offset, length, secinfo, flags=1):
    return e.ioctl(uapi.SGX_IOC_ENCLAVE_ADD_PAGES,
                   struct.pack("<6Q", src, offset, length, secinfo, flags, 0))


def test_add_pages_state_checks(kname):
    e = Encl(machine(kname))
    # 1. not created: EINVAL even with an unreadable argument
    assert err_of(e.proc.ioctl, e.fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, UNMAPPED) == errno.EINVAL
    e.build()
    assert e.add(2 * PAGE_SIZE)[0] == errno.EINVAL  # initialized


def test_add_pages_argument_checks_in_order(kname):
    e = Encl(machine(kname))
    assert e.create() == 0
    src = e.put(bytes(PAGE_SIZE))
    si = e.put(struct.pack("<Q", REG << 8 | R) + bytes(56))
    # 2. argument unreadable
    assert err_of(e.proc.ioctl, e.fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, UNMAPPED) == errno.EFAULT
    # 3. src unaligned wins over a bad SECINFO pointer (checked later)
    assert add_raw(e, src + 8, 0, PAGE_SIZE, UNMAPPED)[0] == errno.EINVAL
    # 4. sgx_validate_offset_length
    for off, ln in [(8, PAGE_SIZE), (0, 0), (0, 100), (e.size, PAGE_SIZE), (0, e.size + PAGE_SIZE)]:
        assert add_raw(e, src, off, ln, UNMAPPED)[0] == errno.EINVAL, (off, ln)
    # An offset + length that wraps: refused since 6.1; before, it passes and
    # the SECINFO copy (the next check) decides.
    wraps = add_raw(e, src, (1 << 64) - PAGE_SIZE, 2 * PAGE_SIZE, UNMAPPED)[0]
    assert wraps == (errno.EINVAL if kname == "linux-6.12" else errno.EFAULT)
    # 5. SECINFO unreadable
    assert add_raw(e, src, 0, PAGE_SIZE, UNMAPPED)[0] == errno.EFAULT
    # 6. sgx_validate_secinfo
    bad_flags = [
        PageType.PT_SECS << 8 | R,  # type neither REG nor TCS
        PageType.PT_TRIM << 8 | R,
        REG << 8 | W,  # W without R
        TCS << 8 | R,  # TCS with permissions
        REG << 8 | R | 0x8,  # PENDING is reserved here
        REG << 8 | R | (1 << 16),
    ]
    for f in bad_flags:
        si_bad = e.put(struct.pack("<Q", f) + bytes(56))
        assert add_raw(e, src, 0, PAGE_SIZE, si_bad)[0] == errno.EINVAL, hex(f)
    si_res = e.put(struct.pack("<Q", REG << 8 | R) + b"\x01" + bytes(55))
    assert add_raw(e, src, 0, PAGE_SIZE, si_res)[0] == errno.EINVAL
    # nothing was added by any of these
    assert e.encl.page_array == {}
    assert add_raw(e, src, 0, PAGE_SIZE, si)[0] == 0


def test_add_pages_source_checks(kname):
    m = machine(kname)
    e = Encl(m)
    assert e.create() == 0
    si = e.put(struct.pack("<Q", REG << 8 | R | W) + bytes(56))
    nfree = free_pages(m)
    # src in no VMA at all (above every mapping): find_vma() finds nothing
    e_, buf = add_raw(e, 0x7FFF_FFFF_F000, 0, PAGE_SIZE, si)
    assert e_ == errno.EFAULT and struct.unpack("<6Q", buf)[5] == 0
    # src PROT_NONE: get_user_pages() fails
    none = e.proc.mmap(0x2000_0000, PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    assert add_raw(e, none, 0, PAGE_SIZE, si)[0] == errno.EFAULT
    # src in a hole below a VMA: find_vma() returns the VMA above, gup fails
    assert add_raw(e, none - PAGE_SIZE, 0, PAGE_SIZE, si)[0] == errno.EFAULT
    # every failure undid its allocations
    assert free_pages(m) == nfree
    assert e.encl.page_array == {} and e.encl.secs_child_cnt == 0


def test_add_pages_duplicate_is_ebusy_with_partial_count(kname):
    e = Encl(machine(kname))
    assert e.create() == 0
    assert e.add(PAGE_SIZE) == (0, PAGE_SIZE)
    # [0, 3 pages): page 0 goes in, page 1 exists
    assert e.add(0, length=3 * PAGE_SIZE) == (errno.EBUSY, PAGE_SIZE)
    assert sorted(e.encl.page_array) == [(e.base >> 12), (e.base >> 12) + 1]


def test_add_pages_signal_before_first_page_is_eintr(kname):
    e = Encl(machine(kname))
    assert e.create() == 0
    caught = []
    e.proc.sigaction(signal.SIGUSR1, caught.append)  # a handler: the process lives on
    e.proc.kill(signal.SIGUSR1)
    assert e.add(0, length=2 * PAGE_SIZE) == (errno.EINTR, 0)
    assert e.encl.page_array == {}
    assert caught == [signal.SIGUSR1] and not e.proc.pending_signals  # delivered on return


def test_add_pages_signal_after_first_page_is_partial_success(kname):
    e = Encl(machine(kname))
    assert e.create() == 0
    drv = e.drv
    orig = drv.sgx_encl_add_page
    calls = []

    def add_then_signal(*a, **kw):
        orig(*a, **kw)
        calls.append(1)
        if len(calls) == 1:
            e.proc.kill(signal.SIGUSR1)  # arrives while the ioctl runs

    drv.sgx_encl_add_page = add_then_signal
    caught = []
    e.proc.sigaction(signal.SIGUSR1, caught.append)
    assert e.add(0, length=3 * PAGE_SIZE) == (0, PAGE_SIZE)
    assert len(calls) == 1
    assert caught == [signal.SIGUSR1]


def test_add_pages_measure_flag_changes_mrenclave(kname):
    a, b = Encl(machine(kname)), Encl(machine(kname))
    for x, measure in ((a, True), (b, False)):
        x.build(init=False)
        assert x.add(2 * PAGE_SIZE, b"\x01" * PAGE_SIZE, measure=measure) == (0, PAGE_SIZE)
        assert x.init() == 0  # our prediction matched the CPU's MRENCLAVE
    assert a.meas.digest() != b.meas.digest()


# -- INIT ----------------------------------------------------------------------------

def test_init_state_and_copy_errors(kname):
    e = Encl(machine(kname))
    assert err_of(e.proc.ioctl, e.fd, uapi.SGX_IOC_ENCLAVE_INIT, UNMAPPED) == errno.EINVAL
    e.build(init=False)
    assert err_of(e.proc.ioctl, e.fd, uapi.SGX_IOC_ENCLAVE_INIT, UNMAPPED) == errno.EFAULT
    assert e.ioctl(uapi.SGX_IOC_ENCLAVE_INIT, struct.pack("<Q", UNMAPPED))[0] == errno.EFAULT
    assert e.init(e.sigstruct(vendor=0x1234)) == errno.EINVAL
    assert e.init(e.sigstruct(vendor=0x8086)) == 0
    assert e.init() == errno.EINVAL  # already initialized


def test_init_wrong_measurement_is_eperm(kname):
    e = Encl(machine(kname))
    e.build(init=False)
    assert e.init(e.sigstruct(mrenclave=bytes(32))) == errno.EPERM
    assert not e.encl.initialized
    assert e.init() == 0


def test_init_writes_mrsigner_into_launch_msrs(kname):
    import hashlib

    from sgxsim.hw.structs import Sigstruct
    e = Encl(machine(kname))
    e.build(init=False)
    sig = e.sigstruct()
    assert e.init(sig) == 0
    mrsigner = hashlib.sha256(Sigstruct.unpack(sig).modulus).digest()
    cpu = e.m.cpu
    got = b"".join(cpu.rdmsr(MSR_IA32_SGXLEPUBKEYHASH0 + i).to_bytes(8, "little")
                   for i in range(4))
    assert got == mrsigner


def test_init_provisionkey_needs_provision_ioctl(kname):
    m = machine(kname)
    attrs = Attribute.MODE64BIT | Attribute.DEBUG | Attribute.PROVISIONKEY
    e = Encl(m, attributes=attrs)
    e.build(init=False)
    assert e.init() == errno.EACCES
    pfd = e.proc.open("/dev/sgx_provision", os.O_RDWR)
    assert e.ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, struct.pack("<Q", pfd))[0] == 0
    assert e.init() == 0


def test_init_einittokenkey_is_always_eacces(kname):
    e = Encl(machine(kname), attributes=Attribute.MODE64BIT | Attribute.EINITTOKENKEY)
    e.build(init=False)
    assert e.init() == errno.EACCES


def test_init_reserved_attributes_enforced_by_sigstruct_is_einval(kname):
    e = Encl(machine(kname))
    e.build(init=False)
    sig = e.sigstruct(attributes=e.attributes | (1 << 3), attributes_mask=(1 << 64) - 1)
    assert e.init(sig) == errno.EINVAL


def test_init_retries_unmasked_event(kname):
    """EINIT interrupted (SGX_UNMASKED_EVENT) is retried; a pending signal
    between the sleeping rounds gives -ERESTARTSYS (EINTR)."""
    e = Encl(machine(kname))
    e.build(init=False)
    cpu = e.m.cpu
    cpu.inject_unmasked_events(5)
    assert e.init() == 0
    e2 = Encl(machine(kname))
    e2.build(init=False)
    e2.m.cpu.inject_unmasked_events(10_000)
    e2.proc.sigaction(signal.SIGUSR1, lambda signo: None)
    e2.proc.kill(signal.SIGUSR1)
    assert e2.init() == errno.EINTR
    assert not e2.encl.initialized


# -- PROVISION -----------------------------------------------------------------------

def test_provision_checks(kname):
    e = Encl(machine(kname))
    assert err_of(e.proc.ioctl, e.fd, uapi.SGX_IOC_ENCLAVE_PROVISION, UNMAPPED) == errno.EFAULT
    assert e.ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, struct.pack("<Q", 999))[0] == errno.EINVAL
    assert e.ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, struct.pack("<Q", e.fd))[0] == errno.EINVAL
    pfd = e.proc.open("/dev/sgx_provision", os.O_RDWR)
    # Works before CREATE: no state check.
    assert e.ioctl(uapi.SGX_IOC_ENCLAVE_PROVISION, struct.pack("<Q", pfd))[0] == 0
    assert e.encl.attributes_mask & Attribute.PROVISIONKEY


# -- SGX2 ----------------------------------------------------------------------------

RESTRICT = "SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS"
MODIFY = "SGX_IOC_ENCLAVE_MODIFY_TYPES"
REMOVE = "SGX_IOC_ENCLAVE_REMOVE_PAGES"
SGX2_FIELDS = {RESTRICT: 5, MODIFY: 5, REMOVE: 3}


@pytest.mark.parametrize("name", [RESTRICT, MODIFY, REMOVE])
def test_sgx2_probe(name):
    """The selftests' probe: a zeroed struct gives ENOTTY (5.11), ENODEV (SGX1
    CPU) or EINVAL (supported)."""
    n = SGX2_FIELDS[name]
    cmd = getattr(uapi, name)
    cases = [("linux-5.11", True, errno.ENOTTY), ("linux-6.0", False, errno.ENODEV),
             ("linux-6.0", True, errno.EINVAL)]
    for kname, sgx2, want in cases:
        e = Encl(machine(kname, sgx2=sgx2)).build()
        assert e.sgx2(cmd, *[0] * n)[0] == want, (kname, sgx2)


@pytest.mark.parametrize("name", [RESTRICT, MODIFY, REMOVE])
def test_sgx2_ready_before_copy(name):
    cmd = getattr(uapi, name)
    e = Encl(machine(sgx2=False)).build()
    assert err_of(e.proc.ioctl, e.fd, cmd, UNMAPPED) == errno.ENODEV
    e = Encl(machine()).build(init=False)
    assert err_of(e.proc.ioctl, e.fd, cmd, UNMAPPED) == errno.EINVAL  # not initialized
    assert e.init() == 0
    assert err_of(e.proc.ioctl, e.fd, cmd, UNMAPPED) == errno.EFAULT


def test_restrict_permissions_checks():
    e = Encl(machine()).build([(2 * PAGE_SIZE, R | W | X)])
    cmd = uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS
    off = 2 * PAGE_SIZE
    assert e.sgx2(cmd, off + 8, PAGE_SIZE, R, 0, 0)[0] == errno.EINVAL  # offset
    assert e.sgx2(cmd, off, PAGE_SIZE, 0x8, 0, 0)[0] == errno.EINVAL  # beyond RWX
    assert e.sgx2(cmd, off, PAGE_SIZE, W, 0, 0)[0] == errno.EINVAL  # W without R
    assert e.sgx2(cmd, off, PAGE_SIZE, R, 1, 0)[0] == errno.EINVAL  # result set
    assert e.sgx2(cmd, off, PAGE_SIZE, R, 0, 1)[0] == errno.EINVAL  # count set
    # TCS page: -EINVAL from the loop, count 0
    assert e.sgx2(cmd, 0, PAGE_SIZE, R, 0, 0) == (errno.EINVAL, (0, PAGE_SIZE, R, 0, 0))
    # no page at offset: -EFAULT with the count of pages done
    assert e.sgx2(cmd, off, 2 * PAGE_SIZE, R, 0, 0) == (
        errno.EFAULT, (off, 2 * PAGE_SIZE, R, 0, PAGE_SIZE))
    # restricting to nothing is allowed
    assert e.sgx2(cmd, PAGE_SIZE, PAGE_SIZE, 0, 0, 0) == (0, (PAGE_SIZE, PAGE_SIZE, 0, 0,
                                                              PAGE_SIZE))
    # vm_max_prot_bits is left alone
    assert e.encl.page_array[(e.base + off) >> 12].vm_max_prot_bits == 7


def test_restrict_permissions_emodpr_error_in_result():
    """EMODPR on an EAUGed page the enclave has not EACCEPTed (PENDING):
    SGX_PAGE_NOT_MODIFIABLE in result, -EFAULT, count = the pages before it."""
    e = Encl(machine()).build([(2 * PAGE_SIZE, R | W)])
    cmd = uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS
    a = e.mmap(3 * PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE)
    e.proc.peek(a, 1)  # EAUG on first touch
    err, (_, _, _, result, count) = e.sgx2(cmd, 2 * PAGE_SIZE, 2 * PAGE_SIZE, R, 0, 0)
    assert (err, result, count) == (errno.EFAULT, 20, PAGE_SIZE)


def test_modify_types_checks():
    e = Encl(machine()).build([(2 * PAGE_SIZE, R), (3 * PAGE_SIZE, R | W | X)])
    cmd = uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES
    assert e.sgx2(cmd, 2 * PAGE_SIZE, PAGE_SIZE, 0x104, 0, 0)[0] == errno.EINVAL  # > 0xff
    assert e.sgx2(cmd, 2 * PAGE_SIZE, PAGE_SIZE, PageType.PT_TRIM, 0, 1)[0] == errno.EINVAL
    # REG is not a target type: EINVAL before the loop, count 0 written back
    assert e.sgx2(cmd, 2 * PAGE_SIZE, PAGE_SIZE, REG, 0, 0) == (
        errno.EINVAL, (2 * PAGE_SIZE, PAGE_SIZE, REG, 0, 0))
    # REG -> TCS needs a page vetted RW
    assert e.sgx2(cmd, 2 * PAGE_SIZE, PAGE_SIZE, TCS, 0, 0)[0] == errno.EPERM
    assert e.encl.page_array[(e.base >> 12) + 2].vm_max_prot_bits == 1
    # REG(RWX) -> TCS: vm_max becomes RW
    assert e.sgx2(cmd, 3 * PAGE_SIZE, PAGE_SIZE, TCS, 0, 0) == (
        0, (3 * PAGE_SIZE, PAGE_SIZE, TCS, 0, PAGE_SIZE))
    page = e.encl.page_array[(e.base >> 12) + 3]
    assert (page.vm_max_prot_bits, page.type) == (3, TCS)
    # TCS -> TCS is not allowed
    assert e.sgx2(cmd, 0, PAGE_SIZE, TCS, 0, 0)[0] == errno.EINVAL
    # TCS -> TRIM is; the page is then TRIM
    assert e.sgx2(cmd, 0, PAGE_SIZE, PageType.PT_TRIM, 0, 0)[0] == 0
    assert e.encl.page_array[e.base >> 12].type == PageType.PT_TRIM


def test_remove_pages_checks():
    m = machine()
    e = Encl(m).build([(2 * PAGE_SIZE, R | W)])
    cmd = uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES
    assert e.sgx2(cmd, 2 * PAGE_SIZE, PAGE_SIZE, 1)[0] == errno.EINVAL  # count set
    assert e.sgx2(cmd, 2 * PAGE_SIZE, PAGE_SIZE, 0) == (errno.EPERM, (2 * PAGE_SIZE,
                                                                      PAGE_SIZE, 0))
    # Trimmed but not accepted: the EMODPR probe returns PAGE_NOT_MODIFIABLE
    mt = uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES
    assert e.sgx2(mt, 2 * PAGE_SIZE, PAGE_SIZE, PageType.PT_TRIM, 0, 0)[0] == 0
    assert e.sgx2(cmd, 2 * PAGE_SIZE, PAGE_SIZE, 0) == (errno.EPERM, (2 * PAGE_SIZE,
                                                                      PAGE_SIZE, 0))
    # missing page: EFAULT
    assert e.sgx2(cmd, 4 * PAGE_SIZE, PAGE_SIZE, 0)[0] == errno.EFAULT


def test_sgx2_result_not_written_on_early_einval():
    e = Encl(machine()).build()
    buf = bytearray(struct.pack("<5Q", 8, PAGE_SIZE, R, 0, 0))
    assert err_of(e.proc.ioctl, e.fd, uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, buf) == \
        errno.EINVAL
    assert struct.unpack("<5Q", buf) == (8, PAGE_SIZE, R, 0, 0)



def test_a_faulting_leaf_says_what_the_cpu_refused(kname):
    """ECREATE's #GP on a misaligned base: -EIO, and the error names the
    CPU's check (the fault travels in encls()'s return value, as an int)."""
    e = Encl(machine(kname))
    bad = bytearray(e.secs())
    bad[8:16] = (e.base + PAGE_SIZE).to_bytes(8, "little")
    src = e.put(bytes(bad))
    with pytest.raises(OSError) as info:
        e.proc.ioctl(e.fd, uapi.SGX_IOC_ENCLAVE_CREATE, bytearray(struct.pack("<Q", src)))
    text = str(info.value)
    assert info.value.errno == errno.EIO and "ECREATE returned 0x4000000d" in text
    assert "hw:" in text and "#GP" in text, text


def test_encls_keeps_the_fault_in_its_int():
    from sgxsim.hw.faults import GeneralProtection
    from sgxsim.kernel.sgx.encls import encls, encls_failed, encls_faulted, encls_trapnr, encls_why

    def leaf():
        raise GeneralProtection(("ECREATE", "SECS.BASEADDR not aligned to SECS.SIZE"))

    ret = encls(leaf)
    assert ret == 0x4000000D and encls_faulted(ret) and encls_failed(ret) and encls_trapnr(ret) == 13
    assert "SECS.BASEADDR not aligned" in encls_why(ret)
    again = pickle.loads(pickle.dumps(ret))
    assert again == ret and encls_why(again) == encls_why(ret)
    assert encls_why(16) == "SGX_INVALID_EINITTOKEN" and encls_why(0x7777) == "0x7777"
