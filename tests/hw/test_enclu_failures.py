"""ENCLU failure tables: the ordered checks of EACCEPT, EACCEPTCOPY and EMODPE
(sgx-hardware.md §4.18-§4.20, with §12 items 3, 10 and 11).

Each row builds a state in which exactly one check of the reference's ordered
list is the first to fail, and asserts the reference's outcome: #GP, #PF with
its address and error code, or the SDM return code.  After every failure the
EPCM must be unchanged.  A few "order" rows make two checks fail at once with
different outcomes, so that the earlier check must win.

Rows already covered by tests/hw/test_enclu.py are not repeated (EACCEPT:
SECINFO misaligned, RCX outside ELRANGE, RCX not present, PENDING/X mismatch,
REG without PENDING/PR, TRIM without MODIFIED, NOT_TRACKED after EMODPR;
EMODPE: a TCS target; EACCEPTCOPY: destination no longer PENDING).

Not tabulated: the "page busy" / concurrency checks (reference §13 item 13:
the model has no locking), the CET shadow-stack cases and the 32-bit TCS
checks (not modelled).

Fault rows: a fault raised by an ENCLU leaf in enclave mode is delivered
through an AEX, so the enclave has been left and CR2 has its low 12 bits
cleared (§4.17); the expected addresses are page aligned.  EPCM-check #PFs
have P=1, U/S=1 and the SGX bit (§5); SECINFO and the EACCEPT target and the
EACCEPTCOPY source are read operands (SDM memory-parameter tables), so their
code is 0x8005.  For an operand that paging maps to non-EPC memory the
reference leaves the SGX bit open (§13 item 2), so those rows do not assert
it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pytest
from tests.hw.leafkit import BASE, REG, RW, TCS, TRIM, Kit, epa, operand, secs_at, va_page_at

from sgxsim.hw.consts import PAGE_SIZE, PageType, SgxReturn
from sgxsim.hw.epc import EPCM_BLOCKED, EPCM_MODIFIED, EPCM_R, EPCM_X
from sgxsim.hw.faults import (
    PF_INSTR,
    PF_PROT,
    PF_SGX,
    PF_USER,
    PF_WRITE,
    GeneralProtection,
    PageFault,
)
from sgxsim.hw.memory import EPC_BASE_PFN
from sgxsim.hw.paging import PTE_PRESENT, pte_pfn
from sgxsim.hw.structs import Secinfo, Tcs

P = PAGE_SIZE
D0 = BASE + 2 * P  # SECINFO page
D1 = BASE + 3 * P  # an accepted RW data page
D2 = BASE + 4 * P  # another accepted RW data page
A5 = BASE + 5 * P  # EAUG'd (PENDING) page
F6 = BASE + 6 * P  # free slot in ELRANGE: aliases, foreign pages, RAM
F7 = BASE + 7 * P  # free slot in ELRANGE
OUT = BASE + 0x8000  # first page past ELRANGE
PENDING, MODIFIED, PR = 0x8, 0x10, 0x20
R_, W_, X_ = 0x1, 0x2, 0x4
PF_EPCM_READ = PF_SGX | PF_USER | PF_PROT  # 0x8005


# -- expected outcomes ----------------------------------------------------------------------
@dataclass(frozen=True)
class Gp:
    pass


@dataclass(frozen=True)
class Pf:
    addr: int
    code: int | None = PF_EPCM_READ  # exact error code, when the reference fixes it
    nonepc: bool = False  # operand maps to non-EPC memory: SGX bit open (§13 item 2)


@dataclass(frozen=True)
class Rc:
    code: int


GP = Gp()


# -- the enclave every row starts from --------------------------------------------------------
class Env:
    """Kit.standard() with three data pages and one EAUG'd page at A5."""

    def __init__(self):
        self.k = k = Kit().standard(data_pages=3)
        self.d0, self.d1, self.d2 = k.data_i
        self.a5 = k.eaug(5 * P)
        k.cpu.epc.page(self.d1)[:8] = b"src page"

    def idx(self, la: int) -> int:
        return pte_pfn(self.k.pt.get(la >> 12)) - EPC_BASE_PFN

    def poke(self, la: int, set_: int = 0, clear: int = 0) -> None:
        """Set EPCM flags directly, for states no leaf sequence isolates."""
        i = self.idx(la)
        self.k.cpu.epc.flags[i] = (self.k.cpu.epc.flags[i] | set_) & ~clear

    def free_epc_at(self, la: int) -> None:
        """Map a free (VALID=0) EPC page at ``la``."""
        self.k.map(la, self.k.alloc_epc())

    def alias(self, la: int, of: int) -> None:
        """Map the EPC page of ``of`` at ``la`` too (ENCLAVEADDRESS mismatch)."""
        self.k.map(la, self.idx(of))

    def foreign(self, la: int) -> None:
        """A REG RW page of a second enclave with the same ELRANGE, mapped at ``la``:
        ENCLAVEADDRESS matches, ENCLAVESECS does not."""
        k = self.k
        saved = (k.secs_i, k.base, k.size)
        k.ecreate()
        k.eadd(la - BASE, REG | RW)
        k.secs_i, k.base, k.size = saved

    def emodpr(self, la: int, perms: int) -> None:
        assert self.k.cpu.emodpr(self.k.secinfo(perms), epa(self.idx(la))) == 0

    def emodt(self, la: int, pt_flags: int) -> None:
        assert self.k.cpu.emodt(self.k.secinfo(pt_flags), epa(self.idx(la))) == 0

    def eblock(self, la: int) -> None:
        assert self.k.cpu.eblock(epa(self.idx(la))) == 0

    def etrack(self) -> None:
        assert self.k.cpu.etrack(epa(self.k.secs_i)) == 0

    def put_secinfo(self, la: int, raw: bytes) -> None:
        """Write SECINFO bytes at ``la`` wherever it is mapped (as the enclave
        or the untrusted side would); nothing if ``la`` is unmapped."""
        pte = self.k.pt.get(la >> 12)
        if not pte & PTE_PRESENT:
            return
        off = la & (P - 1)
        i = pte_pfn(pte) - EPC_BASE_PFN
        if 0 <= i < self.k.cpu.epc_pages:
            self.k.cpu.epc.page(i)[off : off + len(raw)] = raw
        else:
            self.k.cpu.phys.write((pte_pfn(pte) << 12) + off, raw)

    def epcm(self):
        e = self.k.cpu.epc
        return (bytes(e.flags), bytes(e.pt), e.secs.tobytes(), e.addr.tobytes())


