"""ENCLS leaves: one test per documented failure (sgx-hardware.md §4.1-§4.14)."""

from __future__ import annotations

import pytest
from tests.hw.leafkit import BASE, REG, RW, RWX, TCS, TRIM, Kit, epa

from sgxsim.hw import sigstruct as S
from sgxsim.hw.consts import PAGE_SIZE, SgxReturn
from sgxsim.hw.faults import GeneralProtection, PageFault
from sgxsim.hw.memory import EPC_BASE
from sgxsim.hw.structs import Pageinfo, Secs, Sigstruct

GP, PF = GeneralProtection, PageFault
R = SgxReturn


# -- ECREATE ------------------------------------------------------------------------------
@pytest.mark.parametrize("change,exc", [
    ({"size": 0x1000}, GP),            # below 8 KiB
    ({"size": 0x3000}, GP),            # not a power of two
    ({"base": BASE + 0x1000}, GP),     # not naturally aligned
    ({"xfrm": 1}, GP),                 # x87|SSE required
    ({"xfrm": 0x3 | 1 << 9}, GP),      # unsupported XFRM bit
    ({"ssa": 0}, GP),                  # SSA frame too small
    ({"attributes": 0x5}, GP),         # INIT set in the input
    ({"attributes": 0x4 | 1 << 3}, GP),  # reserved attribute
    ({"miscselect": 0x2}, GP),         # unsupported MISCSELECT
    ({"base": 1 << 47}, GP),           # non-canonical base
    ({"size": 1 << 40, "base": 0}, GP),  # above the CPU's maximum size
    ({"config_svn": 1}, GP),           # CONFIGSVN without KSS
])
def test_ecreate_secs_checks(change, exc):
    k = Kit()
    with pytest.raises(exc):
        k.ecreate(**change)
    assert not k.cpu.epc.is_valid(0)


def test_ecreate_operand_checks():
    k = Kit()
    src = k.frame(Secs(size=0x8000, base=BASE, ssa_frame_size=1, attributes=4, xfrm=3).pack())
    good = k.pageinfo(srcpge=src, secinfo=k.secinfo(0))
    with pytest.raises(GP):
        k.cpu.ecreate(good + 8, EPC_BASE)  # PAGEINFO misaligned
    with pytest.raises(GP):
        k.cpu.ecreate(good, EPC_BASE + 8)  # RCX misaligned
    with pytest.raises(PF) as e:
        k.cpu.ecreate(good, k.frame())  # RCX not in the EPC
    assert e.value.error_code & 0x8000
    with pytest.raises(GP):
        k.cpu.ecreate(k.pageinfo(linaddr=BASE, srcpge=src, secinfo=k.secinfo(0)), EPC_BASE)
    with pytest.raises(GP):
        k.cpu.ecreate(k.pageinfo(srcpge=src, secinfo=k.secinfo(REG)), EPC_BASE)  # PT not SECS
    with pytest.raises(PF):
        k.cpu.ecreate(k.pageinfo(srcpge=0x7000_0000, secinfo=k.secinfo(0)), EPC_BASE)  # unmapped
    k.cpu.ecreate(k.pageinfo(srcpge=src, secinfo=k.secinfo(0)), EPC_BASE)
    with pytest.raises(PF):  # EPCM(RCX).VALID
        k.cpu.ecreate(k.pageinfo(srcpge=src, secinfo=k.secinfo(0)), EPC_BASE)


# -- EADD / EEXTEND ----------------------------------------------------------------------------
def test_eadd_checks_in_order():
    k = Kit()
    k.ecreate()
    src = k.frame()
    secs = epa(0)
    with pytest.raises(GP):  # SECINFO PT neither REG nor TCS (before EPCM(RCX).VALID)
        k.cpu.eadd(k.pageinfo(BASE, src, k.secinfo(TRIM), secs), epa(0))
    with pytest.raises(PF):  # target already valid (the SECS itself)
        k.cpu.eadd(k.pageinfo(BASE, src, k.secinfo(REG | RW), secs), epa(0))
    with pytest.raises(PF):  # SECS operand is not a SECS page
        k.cpu.eadd(k.pageinfo(BASE, src, k.secinfo(REG | RW), epa(5)), epa(1))
    with pytest.raises(GP):  # outside ELRANGE
        k.cpu.eadd(k.pageinfo(BASE + 0x8000, src, k.secinfo(REG | RW), secs), epa(1))
    with pytest.raises(GP):  # reserved SECINFO bit (PENDING treated as reserved)
        k.cpu.eadd(k.pageinfo(BASE, src, k.secinfo(REG | RW | 0x8), secs), epa(1))
    with pytest.raises(GP):  # TCS reserved area non-zero
        k.cpu.eadd(k.pageinfo(BASE, k.frame(b"\0" * 72 + b"\1" + bytes(4023)),
                              k.secinfo(TCS), secs), epa(1))
    assert k.cpu.epc.secs_state[0].children == 0


