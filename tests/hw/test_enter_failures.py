"""EENTER / ERESUME / EEXIT failure tables: the ordered checks of
sgx-hardware.md §4.15-§4.17 (TCS §3.4, SSA frame §3.5, §12 item 6).

Each row builds a state in which exactly one check of the reference's ordered
list is the first to fail, and asserts the reference's outcome: #GP, or #PF
with its address and the error-code bits the reference fixes.  After every
EENTER/ERESUME failure nothing has changed: not the EPCM, not any EPC page
(so not TCS.CSSA, TCS.STATE, TCS.AEP or the SSA), not the caller's registers,
and the caller is still outside enclave mode.  "order" rows make two checks
fail at once with different outcomes, so that the earlier check must win.

The checks are shared by both leaves, so every common row runs for EENTER and
for ERESUME (§4.16: "the checks mirror EENTER"); each leaf adds its own CSSA
rows.  An ERESUME row first reaches CSSA=1 the way software does (EENTER,
then an interrupt: AEX); when the state under test cannot be entered at all
(a bad TCS, an uninitialised enclave) CSSA=1 is written into the TCS
directly, standing for that earlier EENTER + AEX.  CSSA=1 selects frame 0, the
frame EENTER uses at CSSA=0, so the SSA rows hit the same pages for both.

Rows already covered by tests/hw/test_enclu.py are not repeated (EENTER: TCS
misaligned, AEP 1<<48, a PT_REG page as TCS, TCS paging not present, enclave
not initialised, CSSA>=NSSA after an AEX, TCS busy from a second LP, already
in enclave mode; ERESUME: CSSA=0; EEXIT outside enclave mode).

Not tabulated: the 32-bit-mode segment checks and FS/GS limits (step 1; the
model runs 64-bit code only), CR4.OSFXSR and XFRM against XCR0 (step 3; the
model has no CR4/XCR0), ERESUME's XRSTOR failure (no XSAVE image modelled),
and "TCS busy" as a concurrency conflict (§13 item 13; STATE is tabulated).

Error codes: an EPCM-check #PF has P=1, U/S=1 and the SGX bit (§5); which
access type (W/R) the leaf reports for the TCS or an SSA page is not fixed
by the reference, so W/R is left open there.  An operand that paging maps to
non-EPC memory leaves the SGX bit open (§13 item 2).  A paging failure on the
SSA is an ordinary #PF (SGX bit clear); a read-only PTE can only deny the
write, so that code is exact.

Layout (SSAFRAMESIZE=2, NSSA=2): TCS at page 0, SSA frame 0 at pages 1-2
(GPR area in page 2), frame 1 at pages 3-4, OENTRY at page 5, pages 6-7 free.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pytest
from tests.hw.leafkit import BASE, REG, RW, TCS, Kit, epa, operand, secs_at, va_page_at

from sgxsim.hw.consts import PAGE_SIZE, Attribute, PageType
from sgxsim.hw.epc import EPCM_MODIFIED, EPCM_PENDING, EPCM_R
from sgxsim.hw.faults import (
    PF_INSTR,
    PF_PROT,
    PF_RSVD,
    PF_SGX,
    PF_USER,
    PF_WRITE,
    GeneralProtection,
    HwFault,
    PageFault,
)
from sgxsim.hw.memory import EPC_BASE_PFN
from sgxsim.hw.paging import pte_pfn
from sgxsim.hw.structs import SsaGpr, Tcs

P = PAGE_SIZE
SSA0 = BASE + 1 * P  # frame 0, first page
GPR0 = BASE + 2 * P  # frame 0, GPR page
SSA1 = BASE + 3 * P  # frame 1, first page
GPR1 = BASE + 4 * P  # frame 1, GPR page
ENTRY = BASE + 5 * P
F6 = BASE + 6 * P  # free slot in ELRANGE
F7 = BASE + 7 * P  # free slot in ELRANGE
AEP = 0x5000
NONCANON = 1 << 47  # the first non-canonical address above the lower half
_GPR_OFF = P - SsaGpr.SIZE


# -- expected outcomes ----------------------------------------------------------------------
@dataclass(frozen=True)
class Gp:
    why: str = ""  # for order rows between two #GP checks: the check that must win


@dataclass(frozen=True)
class Pf:
    addr: int
    code: int
    care: int = ~0  # the error-code bits the reference fixes


GP = Gp()
_EPCM = PF_SGX | PF_USER | PF_PROT


def pf_epcm(addr: int) -> Pf:
    """EPCM check: P=1, U/S=1, SGX=1; W/R open."""
    return Pf(addr, _EPCM, ~PF_WRITE)


def pf_nonepc(addr: int) -> Pf:
    """Maps to non-EPC memory: P=1, U/S=1, not a fetch, no RSVD; SGX bit open (§13 item 2)."""
    return Pf(addr, PF_USER | PF_PROT, PF_USER | PF_PROT | PF_INSTR | PF_RSVD)


def pf_not_present(addr: int) -> Pf:
    """Ordinary not-present #PF: P=0, U/S=1, SGX=0; W/R open."""
    return Pf(addr, PF_USER, ~PF_WRITE)