def _secinfo_bytes(ops) -> bytes:
    raw = bytearray(Secinfo(flags=ops["flags"]).pack())
    if ops.get("reserved_byte"):
        raw[8 + 13] = 1
    return bytes(raw)


def _check(env: Env, expected, call) -> None:
    """Run ``call``; assert the outcome and that a failure left the EPCM alone."""
    lp = env.k.lp
    before = env.epcm()
    if isinstance(expected, Rc):
        assert call() == expected.code
        if expected.code:
            assert env.epcm() == before, "EPCM changed by a failing leaf"
        assert lp.enclave is not None  # a return code is not an exit
        return
    exc = GeneralProtection if isinstance(expected, Gp) else PageFault
    with pytest.raises(exc) as e:
        call()
    assert type(e.value) is exc
    assert env.epcm() == before, "EPCM changed by a faulting leaf"
    assert lp.enclave is None  # delivered through an AEX
    if isinstance(expected, Pf):
        f = e.value
        assert f.addr == expected.addr
        if expected.nonepc:
            # Open in the reference whether the SGX bit is set (§13 item 2).
            assert f.error_code & (PF_USER | PF_PROT) == PF_USER | PF_PROT
            assert not f.error_code & PF_INSTR
        elif expected.code is not None:
            assert f.error_code == expected.code
        else:
            must = PF_SGX | PF_USER | PF_PROT
            assert f.error_code & ~PF_WRITE == must