def test_eadd_operands_outside_ram():
    # PAGEINFO and SECINFO are read straight from their RAM frame; an operand
    # in no frame goes through the kernel read: #PF where nothing is mapped,
    # the abort page (all ones, so misaligned: #GP) in the EPC.
    k = Kit()
    k.ecreate()
    src, secs = k.frame(), epa(0)
    with pytest.raises(PF):  # PAGEINFO unmapped
        k.cpu.eadd(0x7000_0000, epa(1))
    with pytest.raises(GP):  # PAGEINFO in the EPC: reads 0xFF..., SRCPGE misaligned
        k.cpu.eadd(epa(3), epa(1))
    with pytest.raises(PF):  # SECINFO unmapped
        k.cpu.eadd(k.pageinfo(BASE, src, 0x7000_0040, secs), epa(1))
    with pytest.raises(GP):  # SECINFO in the EPC: FLAGS all ones, reserved bits set
        k.cpu.eadd(k.pageinfo(BASE, src, epa(3), secs), epa(1))
    with pytest.raises(PF):  # SRCPGE unmapped
        k.cpu.eadd(k.pageinfo(BASE, 0x7000_0000, k.secinfo(REG | RW), secs), epa(1))
    assert k.cpu.epc.secs_state[0].children == 0
    # SRCPGE in the EPC: the abort page is what gets added.
    k.cpu.eadd(k.pageinfo(BASE, epa(3), k.secinfo(REG | RW), secs), epa(1))
    assert bytes(k.cpu.epc.data[1]) == b"\xff" * PAGE_SIZE


def test_eadd_operand_faults_name_the_operand():
    # EADD reads its operands in place; each refusal is the fault of its
    # step, naming the operand, in the SDM's order.
    k = Kit(epc_pages=8)
    k.ecreate()
    src, secs, ram = k.frame(), epa(0), k.frame()
    ok = dict(linaddr=BASE, srcpge=src, secinfo=k.secinfo(REG | RW), secs=secs)

    def fault(pageinfo, rcx):
        with pytest.raises((GP, PF)) as e:
            k.cpu.eadd(pageinfo, rcx)
        return type(e.value), getattr(e.value, "addr", None), e.value.why.detail

    last = epa(0) + 8 * PAGE_SIZE  # one page past the EPC
    assert fault(k.pageinfo(**ok) + 16, epa(1)) == (GP, None, "PAGEINFO or RCX misaligned")
    assert fault(k.pageinfo(**ok), ram) == (PF, ram, f"RCX {ram:#x} is not in the EPC")
    assert fault(k.pageinfo(**ok), last) == (PF, last, f"RCX {last:#x} is not in the EPC")
    for field, bad in (("srcpge", src + 8), ("secs", secs + 0x100), ("linaddr", BASE + 1),
                       ("secinfo", k.secinfo(REG | RW) + 32)):
        assert fault(k.pageinfo(**{**ok, field: bad}), epa(1))[::2] == (
            GP, "SRCPGE, SECS, SECINFO or LINADDR misaligned")
    for bad in (ram, last):
        assert fault(k.pageinfo(**{**ok, "secs": bad}), epa(1)) == (
            PF, bad, f"PAGEINFO.SECS {bad:#x} is not in the EPC")
    k.cpu.phys.write(k.secinfo_pa + 8, b"\1")  # a reserved SECINFO byte
    assert fault(k.pageinfo(**ok), epa(1))[::2] == (GP, "SECINFO reserved bits set (flags 0x203)")
    assert k.cpu.epc.secs_state[0].children == 0 and not k.cpu.epc.is_valid(1)
    k.cpu.eadd(k.pageinfo(**{**ok, "secinfo": k.secinfo(REG | RW)}), epa(1))
    assert k.cpu.epc.epcm(1)[:5] == (True, True, True, False, REG >> 8)


