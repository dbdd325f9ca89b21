"""One SGX_IOC_ENCLAVE_ADD_PAGES of many pages is the same as one ioctl per
page: the same MRENCLAVE (also against a measurement fed EEXTEND by EEXTEND),
the same EPCM entries, page contents and driver state; a page that fails
midway stops the ioctl there with the same errno and the bytes added so far
written back, and leaves what page-by-page ioctls leave."""

from __future__ import annotations

import errno
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
    machine,
)

from sgxsim.hw import uapi
from sgxsim.hw.consts import PAGE_SIZE, secinfo_flags
from sgxsim.hw.measure import Measurement
from sgxsim.hw.structs import Tcs

SRC = 0x2000_0000  # the source mapping, away from the helpers' scratch area


def _contents(n: int) -> list[bytes]:
    return [bytes((7 * i + k) & 0xFF for k in range(64)) * (PAGE_SIZE // 64) for i in range(n)]


def _source(e: Encl, pages: list[bytes] | int, prot: int = PROT_READ | PROT_WRITE) -> int:
    """A private anonymous mapping of the pages (an int: that many pages, never touched)."""
    n = pages if isinstance(pages, int) else len(pages)
    src = e.proc.mmap(SRC, n * PAGE_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    if not isinstance(pages, int):
        for i, data in enumerate(pages):
            e.proc.poke(src + i * PAGE_SIZE, data)
    if prot != PROT_READ | PROT_WRITE:
        e.proc.mprotect(src, n * PAGE_SIZE, prot)
    return src


def _add(e: Encl, src: int, offset: int, length: int, sflags: int, measure: bool = True):
    si = e.put(struct.pack("<Q", sflags) + bytes(56))
    err, buf = e.ioctl(uapi.SGX_IOC_ENCLAVE_ADD_PAGES,
                       struct.pack("<6Q", src, offset, length, si, int(measure), 0))
    return err, struct.unpack_from("<6Q", buf)[5]


def _state(e: Encl) -> dict:
    """What the CPU and the driver hold for the enclave, EPC indices included."""
    cpu, drv, encl = e.m.cpu, e.drv, e.encl
    epc = cpu.epc
    st = next(iter(epc.secs_state.values()))
    return {
        "mrenclave": st.measurement.digest(), "updates": st.measurement.updates,
        "children": st.children, "epcm": [epc.epcm(i) for i in range(epc.npages)],
        "data": {i: bytes(d) for i, d in epc.data.items() if epc.is_valid(i)},
        "page_array": {k: (p.desc, p.vm_max_prot_bits, p.type, p.epc_page.index)
                       for k, p in encl.page_array.items()},
        "secs_child_cnt": encl.secs_child_cnt, "page_cnt": encl.page_cnt,
        "va_pages": [v.epc_page.index for v in encl.va_pages],
        "free": drv.sgx_nr_free_pages, "active": list(drv.sgx_active_page_list),
        "dmesg": list(drv.dmesg), "cpu_eadd": cpu.stats.get("eadd"),
    }


def _reference(size: int, pages: list[tuple[int, int, bytes | None]]) -> bytes:
    """MRENCLAVE record by record: one EADD, then sixteen single EEXTENDs."""
    m = Measurement()
    m.ecreate(size, 1)
    for offset, sflags, data in pages:
        m.eadd(offset, sflags & ~0x7 if sflags >> 8 == TCS else sflags)
        if data is not None:
            for k in range(0, PAGE_SIZE, 256):
                m.eextend(offset + k, data[k : k + 256])
    return m.digest()


def _pair(n: int, size_pages: int):
    made = []
    for _ in range(2):
        e = Encl(machine(epc_pages=n + 64), size=size_pages * PAGE_SIZE)
        assert e.create() == 0
        made.append(e)
    return made


@pytest.mark.parametrize("n,populated", [(48, True), (48, False), (256, True)])
def test_one_ioctl_of_many_pages_is_one_per_page(n, populated):
    # 256 measured pages are more than a measurement keeps records for (it
    # hashes them on the way): both ways of hashing meet the same digest.
    whole, each = _pair(n + 1, 512)
    data = _contents(n) if populated else [bytes(PAGE_SIZE)] * n
    sflags = secinfo_flags(REG, R | W | X)
    src = _source(whole, data if populated else n)
    assert _add(whole, src, 0, n * PAGE_SIZE, sflags) == (0, n * PAGE_SIZE)
    src = _source(each, data if populated else n)
    for i in range(n):
        assert _add(each, src + i * PAGE_SIZE, i * PAGE_SIZE, PAGE_SIZE, sflags) == (0, PAGE_SIZE)
    # A TCS and an unmeasured page after them, by the same two paths.
    tcs = Tcs(ossa=PAGE_SIZE, nssa=1, fslimit=0xFFF, gslimit=0xFFF, aep=0x55).pack()
    tflags = secinfo_flags(TCS, 0)
    for e in (whole, each):
        assert _add(e, e.put(tcs), n * PAGE_SIZE, PAGE_SIZE, tflags) == (0, PAGE_SIZE)
        assert _add(e, e.put(b"\x5a" * PAGE_SIZE), (n + 1) * PAGE_SIZE, PAGE_SIZE, sflags,
                    measure=False) == (0, PAGE_SIZE)
    got = _state(whole)
    assert got == _state(each)
    tcs_measured = Tcs.unpack(tcs).replace(aep=0).pack()
    assert got["mrenclave"] == _reference(512 * PAGE_SIZE, [
        *((i * PAGE_SIZE, sflags, data[i]) for i in range(n)),
        (n * PAGE_SIZE, tflags, tcs_measured), ((n + 1) * PAGE_SIZE, sflags, None)])
    assert [got["data"][got["page_array"][(whole.base >> 12) + i][3]] for i in range(n)] == data
    assert got["children"] == got["secs_child_cnt"] == n + 2
    secs_i = next(iter(whole.m.cpu.epc.secs_state))
    for i, (desc, vm_max, typ, epc_i) in enumerate(got["page_array"].values()):
        entry = got["epcm"][epc_i]
        assert desc == whole.base + i * PAGE_SIZE and entry.enclaveaddress == desc
        assert entry.valid and entry.enclavesecs == secs_i and not entry.pending
        assert (entry.pt, entry.perms, typ) == ((TCS, 0, TCS) if i == n else (REG, 7, REG))
        assert vm_max == (0x7 if i != n else 0x3)  # VM_READ|VM_WRITE|VM_EXEC; a TCS: RW


def _hole(e: Encl, src: int, at: int) -> None:
    e.proc.munmap(src + at * PAGE_SIZE, PAGE_SIZE)


def _prot_none(e: Encl, src: int, at: int) -> None:
    e.proc.mprotect(src + at * PAGE_SIZE, PAGE_SIZE, PROT_NONE)


def _added_before(e: Encl, src: int, at: int) -> None:
    # The enclave page the ioctl reaches at ``at`` is there already.
    assert _add(e, e.put(b"\1" * PAGE_SIZE), at * PAGE_SIZE, PAGE_SIZE,
                secinfo_flags(REG, R | W)) == (0, PAGE_SIZE)


@pytest.mark.parametrize("make,err", [(_hole, errno.EFAULT), (_prot_none, errno.EFAULT),
                                      (_added_before, errno.EBUSY)])
@pytest.mark.parametrize("at", [0, 5, 11])
def test_a_page_failing_midway(make, err, at):
    n = 12
    whole, each = _pair(n, 16)
    data = _contents(n)
    sflags = secinfo_flags(REG, R | W)
    for e in (whole, each):
        make(e, _source(e, data), at)
    e1, count = _add(whole, SRC, 0, n * PAGE_SIZE, sflags)
    assert (e1, count) == (err, at * PAGE_SIZE)
    for i in range(at):
        assert _add(each, SRC + i * PAGE_SIZE, i * PAGE_SIZE, PAGE_SIZE, sflags) == (0, PAGE_SIZE)
    assert _add(each, SRC + at * PAGE_SIZE, at * PAGE_SIZE, PAGE_SIZE, sflags) == (err, 0)
    got = _state(whole)
    assert got == _state(each)
    assert whole.drv.check_invariants() == []
    # What the failed ioctl added is measured and stays: the rest can follow.
    rest = (SRC + (at + 1) * PAGE_SIZE, (at + 1) * PAGE_SIZE, (n - at - 1) * PAGE_SIZE)
    if rest[2]:
        assert _add(whole, *rest, sflags) == (0, rest[2])