# -- SECINFO operand rows shared by the three leaves (§4.18 step 1; §4.19/§4.20 step 3) -----
# Each takes (env, ops) and makes the SECINFO page fail one EPCM rule; ops["secinfo"]
# is moved when the rule is about the page the SECINFO sits in.
_si_at = partial(operand, "secinfo")


def _si_not_valid(env, ops):
    env.free_epc_at(F6)
    ops["secinfo"] = F6


def _si_r0(env, ops):
    env.emodpr(D0, 0)  # R=W=X=0, PR=1


def _si_pending(env, ops):
    env.k.eaug(6 * P)
    ops["secinfo"] = F6


def _si_modified(env, ops):
    env.poke(D0, set_=EPCM_MODIFIED)  # PT stays REG: no leaf sequence isolates this


def _si_blocked(env, ops):
    env.eblock(D0)


def _si_pt_not_reg(env, ops):
    env.k.cpu.epc.pt[env.d0] = PageType.PT_TCS  # R stays 1: isolate the type rule


def _si_other_enclave(env, ops):
    env.foreign(F6)
    ops["secinfo"] = F6


def _si_enclaveaddress(env, ops):
    env.alias(F6, D0)
    ops["secinfo"] = F6


def _si_ram(env, ops):
    env.k.map_ram(F7)
    ops["secinfo"] = F7 + 0x40


def _flags_or(bits):
    def f(env, ops):
        ops["flags"] |= bits
    return f


def _reserved_byte(env, ops):
    ops["reserved_byte"] = True


def _seq(*fns):
    def f(env, ops):
        for fn in fns:
            fn(env, ops)
    return f


def secinfo_rows(first_gp_rows: list):
    """SECINFO rows: (id, setup, expected)."""
    return [
        *first_gp_rows,
        ("RBX-not-EPC", _si_ram, Pf(F7, nonepc=True)),
        ("RBX-paging-not-present", _si_at(F7), Pf(F7, code=PF_USER)),
        ("RBX-EPCM-not-VALID", _si_not_valid, Pf(F6)),
        ("RBX-EPCM-R=0", _si_r0, Pf(D0)),
        ("RBX-EPCM-PENDING", _si_pending, Pf(F6)),
        ("RBX-EPCM-MODIFIED", _si_modified, Pf(D0)),
        ("RBX-EPCM-BLOCKED", _si_blocked, Pf(D0)),
        ("RBX-EPCM-PT-not-REG", _si_pt_not_reg, Pf(D0)),
        ("RBX-EPCM-other-enclave", _si_other_enclave, Pf(F6)),
        ("RBX-EPCM-ENCLAVEADDRESS", _si_enclaveaddress, Pf(F6)),
        ("SECINFO-reserved-flags-7:6", _flags_or(0x40), GP),
        ("SECINFO-reserved-flags-63:16", _flags_or(1 << 16), GP),
        ("SECINFO-reserved-bytes", _reserved_byte, GP),
    ]


# ======================================================================================
# EACCEPT (§4.18)
# ======================================================================================
_target = partial(operand, "page")


def _tcs_target(**fields):
    """D1 becomes a new TCS via EMODT, tracked, with the given TCS contents."""
    def f(env, ops):
        t = Tcs(ossa=P, nssa=1, oentry=0)
        t = t.replace(**fields) if fields else t
        env.k.cpu.epc.page(env.d1)[:] = t.pack()
        env.emodt(D1, TCS)
        env.etrack()
        ops.update(page=D1, flags=TCS | MODIFIED)
    return f


def _emodt_trim_untracked(env, ops):
    env.emodt(D1, TRIM)
    ops.update(page=D1, flags=TRIM | MODIFIED)


def _emodt_trim_pt_mismatch(env, ops):
    env.emodt(D1, TRIM)  # not tracked either: the mismatch must win
    ops.update(page=D1, flags=TCS | MODIFIED)


def _trim_accepted_twice(env, ops):
    env.emodt(D1, TRIM)
    env.etrack()
    ops.update(page=D1, flags=TRIM | MODIFIED, accept_first=True)