def test_tcs_is_measured_with_rwx_cleared_and_fields_reset():
    k = Kit()
    k.ecreate()
    data = bytearray(PAGE_SIZE)
    data[8] = 1  # DBGOPTIN
    data[40:48] = (0x1234).to_bytes(8, "little")  # AEP
    i = k.eadd(0, TCS | RWX, bytes(data), measure=False)
    e = k.cpu.epc.epcm(i)
    assert (e.r, e.w, e.x, e.pt) == (False, False, False, 1)
    page = k.cpu.epc.page(i)
    assert page[8] == 0 and not any(page[40:48])
    from sgxsim.hw.measure import Measurement

    m = Measurement()
    m.ecreate(0x8000, 1)
    m.eadd(0, TCS)
    assert k.cpu.epc.secs_state[0].measurement.digest() == m.digest()


def test_eadd_and_eextend_after_einit_are_gp():
    k = Kit().standard(init=True)
    with pytest.raises(GP):
        k.eadd(5 * PAGE_SIZE, REG | RW)
    with pytest.raises(GP):
        k.cpu.eextend(epa(k.secs_i), epa(k.data_i[0]))


def test_eextend_checks():
    k = Kit()
    k.ecreate()
    i = k.eadd(0, REG | RW, measure=False)
    with pytest.raises(GP):
        k.cpu.eextend(epa(0) + 8, epa(i))
    with pytest.raises(GP):
        k.cpu.eextend(epa(0), epa(i) + 8)
    with pytest.raises(PF):
        k.cpu.eextend(epa(0), epa(20))  # not a valid REG/TCS page
    with pytest.raises(PF):
        k.cpu.eextend(epa(0), k.frame())  # not EPC
    k2 = Kit()
    k2.ecreate()
    k2.ecreate(base=BASE + 0x8000)  # second enclave at EPC 1
    j = k2.eadd(0, REG | RW, measure=False)
    with pytest.raises(GP):  # RBX is not the page's SECS
        k2.cpu.eextend(epa(0), epa(j))


# -- EINIT -------------------------------------------------------------------------------------
def _vector_enclave(d):
    k = Kit()
    data = (d / "encl.bin").read_bytes()
    k.ecreate(size=0x8000)
    for i in range(6):
        k.eadd(i * PAGE_SIZE, TCS if i == 0 else REG | RWX, data[i * 4096 : (i + 1) * 4096])
    raw = (d / "encl.ss").read_bytes()
    return k, raw


def _einit(k, raw):
    return k.cpu.einit(k.frame(raw + bytes(PAGE_SIZE - len(raw))), epa(k.secs_i), k.frame())


def test_einit_enarx_vector(enarx_vector):
    k, raw = _vector_enclave(enarx_vector)
    st = k.cpu.epc.secs_state[k.secs_i]
    assert st.measurement.digest().hex().startswith("b999536238fcf4e9")
    assert _einit(k, raw) == R.SGX_INVALID_EINITTOKEN  # launch MSRs still Intel's
    k.set_lehash(S.mrsigner(Sigstruct.unpack(raw)))
    assert _einit(k, raw) == 0
    assert st.initialized and st.mrsigner.hex().startswith("2f9f8fd4")
    with pytest.raises(GP):  # already initialised
        _einit(k, raw)


@pytest.mark.parametrize("what,code", [
    ("signature", R.SGX_INVALID_SIGNATURE),
    ("page", R.SGX_INVALID_MEASUREMENT),
    ("msr", R.SGX_INVALID_EINITTOKEN),
    ("header", R.SGX_INVALID_SIG_STRUCT),
])
def test_einit_enarx_vector_one_byte_off(enarx_vector, what, code):
    d = enarx_vector
    data = bytearray((d / "encl.bin").read_bytes())
    raw = bytearray((d / "encl.ss").read_bytes())
    if what == "signature":
        raw[600] ^= 1
    elif what == "page":
        data[3 * 4096 + 100] ^= 1
    elif what == "header":
        raw[3] ^= 1
    k = Kit()
    k.ecreate(size=0x8000)
    for i in range(6):
        k.eadd(i * PAGE_SIZE, TCS if i == 0 else REG | RWX, bytes(data[i * 4096 : (i + 1) * 4096]))
    lehash = bytearray(S.mrsigner(Sigstruct.unpack(bytes(raw))))
    if what == "msr":
        lehash[0] ^= 1
    k.set_lehash(bytes(lehash))
    assert _einit(k, bytes(raw)) == code
    assert not k.cpu.epc.secs_state[k.secs_i].initialized