# -- the enclave every row starts from --------------------------------------------------------
class Env:
    def __init__(self, *, init: bool = True, attributes: int = int(Attribute.MODE64BIT),
                 skip: tuple[int, ...] = (), f6: bytes | None = None, tcs: dict | None = None,
                 prep: bool = True):
        self.k = k = Kit()
        k.ecreate(ssa=2, attributes=attributes)
        t = Tcs(ossa=P, nssa=2, oentry=5 * P, fslimit=0xFFFFFFFF, gslimit=0xFFFFFFFF)
        self.tcs_i = k.eadd(0, TCS, t.replace(**(tcs or {})).pack())
        for n in range(1, 6):
            if n not in skip:
                k.eadd(n * P, REG | RW)
        if f6 is not None:  # a REG page at F6 with these contents
            self.f6_i = k.eadd(6 * P, REG | RW, f6)
        self.prep = prep
        if init:
            assert k.einit() == 0
        self.lp2 = k.cpu.lps[1]
        self.lp2.cr3 = k.pt

    def idx(self, la: int) -> int:
        return pte_pfn(self.k.pt.get(la >> 12)) - EPC_BASE_PFN

    def tcs(self) -> Tcs:
        return Tcs.unpack(self.k.cpu.epc.page(self.tcs_i))

    def set_tcs(self, **fields) -> None:
        """Write TCS fields directly (for states no leaf sequence reaches)."""
        self.k.cpu.epc.page(self.tcs_i)[:] = self.tcs().replace(**fields).pack()

    def poke(self, la: int, set_: int = 0, clear: int = 0) -> None:
        i = self.idx(la)
        self.k.cpu.epc.flags[i] = (self.k.cpu.epc.flags[i] | set_) & ~clear

    def enter(self, lp=None) -> None:
        lp = lp or self.k.lp
        lp.regs["rip"] = 0x1000
        self.k.cpu.eenter(lp, BASE, AEP)

    def aex(self, lp=None) -> None:
        self.k.cpu.ipi([(lp or self.k.lp).id])

    def set_saved_rip(self, gpr_la: int, rip: int) -> None:
        page = self.k.cpu.epc.page(self.idx(gpr_la))
        gpr = SsaGpr.unpack(page[_GPR_OFF:])
        page[_GPR_OFF:] = gpr.replace(rip=rip).pack()

    def emodpr(self, la: int, perms: int) -> None:
        assert self.k.cpu.emodpr(self.k.secinfo(perms), epa(self.idx(la))) == 0

    def eblock(self, la: int) -> None:
        assert self.k.cpu.eblock(epa(self.idx(la))) == 0

    def free_epc_at(self, la: int) -> None:
        self.k.map(la, self.k.alloc_epc())

    def alias(self, la: int, of: int) -> None:
        self.k.map(la, self.idx(of))

    def foreign(self, la: int) -> None:
        """A REG RW page of a second enclave with the same ELRANGE at ``la``."""
        k = self.k
        saved = (k.secs_i, k.base, k.size)
        k.ecreate(ssa=2)
        k.eadd(la - BASE, REG | RW)
        k.secs_i, k.base, k.size = saved

    def snapshot(self, lp):
        e = self.k.cpu.epc
        epcm = (bytes(e.flags), bytes(e.pt), e.secs.tobytes(), e.addr.tobytes())
        pages = tuple(bytes(e.page(i)) for i in range(self.k.next_epc))
        return epcm, pages, dict(lp.regs)