def _etrack_while_inside(env, ops):
    env.emodpr(D1, R_)
    ops.update(page=D1, flags=REG | R_ | PR, inside=lambda env: env.etrack())


def _target_ram(env, ops):
    env.k.map_ram(F7)
    ops["page"] = F7


def _target_not_valid(env, ops):
    env.free_epc_at(F6)
    ops["page"] = F6


def _target_blocked(env, ops):
    env.eblock(A5)


_target_secs = secs_at("page", F6)


_target_va = va_page_at("page", F6)


def _target_other_enclave(env, ops):
    env.foreign(F6)
    ops["page"] = F6


def _target_alias(env, ops):
    env.alias(F6, A5)
    ops["page"] = F6


def _target_modified_reg(env, ops):
    env.poke(A5, set_=EPCM_MODIFIED)  # PT_REG with MODIFIED: only a poke gets here


_flags = partial(operand, "flags")


EACCEPT_ROWS = [
    # 1. SECINFO operand
    *secinfo_rows([("RBX-outside-ELRANGE", _seq(lambda e, o: e.k.map_ram(OUT), _si_at(OUT)), GP)],
                  ),
    # 2. target operand
    ("RCX-not-4K-aligned", _target(A5 + 0x100), GP),
    ("RCX-not-EPC", _target_ram, Pf(F7, nonepc=True)),
    # 3. legal request combinations
    ("request-REG-with-MODIFIED", _flags(REG | RW | PENDING | MODIFIED), GP),
    ("request-TCS-with-PENDING", _flags(TCS | PENDING | MODIFIED), GP),
    ("request-TRIM-with-PR", _flags(TRIM | MODIFIED | PR), GP),
    ("request-PT_VA", _flags(0x300 | MODIFIED), GP),
    ("request-PT_SECS", _flags(PENDING | RW), GP),
    # 4. target state
    ("RCX-EPCM-not-VALID", _target_not_valid, Pf(F6)),
    ("RCX-EPCM-BLOCKED", _target_blocked, Pf(A5)),
    ("RCX-EPCM-PT_SECS", _target_secs, Pf(F6)),
    ("RCX-EPCM-PT_VA", _target_va, Pf(F6)),
    ("RCX-EPCM-other-enclave", _target_other_enclave, Pf(F6)),
    # 5. attribute match
    ("match-ENCLAVEADDRESS", _target_alias, Rc(SgxReturn.SGX_PAGE_ATTRIBUTES_MISMATCH)),
    ("match-MODIFIED", _trim_accepted_twice, Rc(SgxReturn.SGX_PAGE_ATTRIBUTES_MISMATCH)),
    ("match-MODIFIED-on-REG", _target_modified_reg, Rc(SgxReturn.SGX_PAGE_ATTRIBUTES_MISMATCH)),
    ("match-W", _flags(REG | R_ | PENDING), Rc(SgxReturn.SGX_PAGE_ATTRIBUTES_MISMATCH)),
    ("match-PT-before-tracking", _emodt_trim_pt_mismatch,
     Rc(SgxReturn.SGX_PAGE_ATTRIBUTES_MISMATCH)),
    # 6. tracking
    ("tracking-EMODT-no-ETRACK", _emodt_trim_untracked, Rc(SgxReturn.SGX_NOT_TRACKED)),
    ("tracking-ETRACK-while-inside", _etrack_while_inside, Rc(SgxReturn.SGX_NOT_TRACKED)),
    # 7. TCS contents (PT_TCS only)
    ("TCS-reserved-nonzero", _tcs_target(reserved=b"\x01" + bytes(4023)), GP),
    ("TCS-DBGOPTIN", _tcs_target(flags=Tcs.FLAGS_DBGOPTIN), GP),
    ("TCS-CSSA>=NSSA", _tcs_target(cssa=1, nssa=1), GP),
    ("TCS-AEP", _tcs_target(aep=0x5000), GP),
    ("TCS-STATE", _tcs_target(state=1), GP),
    # order: the whole SECINFO is checked before RCX
    ("order-SECINFO-reserved-before-RCX-not-EPC", _seq(_flags_or(0x40), _target_ram), GP),
    ("order-RBX-EPCM-before-RCX-misaligned", _seq(_si_blocked, _target(A5 + 8)), Pf(D0)),
    ("order-request-before-RCX-EPCM", _seq(_flags(REG | RW), _target_not_valid), GP),
]