def test_einit_attribute_masks_and_unmasked_events():
    k = Kit().standard(init=False)
    assert k.einit(attributes=0x6, attributes_mask=0x2) == R.SGX_INVALID_ATTRIBUTE
    assert k.einit(misc_mask=1, miscselect=1) == R.SGX_INVALID_ATTRIBUTE
    k.cpu.inject_unmasked_events(2)
    assert k.einit() == R.SGX_UNMASKED_EVENT
    assert k.einit() == R.SGX_UNMASKED_EVENT
    assert k.einit() == 0


def test_einittokenkey_is_controlled():
    k = Kit()
    k.ecreate(attributes=0x4 | 0x20)
    k.eadd(0, REG | RW)
    mr = k.cpu.epc.secs_state[0].measurement.digest()
    sig = S.sign(S.build(mr), Kit.key())
    k.set_lehash(bytes(32))
    assert k.cpu.einit(k.frame(sig.pack() + bytes(2288)), epa(0), k.frame()) \
        == R.SGX_INVALID_ATTRIBUTE


# -- EREMOVE -----------------------------------------------------------------------------------
def test_eremove():
    k = Kit().standard()
    assert k.cpu.eremove(epa(k.secs_i)) == R.SGX_CHILD_PRESENT
    k.enter()
    assert k.cpu.eremove(epa(k.data_i[0])) == R.SGX_ENCLAVE_ACT
    k.cpu.eexit(k.lp, 0x1000)
    for i in [k.tcs_i, k.ssa_i, *k.data_i]:
        assert k.cpu.eremove(epa(i)) == 0
    assert k.cpu.eremove(epa(k.secs_i)) == 0
    assert k.cpu.eremove(epa(k.secs_i)) == 0  # VALID=0: nothing to do
    with pytest.raises(GP):
        k.cpu.eremove(epa(0) + 1)
    with pytest.raises(PF):
        k.cpu.eremove(k.frame())


# -- EDBGRD / EDBGWR -----------------------------------------------------------------------------
def test_debug_leaves():
    k = Kit()
    k.ecreate(attributes=0x6)
    i = k.eadd(0, REG | RW, b"\x11" * PAGE_SIZE)
    t = k.eadd(PAGE_SIZE, TCS)
    assert k.cpu.edbgrd(epa(i) + 8) == (0, 0x1111111111111111)
    assert k.cpu.edbgwr(epa(i) + 8, 42) == 0
    assert k.cpu.edbgrd(epa(i) + 8) == (0, 42)
    with pytest.raises(GP):
        k.cpu.edbgrd(epa(i) + 4)
    with pytest.raises(GP):
        k.cpu.edbgwr(epa(t) + 16, 1)  # only TCS.FLAGS is writable
    assert k.cpu.edbgwr(epa(t) + 8, 1) == 0
    with pytest.raises(PF):
        k.cpu.edbgrd(epa(k.secs_i))  # SECS is not debuggable
    k2 = Kit().standard()
    with pytest.raises(GP):  # not a debug enclave
        k2.cpu.edbgrd(epa(k2.data_i[0]))


def test_edbgrd_of_pending_page_is_not_debuggable():
    k = Kit()
    k.ecreate(attributes=0x6)
    k.eadd(0, TCS, __import__("sgxsim.hw.structs", fromlist=["Tcs"]).Tcs(
        ossa=PAGE_SIZE, nssa=1).pack())
    k.eadd(PAGE_SIZE, REG | RW)
    assert k.einit() == 0
    j = k.eaug(2 * PAGE_SIZE)
    assert k.cpu.edbgrd(epa(j))[0] == R.SGX_PAGE_NOT_DEBUGGABLE


# -- EBLOCK / ETRACK / EWB / ELDU / EPA ------------------------------------------------------------
def _evict(k, i):
    va = k.alloc_epc()
    k.cpu.epa(epa(va))
    backing, pcmd = k.frame(), k.frame()
    pginfo = k.frame()
    k.cpu.phys.write(pginfo, Pageinfo(srcpge=backing, secinfo=pcmd).pack())
    return va, backing, pcmd, pginfo