def _check(env: Env, lp, expected, call) -> None:
    """Run ``call`` on ``lp``; assert the outcome and that nothing changed."""
    tcs_before = env.tcs()
    epcm, pages, regs = env.snapshot(lp)
    exc = GeneralProtection if isinstance(expected, Gp) else PageFault
    with pytest.raises(HwFault) as e:
        call()
    assert type(e.value) is exc, e.value
    t = env.tcs()
    assert (t.cssa, t.state, t.aep) == (tcs_before.cssa, tcs_before.state, tcs_before.aep)
    after = env.snapshot(lp)
    assert after[0] == epcm, "EPCM changed by a faulting leaf"
    assert after[1] == pages, "an EPC page changed under a faulting leaf"
    assert after[2] == regs, "registers changed by a faulting leaf"
    assert lp.enclave is None
    if isinstance(expected, Gp):
        assert expected.why in e.value.why.detail
    else:
        f = e.value
        assert f.addr == expected.addr
        assert f.error_code & expected.care == expected.code & expected.care, hex(f.error_code)


# -- row building blocks ---------------------------------------------------------------------
_tcs_at = partial(operand, "tcs")


_aep = partial(operand, "aep")


def _seq(*fns):
    def f(env, ops):
        for fn in fns:
            fn(env, ops)
    return f


def _ram_tcs(env, ops):
    env.k.map_ram(F6)
    ops["tcs"] = F6


def _tcs_not_valid(env, ops):
    env.free_epc_at(F6)
    ops["tcs"] = F6


_tcs_secs = secs_at("tcs", F6)


_tcs_va = va_page_at("tcs", F6)


def _emodt_f6(env, ops):
    """The REG page at F6 (TCS bytes) EMODT'd to PT_TCS and not accepted: MODIFIED=1."""
    assert env.k.cpu.emodt(env.k.secinfo(TCS), epa(env.f6_i)) == 0
    ops["tcs"] = F6


def _ssa(fn):
    """A row step applying ``fn(env, la)`` to the page at ``la`` (an SSA page)."""
    def wrap(la):
        def f(env, ops):
            fn(env, la)
        return f
    return wrap


_unmap = _ssa(lambda env, la: env.k.pt.clear(la >> 12))
_readonly_pte = _ssa(lambda env, la: env.k.map(la, env.idx(la), rw=False))
_ram = _ssa(lambda env, la: env.k.map_ram(la))
_free_epc = _ssa(lambda env, la: env.free_epc_at(la))
_blocked = _ssa(lambda env, la: env.eblock(la))
_modified = _ssa(lambda env, la: env.poke(la, set_=EPCM_MODIFIED))  # only a poke isolates it
_r0 = _ssa(lambda env, la: env.poke(la, clear=EPCM_R))
_w0 = _ssa(lambda env, la: env.emodpr(la, 0x1))  # EMODPR to R: W=0 (PR=1 does not matter)
_foreign = _ssa(lambda env, la: env.foreign(la))
_alias_entry = _ssa(lambda env, la: env.alias(la, ENTRY))  # a RW REG page at another address


def _pt(pt):
    return _ssa(lambda env, la: env.k.cpu.epc.pt.__setitem__(env.idx(la), pt))


def _pending_gpr(env, ops):
    """GPR0 was never EADDed; EAUG puts a PENDING RW REG page there."""
    env.k.eaug(GPR0 - BASE)


def _tcs_pending(env, ops):
    env.poke(BASE, set_=EPCM_PENDING)  # PT_TCS with PENDING: only a poke isolates it


def _enter_aex(env, ops):
    """EENTER + interrupt: CSSA += 1, the way software gets there."""
    env.enter()
    env.aex()


def _busy(env, ops):
    """LP0 is inside through this TCS (STATE=ACTIVE); the leaf runs on LP1."""
    env.enter()
    ops["lp"] = env.lp2


def _saved_rip(la, rip):
    def f(env, ops):
        env.set_saved_rip(la, rip)
    return f


def _set_tcs(**fields):
    def f(env, ops):
        env.set_tcs(**fields)
    return f


def _dbgoptin(env, ops):
    """EADD clears DBGOPTIN; a debugger sets it with EDBGWR."""
    flags = Tcs.FLAGS_DBGOPTIN | Tcs.FLAGS_AEXNOTIFY
    assert env.k.cpu.edbgwr(epa(env.tcs_i) + Tcs.OFF_FLAGS, flags) == 0


