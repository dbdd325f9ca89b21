"""AEX writes GPRSGX in place and ERESUME reads it back in place (field runs
of the layout, no SsaGpr object): the same bytes and registers as building
the structure with SsaGpr, which this test does as the reference."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.hw.leafkit import BASE, Kit

from sgxsim.hw.consts import PAGE_MASK, PAGE_SIZE
from sgxsim.hw.faults import CpuException, GeneralProtection, InvalidOpcode, PageFault
from sgxsim.hw.structs import SsaExinfo, SsaGpr, Tcs

_GPR_OFF = PAGE_SIZE - SsaGpr.SIZE
_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
          "r12", "r13", "r14", "r15", "rflags", "rip")
U64 = st.integers(0, (1 << 64) - 1)


def _reference_aex(page: bytearray, regs: dict, fault, exinfo: bool) -> tuple[bytes, int, int]:
    """The SSA frame's page after an AEX, built with SsaGpr/SsaExinfo as a
    whole structure (the AEX of SDM 40.4, as the model wrote it before it
    wrote the fields in place); also the URSP/URBP it restores."""
    page = bytearray(page)
    vec = fault.vector if fault is not None else None
    exitinfo = 0
    if fault is not None and (vec not in (14, 13) or exinfo):
        exitinfo = (vec & 0xFF) | (SsaGpr.EXIT_TYPE_HW << 8) | SsaGpr.EXITINFO_VALID
    old = SsaGpr.unpack(page[_GPR_OFF:])
    gpr = SsaGpr(**{k: regs.get(k, 0) for k in _NAMES})
    gpr.ursp, gpr.urbp = old.ursp, old.urbp
    gpr.fsbase, gpr.gsbase = regs.get("fsbase", 0), regs.get("gsbase", 0)
    gpr.exitinfo = exitinfo
    page[_GPR_OFF:] = gpr.pack()
    if exinfo and isinstance(fault, (PageFault, GeneralProtection)):
        maddr = fault.addr if isinstance(fault, PageFault) else 0
        errcd = fault.error_code if isinstance(fault, PageFault) else 0
        page[_GPR_OFF - SsaExinfo.SIZE:_GPR_OFF] = SsaExinfo(maddr=maddr, errcd=errcd).pack()
    return bytes(page), old.ursp, old.urbp


_FAULTS = st.sampled_from([
    None,
    PageFault(BASE + 0x2345, 0x8007, ("SDM: EPCM access check", "EPCM denies write")),
    PageFault(BASE + 0x10, 0x4, ("paging", "read of a not-present page")),
    GeneralProtection(("SDM: EEXIT", "target not canonical")),
    InvalidOpcode("no instruction"),
    CpuException(3, "int3"),
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(regs=st.fixed_dictionaries({k: U64 for k in _NAMES + ("fsbase", "gsbase")}),
       ustack=st.tuples(U64, U64), junk=st.binary(min_size=SsaGpr.SIZE + 16, max_size=SsaGpr.SIZE + 16),
       fault=_FAULTS, exinfo=st.booleans())
def test_aex_and_eresume_match_the_whole_structure(regs, ustack, junk, fault, exinfo):
    kit = Kit()
    kit.ecreate(miscselect=1 if exinfo else 0)
    tcs = Tcs(ossa=PAGE_SIZE, nssa=2, oentry=2 * PAGE_SIZE, fslimit=0xFFFFFFFF, gslimit=0xFFFFFFFF)
    kit.tcs_i = kit.eadd(0, 0x100, tcs.pack())
    ssa = [kit.eadd((1 + k) * PAGE_SIZE, 0x200 | 0x3) for k in range(2)]
    kit.eadd(3 * PAGE_SIZE, 0x200 | 0x3)
    assert kit.einit() == 0
    kit.lp.regs.update(rip=0x1000, rsp=ustack[0], rbp=ustack[1])
    kit.cpu.eenter(kit.lp, BASE, 0x5000)
    epc = kit.cpu.epc
    page = epc.page(ssa[0])
    # Whatever the frame held besides URSP/URBP (EENTER wrote those).
    page[_GPR_OFF - 16:_GPR_OFF + 144] = junk[:160]
    page[_GPR_OFF + 160:] = junk[160:184]
    lp = kit.lp
    lp.regs.update(regs)
    want, ursp, urbp = _reference_aex(page, lp.regs, fault, exinfo)
    ctx = lp.enclave
    out = kit.cpu.aex(lp, fault=fault, vector=None if fault is not None else 0x20)
    assert bytes(page) == want
    assert (ursp, urbp) == ustack
    assert Tcs.unpack(epc.page(kit.tcs_i)).cssa == 1 and Tcs.unpack(epc.page(kit.tcs_i)).state == 0
    assert lp.enclave is None
    synthetic = dict.fromkeys(lp.regs, 0)
    synthetic.update(rax=3, rbx=ctx.tcs, rcx=ctx.aep, rip=ctx.aep, rsp=ursp, rbp=urbp,
                     fsbase=ctx.ufsbase, gsbase=ctx.ugsbase)
    assert lp.regs == synthetic and list(lp.regs) == list(synthetic)
    if isinstance(fault, PageFault):
        assert (out.addr, out.error_code, out.why) == (fault.addr & PAGE_MASK, fault.error_code, fault.why)
        assert str(out) == str(fault)
    else:
        assert out is fault
    # ERESUME loads RAX..RIP back from the frame: as SsaGpr.unpack reads them.
    saved = SsaGpr.unpack(bytes(page[_GPR_OFF:]))
    if not 0 <= saved.rip < 1 << 47 and not saved.rip >> 47 == (1 << 17) - 1:
        with pytest.raises(GeneralProtection, match="saved RIP not canonical"):
            kit.cpu.eresume(lp, BASE, 0x5000)
        return
    kit.cpu.eresume(lp, BASE, 0x5000)
    assert {k: lp.regs[k] for k in _NAMES} == {k: getattr(saved, k) for k in _NAMES}
    assert Tcs.unpack(epc.page(kit.tcs_i)).cssa == 0