def test_eblock_codes():
    k = Kit().standard()
    assert k.cpu.eblock(epa(30)) == R.SGX_PG_INVLD
    assert k.cpu.eblock(epa(k.secs_i)) == R.SGX_PG_IS_SECS
    va = k.alloc_epc()
    k.cpu.epa(epa(va))
    assert k.cpu.eblock(epa(va)) == R.SGX_NOTBLOCKABLE
    assert k.cpu.eblock(epa(k.data_i[0])) == 0
    assert k.cpu.eblock(epa(k.data_i[0])) == R.SGX_BLKSTATE


def test_ewb_eldu_round_trip_and_its_failures():
    k = Kit().standard()
    i = k.data_i[0]
    k.cpu.epc.page(i)[:5] = b"hello"
    before = k.cpu.epc.epcm(i)
    va, backing, pcmd, pginfo = _evict(k, i)
    assert k.cpu.ewb(pginfo, epa(i), epa(va)) == R.SGX_PAGE_NOT_BLOCKED
    assert k.cpu.eblock(epa(i)) == 0
    assert k.cpu.ewb(pginfo, epa(i), epa(va)) == R.SGX_NOT_TRACKED
    k.enter()  # a thread inside at ETRACK time keeps tracking incomplete
    assert k.cpu.etrack(epa(k.secs_i)) == 0
    assert k.cpu.etrack(epa(k.secs_i)) == R.SGX_PREV_TRK_INCMPL
    assert k.cpu.ewb(pginfo, epa(i), epa(va)) == R.SGX_NOT_TRACKED
    k.cpu.eexit(k.lp, 0x1000)
    assert k.cpu.ewb(pginfo, epa(i), epa(va)) == 0
    assert not k.cpu.epc.is_valid(i)
    assert k.cpu.phys.read(backing, 5) != b"hello"  # encrypted
    assert k.cpu.eremove(epa(k.secs_i)) == R.SGX_CHILD_PRESENT
    # Reload into another EPC page.
    j = k.alloc_epc()
    k.cpu.phys.write(pginfo, Pageinfo(linaddr=BASE + 2 * PAGE_SIZE, srcpge=backing,
                                      secinfo=pcmd, secs=epa(k.secs_i)).pack())
    assert k.cpu.eldu(pginfo, epa(j), epa(va)) == 0
    after = k.cpu.epc.epcm(j)
    assert after == before
    assert bytes(k.cpu.epc.page(j)[:5]) == b"hello"
    # Replay: the VA slot was consumed.
    k.cpu.eremove(epa(j))
    assert k.cpu.eldu(pginfo, epa(j), epa(va)) == R.SGX_MAC_COMPARE_FAIL


def test_ewb_of_secs_needs_no_children_and_eldu_tampering_fails():
    k = Kit().standard()
    i = k.data_i[0]
    va, backing, pcmd, pginfo = _evict(k, i)
    k.cpu.eblock(epa(i))
    k.cpu.etrack(epa(k.secs_i))
    k.cpu.phys.write(pginfo, Pageinfo(srcpge=backing, secinfo=pcmd).pack())
    assert k.cpu.ewb(pginfo, epa(i), epa(va)) == 0
    # Tamper with the ciphertext: the MAC check fails.
    raw = bytearray(k.cpu.phys.read(backing, PAGE_SIZE))
    raw[7] ^= 1
    k.cpu.phys.write(backing, bytes(raw))
    k.cpu.phys.write(pginfo, Pageinfo(linaddr=BASE + 2 * PAGE_SIZE, srcpge=backing,
                                      secinfo=pcmd, secs=epa(k.secs_i)).pack())
    assert k.cpu.eldu(pginfo, epa(i), epa(va)) == R.SGX_MAC_COMPARE_FAIL


def test_epa_checks():
    k = Kit()
    with pytest.raises(GP):
        k.cpu.epa(epa(0), rbx=2)
    k.cpu.epa(epa(0))
    with pytest.raises(PF):
        k.cpu.epa(epa(0))
    assert k.cpu.epc.epcm(0).pt == 3