NEW_TCS = Tcs(ossa=P, nssa=2, oentry=5 * P)
NOP = None

# (id, build, setup, expected): the checks EENTER and ERESUME share (§4.15 steps 2-4).
COMMON_ROWS = [
    # 2. TCS operand and AEP
    ("RBX-not-EPC", {}, _ram_tcs, pf_nonepc(F6)),
    ("AEP-not-canonical-bit47", {}, _aep(NONCANON), GP),
    ("AEP-not-canonical-hole-top", {}, _aep(0xFFFF_7FFF_FFFF_F000), GP),
    ("RBX-EPCM-not-VALID", {}, _tcs_not_valid, pf_epcm(F6)),
    ("RBX-EPCM-BLOCKED", {}, lambda env, ops: env.eblock(BASE), pf_epcm(BASE)),
    ("RBX-EPCM-ENCLAVEADDRESS", {}, _seq(lambda e, o: e.alias(F6, BASE), _tcs_at(F6)),
     pf_epcm(F6)),
    ("RBX-EPCM-PT_SECS", {}, _tcs_secs, pf_epcm(F6)),
    ("RBX-EPCM-PT_VA", {}, _tcs_va, pf_epcm(F6)),
    ("RBX-EPCM-PENDING", {}, _tcs_pending, pf_epcm(BASE)),
    ("RBX-EPCM-MODIFIED", {"f6": NEW_TCS.pack()}, _emodt_f6, pf_epcm(F6)),
    # 3. TCS contents and enclave state
    ("TCS-OSSA-not-page-aligned", {"tcs": {"ossa": P + 0x40}}, NOP, GP),
    ("TCS-OFSBASE-not-page-aligned", {"tcs": {"ofsbase": 0x10}}, NOP, GP),
    ("TCS-OGSBASE-not-page-aligned", {"tcs": {"ogsbase": 0x10}}, NOP, GP),
    ("FSBASE-not-canonical", {"tcs": {"ofsbase": NONCANON}}, NOP, GP),
    ("GSBASE-not-canonical", {"tcs": {"ogsbase": NONCANON}}, NOP, GP),
    ("TCS-FLAGS-reserved-bit2", {"tcs": {"flags": 1 << 2}}, NOP, GP),
    ("TCS-FLAGS-reserved-bit63", {"tcs": {"flags": 1 << 63}}, NOP, GP),
    ("mode-32-bit-enclave", {"attributes": 0}, NOP, GP),
    ("TCS.AEXNOTIFY-ne-SECS.AEXNOTIFY", {"tcs": {"flags": Tcs.FLAGS_AEXNOTIFY}}, NOP, GP),
    # 4. every page of the SSA frame (frame 0)
    ("SSA-paging-not-present", {}, _unmap(SSA0), pf_not_present(SSA0)),
    ("SSA-GPR-paging-not-present", {}, _unmap(GPR0), pf_not_present(GPR0)),
    ("SSA-PTE-read-only", {}, _readonly_pte(GPR0), Pf(GPR0, PF_USER | PF_PROT | PF_WRITE)),
    ("SSA-not-EPC", {}, _ram(GPR0), pf_nonepc(GPR0)),
    ("SSA-EPCM-not-VALID", {}, _free_epc(GPR0), pf_epcm(GPR0)),
    ("SSA-EPCM-BLOCKED", {}, _blocked(GPR0), pf_epcm(GPR0)),
    ("SSA-EPCM-PENDING", {"skip": (2,)}, _pending_gpr, pf_epcm(GPR0)),
    ("SSA-EPCM-MODIFIED", {}, _modified(GPR0), pf_epcm(GPR0)),
    ("SSA-EPCM-PT_TCS", {}, _pt(PageType.PT_TCS)(GPR0), pf_epcm(GPR0)),
    ("SSA-EPCM-PT_TRIM", {}, _pt(PageType.PT_TRIM)(GPR0), pf_epcm(GPR0)),
    ("SSA-EPCM-other-enclave", {}, _foreign(GPR0), pf_epcm(GPR0)),
    ("SSA-EPCM-ENCLAVEADDRESS", {}, _alias_entry(GPR0), pf_epcm(GPR0)),
    ("SSA-EPCM-R=0", {}, _r0(GPR0), pf_epcm(GPR0)),
    ("SSA-EPCM-W=0", {}, _w0(GPR0), pf_epcm(GPR0)),
    ("SSA-first-page-EPCM-W=0", {}, _w0(SSA0), pf_epcm(SSA0)),
    # order
    ("order-RBX-not-EPC-before-AEP", {}, _seq(_ram_tcs, _aep(NONCANON)), pf_nonepc(F6)),
    ("order-AEP-before-RBX-EPCM", {}, _seq(_aep(NONCANON), _tcs_pending), GP),
    ("order-RBX-EPCM-before-TCS-contents", {"f6": NEW_TCS.replace(ossa=P + 0x40).pack()},
     _emodt_f6, pf_epcm(F6)),
    ("order-TCS-contents-before-SSA", {"tcs": {"ofsbase": 0x10}}, _unmap(GPR0), GP),
    ("order-not-initialised-before-SSA", {"init": False}, _unmap(GPR0), GP),
]