EACCEPT_OK = [
    ("EAUG-page", lambda env, ops: None, A5),
    ("SECINFO.PR-not-compared", _flags(REG | RW | PENDING | PR), A5),
    ("new-TCS", _tcs_target(), D1),
    ("TRIM", _seq(lambda env, ops: (env.emodt(D1, TRIM), env.etrack()),
                  _flags(TRIM | MODIFIED), _target(D1)), D1),
]


def _run_eaccept(setup):
    env = Env()
    ops = {"secinfo": D0, "flags": REG | RW | PENDING, "page": A5}
    setup(env, ops)
    k = env.k
    k.enter()
    if ops.get("accept_first"):
        env.put_secinfo(ops["secinfo"], _secinfo_bytes(ops))
        assert k.cpu.eaccept(k.lp, ops["secinfo"], ops["page"]) == 0
    if ops.get("inside"):
        ops["inside"](env)
    env.put_secinfo(ops["secinfo"], _secinfo_bytes(ops))
    return env, lambda: k.cpu.eaccept(k.lp, ops["secinfo"], ops["page"])


@pytest.mark.parametrize("setup,expected", [r[1:] for r in EACCEPT_ROWS],
                         ids=[r[0] for r in EACCEPT_ROWS])
def test_eaccept_first_failing_check(setup, expected):
    env, call = _run_eaccept(setup)
    _check(env, expected, call)


@pytest.mark.parametrize("setup,target", [r[1:] for r in EACCEPT_OK],
                         ids=[r[0] for r in EACCEPT_OK])
def test_eaccept_control(setup, target):
    """Base states without the fault: EACCEPT succeeds and clears the state bits."""
    env, call = _run_eaccept(setup)
    assert call() == 0
    e = env.k.cpu.epc.epcm(env.idx(target))
    assert (e.pending, e.modified, e.pr) == (False, False, False)


# ======================================================================================
# EACCEPTCOPY (§4.19)
# ======================================================================================
_dst = partial(operand, "dst")


_src = partial(operand, "src")


def _ram_at(la, key):
    def f(env, ops):
        env.k.map_ram(la)
        ops[key] = la
    return f


def _src_poke(set_=0, clear=0):
    def f(env, ops):
        env.poke(D1, set_=set_, clear=clear)
    return f


def _dst_poke(set_=0, clear=0):
    def f(env, ops):
        env.poke(A5, set_=set_, clear=clear)
    return f


MISMATCH = Rc(SgxReturn.SGX_PAGE_ATTRIBUTES_MISMATCH)