# -- EAUG / EMODPR / EMODT --------------------------------------------------------------------------
def test_eaug_checks():
    k = Kit().standard(init=False)
    with pytest.raises(GP):  # not initialised
        k.eaug(6 * PAGE_SIZE)
    assert k.einit() == 0
    with pytest.raises(GP):  # outside ELRANGE
        k.eaug(0x8000)
    i = k.eaug(6 * PAGE_SIZE)
    e = k.cpu.epc.epcm(i)
    assert (e.r, e.w, e.x, e.pending, e.pt) == (True, True, False, True, 2)
    with pytest.raises(PF):
        k.cpu.eaug(k.pageinfo(BASE + 7 * PAGE_SIZE, 0, 0, epa(k.secs_i)), epa(i))
    with pytest.raises(GP):  # SRCPGE must be 0
        k.cpu.eaug(k.pageinfo(BASE + 7 * PAGE_SIZE, k.frame(), 0, epa(k.secs_i)), epa(20))


def test_sgx2_leaves_need_sgx2():
    k = Kit(sgx2=False).standard()
    with pytest.raises(GP):
        k.eaug(6 * PAGE_SIZE)
    with pytest.raises(GP):
        k.cpu.emodpr(k.secinfo(1), epa(k.data_i[0]))


def test_emodpr():
    k = Kit().standard(data_flags=RWX)
    i = k.data_i[0]
    with pytest.raises(GP):
        k.cpu.emodpr(k.secinfo(0x2), epa(i))  # W without R
    assert k.cpu.emodpr(k.secinfo(0x1), epa(i)) == 0
    e = k.cpu.epc.epcm(i)
    assert (e.r, e.w, e.x, e.pr) == (True, False, False, True)
    assert k.cpu.emodpr(k.secinfo(0x7), epa(i)) == 0  # never adds
    assert k.cpu.epc.epcm(i).perms == 0x1
    with pytest.raises(PF):
        k.cpu.emodpr(k.secinfo(0x1), epa(k.tcs_i))  # not PT_REG
    j = k.eaug(6 * PAGE_SIZE)
    assert k.cpu.emodpr(k.secinfo(0x1), epa(j)) == R.SGX_PAGE_NOT_MODIFIABLE


def test_emodt():
    k = Kit().standard()
    i, j = k.data_i
    with pytest.raises(GP):
        k.cpu.emodt(k.secinfo(REG), epa(i))  # target type must be TCS or TRIM
    assert k.cpu.emodt(k.secinfo(TRIM), epa(i)) == 0
    e = k.cpu.epc.epcm(i)
    assert (e.pt, e.modified, e.perms) == (4, True, 0)
    with pytest.raises(PF):  # TRIM -> TCS is not a transition
        k.cpu.emodt(k.secinfo(TCS), epa(i))
    with pytest.raises(PF):  # TRIM -> TRIM neither (type is checked before state)
        k.cpu.emodt(k.secinfo(TRIM), epa(i))
    p = k.eaug(6 * PAGE_SIZE)  # REG but PENDING
    assert k.cpu.emodt(k.secinfo(TRIM), epa(p)) == R.SGX_PAGE_NOT_MODIFIABLE
    assert k.cpu.emodt(k.secinfo(TCS), epa(j)) == 0
    # The REMOVE_PAGES probe: EMODPR on an unaccepted TRIM page -> 20.
    assert k.cpu.emodpr(k.secinfo(0x7), epa(i)) == R.SGX_PAGE_NOT_MODIFIABLE
    # Accepted-TRIM pages are freed by EREMOVE even while a thread is inside.
    k.cpu.epc.flags[i] &= ~0x40
    k.enter()
    assert k.cpu.eremove(epa(i)) == 0


def test_eextend_page_equals_sixteen_eextends():
    a, b = Kit(), Kit()
    for k in (a, b):
        k.ecreate()
    data = bytes((i * 7) & 0xFF for i in range(PAGE_SIZE))
    ia = a.eadd(0, REG | RW, data, measure=False)
    ib = b.eadd(0, REG | RW, data, measure=False)
    for j in range(16):
        a.cpu.eextend(epa(0), epa(ia) + j * 256)
    b.cpu.eextend_page(epa(0), epa(ib))
    assert a.cpu.epc.secs_state[0].measurement.digest() == b.cpu.epc.secs_state[0].measurement.digest()
    with pytest.raises(GP):
        b.cpu.eextend_page(epa(0), epa(ib) + 256)