EENTER_ROWS = [
    *COMMON_ROWS,
    ("CSSA>=NSSA-NSSA=0", {"tcs": {"nssa": 0}}, NOP, GP),
    ("SSA-frame-is-CSSA", {}, _seq(_enter_aex, _w0(GPR1)), pf_epcm(GPR1)),
    # 5. target
    ("OENTRY-not-canonical", {"tcs": {"oentry": NONCANON}}, NOP, GP),
    # order
    ("order-CSSA>=NSSA-before-SSA", {"tcs": {"nssa": 0}}, _unmap(GPR0), GP),
    ("order-SSA-before-OENTRY", {"tcs": {"oentry": NONCANON}}, _w0(GPR0), pf_epcm(GPR0)),
    ("order-SSA-before-STATE", {}, _seq(_busy, _w0(GPR0)), pf_epcm(GPR0)),
    ("order-OENTRY-before-STATE", {"tcs": {"oentry": NONCANON}}, _set_tcs(state=1),
     Gp("entry point not canonical")),
]

ERESUME_ROWS = [
    *COMMON_ROWS,
    ("CSSA>NSSA", {}, _set_tcs(cssa=3), GP),
    ("SSA-frame-is-CSSA-1", {}, _seq(_enter_aex, _w0(GPR1)), pf_epcm(GPR1)),
    # 5./6. target (the saved RIP) and STATE
    ("saved-RIP-not-canonical", {}, _saved_rip(GPR0, NONCANON), GP),
    ("TCS-STATE-ACTIVE", {}, _busy, GP),
    # order
    ("order-CSSA=0-before-SSA", {"prep": False}, _unmap(GPR0), GP),
    ("order-SSA-before-saved-RIP", {}, _seq(_saved_rip(GPR0, NONCANON), _w0(GPR0)),
     pf_epcm(GPR0)),
    ("order-SSA-before-STATE", {}, _seq(_busy, _w0(GPR0)), pf_epcm(GPR0)),
    ("order-saved-RIP-before-STATE", {}, _seq(_busy, _saved_rip(GPR0, NONCANON)),
     Gp("saved RIP not canonical")),
]


def _build(build, setup, leaf):
    env = Env(**build)
    ops = {"tcs": BASE, "aep": AEP, "lp": env.k.lp}
    if leaf == "ERESUME" and env.prep:
        try:
            _enter_aex(env, ops)  # CSSA = 1, as software reaches it
        except HwFault:
            env.set_tcs(cssa=1)  # the state under test cannot be entered: see the docstring
    if setup is not None:
        setup(env, ops)
    lp = ops["lp"]
    lp.regs["rip"] = 0x1000
    fn = env.k.cpu.eenter if leaf == "EENTER" else env.k.cpu.eresume
    return env, lp, lambda: fn(lp, ops["tcs"], ops["aep"])


@pytest.mark.parametrize("build,setup,expected", [r[1:] for r in EENTER_ROWS],
                         ids=[r[0] for r in EENTER_ROWS])
def test_eenter_first_failing_check(build, setup, expected):
    env, lp, call = _build(build, setup, "EENTER")
    _check(env, lp, expected, call)


@pytest.mark.parametrize("build,setup,expected", [r[1:] for r in ERESUME_ROWS],
                         ids=[r[0] for r in ERESUME_ROWS])