EACCEPTCOPY_ROWS = [
    # 1. alignment and ELRANGE
    *secinfo_rows([
        ("RBX-not-64B-aligned", _si_at(D0 + 8), GP),
        ("RCX-not-4K-aligned", _dst(A5 + 0x100), GP),
        ("RDX-not-4K-aligned", _src(D1 + 0x100), GP),
        ("RBX-outside-ELRANGE", _ram_at(OUT, "secinfo"), GP),
        ("RCX-outside-ELRANGE", _ram_at(OUT, "dst"), GP),
        ("RDX-outside-ELRANGE", _ram_at(OUT, "src"), GP),
    ]),
    # 2. each operand in the EPC
    ("RCX-not-EPC", _ram_at(F7, "dst"), Pf(F7, nonepc=True)),
    ("RDX-not-EPC", _ram_at(F7, "src"), Pf(F7, nonepc=True)),
    # 4. SECINFO contents (reserved rows come from secinfo_rows)
    ("SECINFO-W-without-R", _flags(REG | W_), GP),
    ("SECINFO-PT-not-REG", _flags(TCS | R_), GP),
    # 5. source
    ("RDX-EPCM-not-VALID", _seq(lambda e, o: e.free_epc_at(F6), _src(F6)), Pf(F6)),
    ("RDX-EPCM-R=0", _src_poke(clear=EPCM_R), Pf(D1)),
    ("RDX-EPCM-PENDING", _seq(lambda e, o: e.k.eaug(6 * P), _src(F6)), Pf(F6)),
    ("RDX-EPCM-MODIFIED", _src_poke(set_=EPCM_MODIFIED), Pf(D1)),
    ("RDX-EPCM-BLOCKED", lambda e, o: e.eblock(D1), Pf(D1)),
    ("RDX-EPCM-PT-not-REG", lambda e, o: e.k.cpu.epc.pt.__setitem__(e.d1, PageType.PT_TCS),
     Pf(D1)),
    ("RDX-EPCM-other-enclave", _seq(lambda e, o: e.foreign(F6), _src(F6)), Pf(F6)),
    ("RDX-EPCM-ENCLAVEADDRESS", _seq(lambda e, o: e.alias(F6, D1), _src(F6)), Pf(F6)),
    # 6. destination state -> SGX_PAGE_ATTRIBUTES_MISMATCH
    ("RCX-not-VALID", _seq(lambda e, o: e.free_epc_at(F6), _dst(F6)), MISMATCH),
    ("RCX-MODIFIED", _dst_poke(set_=EPCM_MODIFIED), MISMATCH),
    ("RCX-BLOCKED", lambda e, o: e.eblock(A5), MISMATCH),  # §12 item 10: EPCM(RCX).BLOCKED
    ("RCX-PT-not-REG", _seq(lambda e, o: e.emodt(D2, TRIM), _dst(D2)), MISMATCH),
    ("RCX-other-enclave", _seq(lambda e, o: e.foreign(F6), _dst(F6)), MISMATCH),
    # 8. destination re-check
    ("RCX-RWX-not-RW", _dst_poke(set_=EPCM_X), MISMATCH),  # X set on the pending page
    ("RCX-ENCLAVEADDRESS", _seq(lambda e, o: e.alias(F6, A5), _dst(F6)), MISMATCH),
    # order: every operand is in the EPC before any EPCM rule (steps 2, 3)
    ("order-RCX-not-EPC-before-RBX-EPCM", _seq(_si_blocked, _ram_at(F7, "dst")),
     Pf(F7, nonepc=True)),
    ("order-RDX-not-EPC-before-SECINFO-reserved", _seq(_flags_or(1 << 16), _ram_at(F7, "src")),
     Pf(F7, nonepc=True)),
    ("order-SECINFO-W-without-R-before-RDX-EPCM", _seq(_flags(REG | W_), _src_poke(clear=EPCM_R)),
     GP),
    ("order-RDX-EPCM-before-RCX-state", _seq(_src_poke(set_=EPCM_BLOCKED),
                                             _dst_poke(set_=EPCM_MODIFIED)), Pf(D1)),
]


def _run_eacceptcopy(setup):
    env = Env()
    ops = {"secinfo": D0, "flags": REG | R_ | X_, "dst": A5, "src": D1}
    setup(env, ops)
    k = env.k
    k.enter()
    env.put_secinfo(ops["secinfo"], _secinfo_bytes(ops))
    return env, lambda: k.cpu.eacceptcopy(k.lp, ops["secinfo"], ops["dst"], ops["src"])


@pytest.mark.parametrize("setup,expected", [r[1:] for r in EACCEPTCOPY_ROWS],
                         ids=[r[0] for r in EACCEPTCOPY_ROWS])
def test_eacceptcopy_first_failing_check(setup, expected):
    env, call = _run_eacceptcopy(setup)
    _check(env, expected, call)


def test_eacceptcopy_control():
    env, call = _run_eacceptcopy(lambda env, ops: None)
    assert call() == 0
    e = env.k.cpu.epc.epcm(env.a5)
    assert (e.perms, e.pending) == (R_ | X_, False)
    assert bytes(env.k.cpu.epc.page(env.a5)[:8]) == b"src page"