def test_eadd_writes_the_epcm_entry_set_entry_writes():
    # EADD writes its EPCM entry inline: the same fields as Epc.set_entry(),
    # the EBLOCK epoch of the slot's previous page forgotten.
    k = Kit(epc_pages=8).standard(init=True)
    epc, d = k.cpu.epc, k.data_i[0]
    assert k.cpu.eblock(epa(d)) == 0
    assert epc.mod_epoch[d] != 0
    assert k.cpu.eremove(epa(d)) == 0
    k.ecreate(base=BASE + 0x10000)  # a second enclave, not initialised
    k.next_epc = d  # its page goes into the freed slot
    assert k.eadd(0x3000, REG | RWX, measure=False) == d
    got = (epc.flags[d], epc.pt[d], epc.secs[d], epc.addr[d], epc.mod_epoch[d])
    epc.set_entry(d, REG >> 8, RWX << 1, k.secs_i, BASE + 0x10000 + 0x3000)
    assert got == (epc.flags[d], epc.pt[d], epc.secs[d], epc.addr[d], epc.mod_epoch[d])
    assert got[4] == 0


def _fault_of(leaf, *operands):
    try:
        leaf(*operands)
    except (GP, PF) as f:
        return type(f), getattr(f, "addr", None), getattr(f, "error_code", None), str(f)
    return None


def test_eextend_page_fails_as_eextend_does():
    # eextend_page() runs EEXTEND's checks once for the page: on a page-aligned RCX each
    # failing operand gives the fault, address and reason eextend() gives.
    k = Kit()
    k.ecreate()
    i = k.eadd(0, REG | RW, measure=False)
    k2 = Kit()
    k2.ecreate()
    k2.ecreate(base=BASE + 0x8000)  # second enclave at EPC 1
    j = k2.eadd(0, REG | RW, measure=False)
    k3 = Kit().standard(init=True)
    cases = [
        (k, epa(0) + 8, epa(i)),                          # RBX misaligned
        (k, k.frame(), epa(i)),                           # RBX not in the EPC
        (k, EPC_BASE - PAGE_SIZE, epa(i)),                # RBX below the EPC
        (k, epa(0), epa(20)),                             # not a valid REG/TCS page
        (k, epa(0), k.frame()),                           # RCX not in the EPC
        (k, epa(0), EPC_BASE - PAGE_SIZE),                # RCX below the EPC
        (k, epa(i), epa(i)),                              # RBX is not a SECS
        (k2, epa(0), epa(j)),                             # RBX is not the page's SECS
        (k3, epa(k3.secs_i), epa(k3.data_i[0])),          # after EINIT
    ]
    for kit, secs, page in cases:
        want = _fault_of(kit.cpu.eextend, secs, page)
        assert want is not None, (hex(secs), hex(page))
        assert _fault_of(kit.cpu.eextend_page, secs, page) == want, (hex(secs), hex(page))


def test_eldu_into_a_slot_of_a_blocked_and_removed_page_is_tracked():
    """A MODIFIED/PR page written back after its tracking completed and loaded
    by ELDU into the slot of a page that was EBLOCKed at the current epoch and
    then EREMOVEd: EACCEPT must not see the old page's epoch (it returned
    SGX_NOT_TRACKED; found by sgxsim exec with a 48-page EPC, docs/exec.md)."""
    k = Kit().standard()
    d0, d1 = k.data_i
    assert k.cpu.emodpr(k.secinfo(0x1), epa(d0)) == 0  # RW -> R, PR set
    assert k.cpu.etrack(epa(k.secs_i)) == 0
    assert k.cpu.eblock(epa(d0)) == 0
    assert k.cpu.etrack(epa(k.secs_i)) == 0
    va, backing, pcmd, pginfo = _evict(k, d0)
    assert k.cpu.ewb(pginfo, epa(d0), epa(va)) == 0
    assert k.cpu.eblock(epa(d1)) == 0  # blocked at the current epoch, then freed
    assert k.cpu.eremove(epa(d1)) == 0
    k.cpu.phys.write(pginfo, Pageinfo(linaddr=BASE + 2 * PAGE_SIZE, srcpge=backing,
                                      secinfo=pcmd, secs=epa(k.secs_i)).pack())
    assert k.cpu.eldu(pginfo, epa(d1), epa(va)) == 0
    k.map(BASE + 2 * PAGE_SIZE, d1)
    assert k.cpu.tracked(d1)
    k.enter()
    secinfo = k.secinfo_in_enclave(2 * PAGE_SIZE + 0x800, REG | 0x1 | 0x20)
    assert k.cpu.eaccept(k.lp, secinfo, BASE + 2 * PAGE_SIZE) == 0