def test_eresume_first_failing_check(build, setup, expected):
    env, lp, call = _build(build, setup, "ERESUME")
    _check(env, lp, expected, call)


# -- controls: the base states without the fault succeed ----------------------------------------
EENTER_OK = [
    ("base", {}, NOP, 0),
    ("AEP-canonical-high", {}, _aep(0xFFFF_8000_0000_0000), 0),
    ("CSSA=1-uses-frame-1", {}, _seq(_enter_aex, _w0(GPR0)), 1),
    ("AEXNOTIFY-mismatch-with-DBGOPTIN", {"attributes": int(Attribute.MODE64BIT | Attribute.DEBUG),
                                          "tcs": {"flags": Tcs.FLAGS_AEXNOTIFY}}, _dbgoptin, 0),
]

ERESUME_OK = [
    ("base", {}, NOP, 1),
    ("CSSA=NSSA", {}, _enter_aex, 2),
    ("CSSA=1-uses-frame-0", {}, _w0(GPR1), 1),
]


@pytest.mark.parametrize("build,setup,cssa", [r[1:] for r in EENTER_OK],
                         ids=[r[0] for r in EENTER_OK])
def test_eenter_control(build, setup, cssa):
    env, lp, call = _build(build, setup, "EENTER")
    assert env.tcs().cssa == cssa
    call()
    t = env.tcs()
    assert lp.enclave is not None and lp.enclave.tcs == BASE
    assert (t.state, t.cssa, t.aep) == (1, cssa, lp.enclave.aep)
    assert (lp.regs["rax"], lp.regs["rcx"], lp.regs["rip"]) == (cssa, 0x1003, ENTRY)


@pytest.mark.parametrize("build,setup,cssa", [r[1:] for r in ERESUME_OK],
                         ids=[r[0] for r in ERESUME_OK])
def test_eresume_control(build, setup, cssa):
    env, lp, call = _build(build, setup, "ERESUME")
    assert env.tcs().cssa == cssa
    frame_gpr = BASE + P + (cssa - 1) * 2 * P + P
    env.set_saved_rip(frame_gpr, ENTRY + 0x10)
    call()
    t = env.tcs()
    assert lp.enclave is not None
    assert (t.state, t.cssa, t.aep) == (1, cssa - 1, AEP)
    assert lp.regs["rip"] == ENTRY + 0x10


# ======================================================================================
# EEXIT (§4.17): a #GP raised in enclave mode is delivered through an AEX
# ======================================================================================
EEXIT_ROWS = [
    ("RBX-not-canonical-bit47", NONCANON),
    ("RBX-not-canonical-hole-top", 0xFFFF_7FFF_FFFF_F000),
]

EEXIT_OK = [
    ("RBX-canonical-high", 0xFFFF_8000_0000_0000),
    ("RBX-inside-ELRANGE", ENTRY),  # allowed; the next fetch is outside enclave mode (§4.17 3)
]


def _inside():
    env = Env()
    env.enter()
    return env, env.k.lp


@pytest.mark.parametrize("target", [r[1] for r in EEXIT_ROWS], ids=[r[0] for r in EEXIT_ROWS])
def test_eexit_first_failing_check(target):
    env, lp = _inside()
    epcm_before = env.snapshot(lp)[0]
    with pytest.raises(HwFault) as e:
        env.k.cpu.eexit(lp, target)
    assert type(e.value) is GeneralProtection
    t = env.tcs()
    # AEX, not EEXIT: CSSA += 1, STATE back to INACTIVE, synthetic state loaded.
    assert (t.cssa, t.state) == (1, 0)
    assert lp.enclave is None
    assert (lp.regs["rax"], lp.regs["rcx"], lp.regs["rip"]) == (3, AEP, AEP)
    assert env.snapshot(lp)[0] == epcm_before


@pytest.mark.parametrize("target", [r[1] for r in EEXIT_OK], ids=[r[0] for r in EEXIT_OK])
def test_eexit_control(target):
    env, lp = _inside()
    env.k.cpu.eexit(lp, target)
    t = env.tcs()
    assert (t.cssa, t.state) == (0, 0)
    assert lp.enclave is None
    assert (lp.regs["rip"], lp.regs["rcx"]) == (target, AEP)
