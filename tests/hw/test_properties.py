"""Hypothesis: random leaf sequences keep the SDM's guarantees; random input
only ever yields the model's own faults or SGX codes."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tests.hw.leafkit import BASE, REG, RWX, TCS, TRIM, Kit, epa

from sgxsim.hw.consts import PAGE_SIZE, SgxReturn
from sgxsim.hw.faults import HwFault, PageFault
from sgxsim.hw.structs import Pageinfo

NPAGES = 4  # data pages at offsets 2..5 (offsets 6..7 are EAUG candidates)
OFFSETS = list(range(2, 8))
PERMS = st.sampled_from([0x1, 0x3, 0x5, 0x7, 0x0, 0x4])

_TEMPLATE: Kit | None = None


def fresh_kit() -> Kit:
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = Kit(epc_pages=24).standard(data_pages=NPAGES, data_flags=RWX)
    return copy.deepcopy(_TEMPLATE)


class LeafMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.k = fresh_kit()
        self.evicted: dict[int, tuple] = {}  # offset -> (va, backing, pcmd, pginfo, epcm, data)

    # -- helpers --------------------------------------------------------------------
    def index(self, off: int) -> int | None:
        pte = self.k.pt.get((BASE >> 12) + off)
        if not pte:
            return None
        i = self.k.cpu.epc.index(((pte >> 12) & ((1 << 40) - 1)) << 12)
        return i if i is not None and self.k.cpu.epc.is_valid(i) else None

    def inside(self) -> None:
        if self.k.lp.enclave is None:
            self.k.lp.regs["rip"] = 0x1000
            try:
                self.k.cpu.eenter(self.k.lp, BASE, 0x5000)
            except HwFault:
                self.k.cpu.eresume(self.k.lp, BASE, 0x5000)

    # -- rules ------------------------------------------------------------------------
    @rule(off=st.sampled_from(OFFSETS))
    def eaug(self, off):
        if self.index(off) is None and off not in self.evicted:
            self.k.eaug(off * PAGE_SIZE)

    @rule(off=st.sampled_from(OFFSETS), perms=PERMS)
    def emodpr(self, off, perms):
        i = self.index(off)
        if i is None or perms == 0x2:
            return
        before = self.k.cpu.epc.epcm(i)
        try:
            code = self.k.cpu.emodpr(self.k.secinfo(perms), epa(i))
        except PageFault:
            assert before.pt != 2
            return
        after = self.k.cpu.epc.epcm(i)
        assert after.perms & ~before.perms == 0, "EMODPR added a permission"
        if before.pending or before.modified:
            assert code == SgxReturn.SGX_PAGE_NOT_MODIFIABLE
        else:
            assert code == 0 and after.pr

    @rule(off=st.sampled_from(OFFSETS), trim=st.booleans())
    def emodt(self, off, trim):
        i = self.index(off)
        if i is not None:
            try:
                self.k.cpu.emodt(self.k.secinfo(TRIM if trim else TCS), epa(i))
            except PageFault:
                pass

    @rule()
    def etrack(self):
        self.k.cpu.etrack(epa(self.k.secs_i))

    @rule(off=st.sampled_from(OFFSETS), perms=PERMS)
    def emodpe(self, off, perms):
        i = self.index(off)
        if i is None:
            return
        self.inside()
        before = self.k.cpu.epc.epcm(i)
        la = self.k.secinfo_in_enclave(2 * PAGE_SIZE + 0x800, REG | perms)
        try:
            self.k.cpu.emodpe(self.k.lp, la, BASE + off * PAGE_SIZE)
        except HwFault:
            return
        assert before.perms & ~self.k.cpu.epc.epcm(i).perms == 0, "EMODPE removed a permission"

    @rule(off=st.sampled_from(OFFSETS), flags=st.sampled_from(
        [REG | 0x3 | 0x8, REG | 0x1 | 0x20, REG | 0x3 | 0x20, TRIM | 0x10, TCS | 0x10]))
    def eaccept(self, off, flags):
        if self.index(off) is None:
            return
        self.inside()
        la = self.k.secinfo_in_enclave(2 * PAGE_SIZE + 0x800, flags)
        try:
            self.k.cpu.eaccept(self.k.lp, la, BASE + off * PAGE_SIZE)
        except HwFault:
            pass

    @rule(off=st.sampled_from(OFFSETS), kind=st.sampled_from(["load", "store", "fetch"]))
    def access(self, off, kind):
        i = self.index(off)
        if i is None:
            return
        self.inside()
        e = self.k.cpu.epc.epcm(i)
        la = BASE + off * PAGE_SIZE + 0x100
        try:
            if kind == "load":
                self.k.cpu.load(self.k.lp, la, 8)
            elif kind == "store":
                self.k.cpu.store(self.k.lp, la, b"\x5a" * 8)
            else:
                self.k.cpu.fetch(self.k.lp, la)
            ok = True
        except HwFault:
            ok = False
        if e.pending or e.modified or e.blocked or e.pt != 2:
            assert not ok, "a PENDING/MODIFIED/BLOCKED or non-REG page was accessible"
        if ok:
            assert {"load": e.r, "store": e.w, "fetch": e.x}[kind]

    @rule()
    def eexit(self):
        if self.k.lp.enclave is not None:
            self.k.cpu.eexit(self.k.lp, 0x1003)

    @rule()
    def eremove_secs(self):
        assert self.k.cpu.eremove(epa(self.k.secs_i)) == SgxReturn.SGX_CHILD_PRESENT

    @rule(off=st.sampled_from(OFFSETS))
    def block_and_evict(self, off):
        i = self.index(off)
        if i is None or off == 2:  # offset 2 holds the SECINFOs the rules use
            return
        cpu = self.k.cpu
        if not cpu.epc.epcm(i).blocked:
            assert cpu.eblock(epa(i)) == 0
        va = self.k.alloc_epc() if self.k.next_epc < 24 else None
        if va is None:
            return
        cpu.epa(epa(va))
        backing, pcmd, pginfo = self.k.frame(), self.k.frame(), self.k.frame()
        cpu.phys.write(pginfo, Pageinfo(srcpge=backing, secinfo=pcmd).pack())
        before, data = cpu.epc.epcm(i), bytes(cpu.epc.page(i))
        code = cpu.ewb(pginfo, epa(i), epa(va))
        if not cpu.tracked(i):
            assert code == SgxReturn.SGX_NOT_TRACKED
            return
        assert code == 0
        self.k.pt.clear((BASE >> 12) + off)
        self.evicted[off] = (va, backing, pcmd, pginfo, before, data, i)

    @precondition(lambda self: self.evicted)
    @rule(data=st.data())
    def reload(self, data):
        off = data.draw(st.sampled_from(sorted(self.evicted)))
        va, backing, pcmd, pginfo, before, content, i = self.evicted.pop(off)
        cpu = self.k.cpu
        cpu.phys.write(pginfo, Pageinfo(linaddr=BASE + off * PAGE_SIZE, srcpge=backing,
                                        secinfo=pcmd, secs=epa(self.k.secs_i)).pack())
        assert cpu.eldu(pginfo, epa(i), epa(va)) == 0
        assert cpu.epc.epcm(i)._replace(blocked=True) == before._replace(blocked=True)
        assert bytes(cpu.epc.page(i)) == content
        self.k.map(BASE + off * PAGE_SIZE, i)

    @invariant()
    def children_count_is_exact(self):
        epc = self.k.cpu.epc
        n = sum(1 for j in range(epc.npages) if epc.is_valid(j) and epc.pt[j] not in (0, 3)
                and epc.secs[j] == self.k.secs_i)
        assert epc.secs_state[self.k.secs_i].children == n


TestLeafMachine = LeafMachine.TestCase
TestLeafMachine.settings = settings(max_examples=60, stateful_step_count=25, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])


# -- bad input -----------------------------------------------------------------------------
U64 = st.integers(0, (1 << 64) - 1)


def _addresses() -> st.SearchStrategy[int]:
    # Deep copies keep frame numbers, so the template's addresses are every copy's.
    k = fresh_kit()
    epc = [epa(i) + off for i in range(k.cpu.epc_pages) for off in (0, 8, 0x100)]
    ram = [k.scratch, k.secinfo_pa, k.scratch + 32, k.secinfo_pa + 64]
    enclave = [BASE + off for off in (0, 0x1000, 0x2000, 0x2040, 0x3000, 0x5000, 0x7000, 0x8000)]
    return st.one_of(st.sampled_from(epc), st.sampled_from(ram), st.sampled_from(enclave), U64)


ADDRESSES = _addresses()


ENCLS = ["ecreate", "eadd", "eextend", "einit", "eremove", "edbgrd", "edbgwr", "eblock",
         "etrack", "epa", "ewb", "eldu", "eldb", "eaug", "emodpr", "emodt"]
ENCLU = ["eenter", "eresume", "eexit", "eaccept", "eacceptcopy", "emodpe", "ereport",
         "egetkey", "load", "store", "fetch"]
ARITY = {"ecreate": 2, "eadd": 2, "eextend": 2, "einit": 3, "eremove": 1, "edbgrd": 1,
         "edbgwr": 2, "eblock": 1, "etrack": 1, "epa": 1, "ewb": 3, "eldu": 3, "eldb": 3,
         "eaug": 2, "emodpr": 2, "emodt": 2, "eenter": 2, "eresume": 2, "eexit": 1,
         "eaccept": 2, "eacceptcopy": 3, "emodpe": 2, "ereport": 3, "egetkey": 2,
         "load": 2, "store": 2, "fetch": 1}


def _call(k: Kit, name: str, args: list[int]):
    cpu = k.cpu
    if name in ENCLS:
        return getattr(cpu, name)(*args)
    if name == "load":
        return cpu.load(k.lp, args[0], args[1] % 64 + 1)
    if name == "store":
        return cpu.store(k.lp, args[0], args[1].to_bytes(8, "little"))
    return getattr(cpu, name)(k.lp, *args)


CALL = st.tuples(st.sampled_from(ENCLS + ENCLU), st.lists(ADDRESSES, min_size=3, max_size=3),
                 st.booleans(), st.binary(min_size=64, max_size=64))


@settings(max_examples=1600, deadline=None, suppress_health_check=list(HealthCheck))
@given(calls=st.lists(CALL, min_size=5, max_size=5))
def test_random_leaf_arguments_give_only_model_results(calls):
    """8,000 cases: each example is five independent leaf calls, each on a fresh
    copy of an initialised enclave, with random operands (aligned and
    misaligned EPC addresses, RAM, enclave linear addresses, any 64-bit value)
    and random bytes where SECINFO and PAGEINFO operands are read."""
    for leaf, args, inside, junk in calls:
        k = fresh_kit()
        k.cpu.phys.write(k.secinfo_pa, junk)
        k.cpu.phys.write(k.scratch, junk[:32])
        if inside:
            k.enter()
        try:
            r = _call(k, leaf, args[: ARITY[leaf]])
        except HwFault:
            continue
        assert r is None or isinstance(r, (int, bytes, tuple))
        if isinstance(r, int):
            assert r == 0 or r in SgxReturn._value2member_map_


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(head=st.binary(min_size=32, max_size=2048), fill=st.integers(0, 255),
       leaf=st.sampled_from(["ecreate", "eadd", "einit", "eldu", "ewb"]))
def test_random_structures_give_only_model_results(head, fill, leaf):
    """Random SECS, TCS, SIGSTRUCT, PCMD and PAGEINFO contents (random bytes
    where the fields are, one random byte repeated to the end of the page)."""
    raw = head + bytes([fill]) * (PAGE_SIZE - len(head))
    k = fresh_kit()
    src = k.frame(raw)
    k.cpu.phys.write(k.scratch, raw[:32])
    try:
        if leaf == "ecreate":
            r = k.cpu.ecreate(k.pageinfo(srcpge=src, secinfo=k.secinfo(0)), epa(20))
        elif leaf == "eadd":
            k2 = Kit(epc_pages=4)
            k2.ecreate()
            r = k2.cpu.eadd(k2.pageinfo(BASE, k2.frame(raw), k2.secinfo(TCS), epa(0)), epa(1))
        elif leaf == "einit":
            k2 = Kit(epc_pages=4)
            k2.ecreate()
            r = k2.cpu.einit(k2.frame(raw), epa(0), k2.frame(raw[:512] + bytes(PAGE_SIZE - 512)))
        elif leaf == "eldu":
            r = k.cpu.eldu(k.scratch, epa(21), epa(22))
        else:
            r = k.cpu.ewb(k.scratch, epa(k.data_i[0]), epa(22))
    except HwFault:
        return
    assert r is None or r in SgxReturn._value2member_map_