# ======================================================================================
# EMODPE (§4.20)
# ======================================================================================
_page = _target


EMODPE_ROWS = [
    *secinfo_rows([
        ("RBX-not-64B-aligned", _si_at(D0 + 8), GP),
        ("RCX-not-4K-aligned", _page(D1 + 0x100), GP),
        ("RBX-outside-ELRANGE", _ram_at(OUT, "secinfo"), GP),
        ("RCX-outside-ELRANGE", _ram_at(OUT, "page"), GP),
    ]),
    # 2. target in the EPC
    ("RCX-not-EPC", _ram_at(F7, "page"), Pf(F7, nonepc=True)),
    ("RCX-paging-not-present", _page(F7), Pf(F7, code=PF_USER)),
    # 5. target EPCM state (the access type of this #PF is not fixed by the reference)
    ("RCX-EPCM-not-VALID", _seq(lambda e, o: e.free_epc_at(F6), _page(F6)), Pf(F6, code=None)),
    ("RCX-EPCM-PENDING", _page(A5), Pf(A5, code=None)),
    ("RCX-EPCM-MODIFIED", lambda e, o: e.poke(D1, set_=EPCM_MODIFIED), Pf(D1, code=None)),
    ("RCX-EPCM-BLOCKED", lambda e, o: e.eblock(D1), Pf(D1, code=None)),
    ("RCX-EPCM-PT_TRIM", _seq(lambda e, o: e.emodt(D2, TRIM), _page(D2)), Pf(D2, code=None)),
    ("RCX-EPCM-other-enclave", _seq(lambda e, o: e.foreign(F6), _page(F6)), Pf(F6, code=None)),
    ("RCX-EPCM-ENCLAVEADDRESS", _seq(lambda e, o: e.alias(F6, D1), _page(F6)),
     Pf(F6, code=None)),
    # 7. W without R (§12 item 11)
    ("W-without-R", _seq(lambda e, o: e.emodpr(D1, 0), _flags(REG | W_)), GP),
    # order: the target is in the EPC before the SECINFO page's EPCM rules (steps 2, 3)
    ("order-RCX-not-EPC-before-RBX-EPCM", _seq(_si_blocked, _ram_at(F7, "page")),
     Pf(F7, nonepc=True)),
    ("order-RCX-not-EPC-before-SECINFO-reserved", _seq(_flags_or(0x80), _ram_at(F7, "page")),
     Pf(F7, nonepc=True)),
    ("order-SECINFO-reserved-before-RCX-EPCM", _seq(_flags_or(0x80), _page(A5)), GP),
]

EMODPE_OK = [
    ("extend-X", lambda env, ops: None, 0x7),
    ("W-with-EPCM-R", _flags(REG | W_), 0x3),
    ("R-and-W-after-EMODPR-0", _seq(lambda e, o: e.emodpr(D1, 0), _flags(REG | R_ | W_)), 0x3),
]


def _run_emodpe(setup):
    env = Env()
    ops = {"secinfo": D0, "flags": REG | X_, "page": D1}
    setup(env, ops)
    k = env.k
    k.enter()
    env.put_secinfo(ops["secinfo"], _secinfo_bytes(ops))

    def call():
        k.cpu.emodpe(k.lp, ops["secinfo"], ops["page"])
        return 0  # EMODPE returns no code

    return env, call


@pytest.mark.parametrize("setup,expected", [r[1:] for r in EMODPE_ROWS],
                         ids=[r[0] for r in EMODPE_ROWS])
def test_emodpe_first_failing_check(setup, expected):
    env, call = _run_emodpe(setup)
    _check(env, expected, call)


@pytest.mark.parametrize("setup,perms", [r[1:] for r in EMODPE_OK], ids=[r[0] for r in EMODPE_OK])
def test_emodpe_control(setup, perms):
    env, call = _run_emodpe(setup)
    pr_before = env.k.cpu.epc.epcm(env.d1).pr
    call()
    e = env.k.cpu.epc.epcm(env.d1)
    assert e.perms == perms
    assert e.pr == pr_before  # PR neither checked nor changed
