"""Each property on hand-built states: one that violates it (or reaches the
goal) and one that satisfies it, so a property that can never fail fails here."""

from __future__ import annotations

import pytest

from sgxsim.check.ghost import Ghost, PageGhost
from sgxsim.check.model import Event
from sgxsim.check.properties import GOALS, PROPERTIES, SAFETY, PteView, View, VmaView
from sgxsim.hw.faults import PF_PROT, PF_SGX, PF_USER, PF_WRITE

B = 0x7F0000000000


def pte(off, perms, valid=True, owned=True, epc_off=None):
    return PteView(B + off, off, perms, valid, owned, off if epc_off is None else epc_off)


def ghost(**pages):
    return Ghost({int(k[1:], 16): v for k, v in pages.items()})


TEXT = PageGhost("build", "RX", "REG", True)
DATA = PageGhost("build", "RW", "REG", False)
TCS = PageGhost("build", "", "TCS", False)
AUG = PageGhost("aug", "", "REG", False)


def check(name, view=None, before=None, after=None, events=()):
    view = View() if view is None else view
    before = Ghost() if before is None else before
    return PROPERTIES[name].check(view, before, before if after is None else after, tuple(events))


def test_the_nine_properties():
    assert SAFETY == ["no-escalation", "exec-origin", "w-xor-x", "no-stale-pte", "mprotect-honest"]
    assert GOALS == ["run-code", "dynamic-heap", "dynamic-code", "restrict"]


# no-escalation
def test_no_escalation_violated_by_pte_beyond_secinfo():
    g = ghost(p0=DATA)
    assert "extra X" in check("no-escalation", View((pte(0, "RWX"),)), g)


def test_no_escalation_tcs_counts_as_rw():
    g = ghost(p0=TCS)
    assert check("no-escalation", View((pte(0, "RW"),)), g) is None
    assert check("no-escalation", View((pte(0, "RX"),)), g) is not None


def test_no_escalation_holds_within_secinfo_and_for_eaug_pages():
    g = ghost(p0=TEXT, p1000=AUG)
    assert check("no-escalation", View((pte(0, "RX"), pte(0x1000, "RWX"))), g) is None


# exec-origin
def test_exec_origin_violated_by_fetch_from_non_exec_source():
    g = ghost(p0=DATA)
    assert "without VM_EXEC" in check("exec-origin", View(), g, events=[Event("fetch", 0, True)])


def test_exec_origin_violated_by_fetch_from_written_or_eaug_page():
    assert "written" in check("exec-origin", View(), ghost(p0=TEXT._replace(written=True)),
                              events=[Event("fetch", 0, True)])
    assert "EAUG" in check("exec-origin", View(), ghost(p0=AUG), events=[Event("fetch", 0, True)])


def test_exec_origin_holds_for_clean_exec_source_failed_fetch_or_execmod():
    assert check("exec-origin", View(), ghost(p0=TEXT), events=[Event("fetch", 0, True)]) is None
    assert check("exec-origin", View(), ghost(p0=DATA), events=[Event("fetch", 0, False, (0x8015,))]) is None
    assert check("exec-origin", View(execmod=True), ghost(p0=AUG), events=[Event("fetch", 0, True)]) is None


# w-xor-x
def test_w_xor_x_violated_through_one_or_two_ptes():
    assert check("w-xor-x", View((pte(0, "RWX"),))) is not None
    alias = PteView(B + 0x3000, 0x3000, "RW", True, True, 0)  # another PTE onto page 0
    assert check("w-xor-x", View((pte(0, "RX"), alias))) is not None


def test_w_xor_x_holds_for_separate_pages_or_execmem():
    assert check("w-xor-x", View((pte(0, "RX"), pte(0x1000, "RW")))) is None
    assert check("w-xor-x", View((pte(0, "RWX"),), execmem=True)) is None


# no-stale-pte
@pytest.mark.parametrize("bad", [pte(0, "R", valid=False), pte(0, "R", owned=False),
                                 pte(0, "R", epc_off=0x1000)])
def test_no_stale_pte_violated(bad):
    assert check("no-stale-pte", View((bad,))) is not None


def test_no_stale_pte_holds():
    assert check("no-stale-pte", View((pte(0, "R"), pte(0x1000, "RW")))) is None


# mprotect-honest
MP = Event("mprotect", B, True, (B + 0x2000, "RX"))


def test_mprotect_honest_violated_by_wrong_prot_or_hole():
    assert check("mprotect-honest", View(vmas=(VmaView(B, B + 0x2000, "RW"),)), events=[MP]) is not None
    assert check("mprotect-honest", View(vmas=(VmaView(B, B + 0x1000, "RX"),)), events=[MP]) is not None


def test_mprotect_honest_holds_for_covering_vmas_or_failed_call():
    v = View(vmas=(VmaView(B - 0x1000, B + 0x1000, "RX"), VmaView(B + 0x1000, B + 0x3000, "RX")))
    assert check("mprotect-honest", v, events=[MP]) is None
    assert check("mprotect-honest", View(), events=[MP._replace(ok=False)]) is None


# goals
def test_run_code_needs_both_a_build_fetch_and_a_build_store():
    g = ghost(p0=TEXT, p1000=DATA)
    g1 = g.after((Event("fetch", 0, True),))
    assert check("run-code", View(), g, g1) is None
    g2 = g1.after((Event("store", 0x1000, True),))
    assert check("run-code", View(), g1, g2) is not None


def test_dynamic_heap_and_code_need_an_eaug_page():
    g = ghost(p0=DATA, p1000=AUG)
    assert check("dynamic-heap", View(), g, events=[Event("store", 0x1000, True)]) is not None
    assert check("dynamic-heap", View(), g, events=[Event("store", 0, True)]) is None
    assert check("dynamic-code", View(), g, events=[Event("fetch", 0x1000, True)]) is not None
    assert check("dynamic-code", View(), g, events=[Event("fetch", 0x1000, False, (0x8015,))]) is None


def test_restrict_needs_accepted_read_only_and_an_sgx_fault():
    g = ghost(p0=DATA).after((Event("restrict", 0, True, ("R",)),))
    sgx_fault = Event("store", 0, False, (PF_SGX | PF_PROT | PF_WRITE | PF_USER,))
    assert check("restrict", View(), g, events=[sgx_fault]) is None  # not yet EACCEPTed
    g = g.after((Event("eaccept", 0, True),))
    assert check("restrict", View(), g, events=[sgx_fault]) is not None
    paging_fault = Event("store", 0, False, (PF_PROT | PF_WRITE | PF_USER,))
    assert check("restrict", View(), g, events=[paging_fault]) is None


def test_ghost_tracks_writes_removal_and_is_part_of_identity():
    g = ghost(p0=TEXT)
    g2 = g.after((Event("eacceptcopy", 0, True),))
    assert g2.page(0).written and not g.page(0).written and g.key() != g2.key()
    assert g2.after((Event("remove", 0, True),)).page(0) is None
    assert g.after((Event("store", 0, False, (6,)),)) == g
