"""The checker's enclave runtime (check/runtime.py): operations go through
``__vdso_sgx_enter_enclave``; an exception is reported in sgx_enclave_run and
the program's handler leaves the TCS at CSSA 0 for the next operation."""

from __future__ import annotations

from sgxsim.check import runtime
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action
from sgxsim.check.scope import PAGE, Scope
from sgxsim.hw.faults import PF_PROT, PF_SGX, PF_USER, PF_WRITE
from sgxsim.hw.structs import Tcs


def _run(model, path, trace=False):
    st = model.initial()
    steps = []
    for a in path:
        s = model.step(st, a, trace=trace)
        steps.append(s)
        st = s.state
    return st, steps


def _cssa(model, st) -> int:
    encl = model.encl(st)
    entry = encl.page_array[(model.tcs) >> 12]
    return Tcs.unpack(st.m.cpu.epc.page(entry.epc_page.index)).cssa


BUILD = [Action.make("add_pages", offset=0, source="anon", type="REG", perms="RW"), Action.make("init")]


def test_a_refused_store_is_reported_by_the_vdso_and_the_next_operation_runs():
    model = MachineModel("linux-6.0", Scope())
    path = BUILD + [Action.make("mmap", offset=0, length=PAGE, prot="R"),
                    Action.make("store", offset=0), Action.make("load", offset=0)]
    st, steps = _run(model, path, trace=True)
    store, load = steps[-2], steps[-1]
    # A write to a page not yet mapped, through a read-only VMA: an ordinary
    # not-present #PF (no SGX bit) that the kernel refuses (access_error);
    # fixup_vdso_exception reports it.
    (ev,) = store.events
    assert not ev.ok and ev.info == (PF_USER | PF_WRITE,)
    assert any("fixup_vdso_exception" in str(d) for d in store.decisions)
    assert load.events[0].ok
    assert _cssa(model, st) == 0


def test_an_epcm_refusal_carries_the_sgx_bit():
    model = MachineModel("linux-6.0", Scope())
    path = BUILD + [Action.make("mmap", offset=0, length=PAGE, prot="RW"),
                    Action.make("restrict", offset=0, perms="R"), Action.make("eaccept", offset=0),
                    Action.make("store", offset=0)]
    st, steps = _run(model, path)
    (ev,) = steps[-1].events
    # The PTE is writable (the VMA is RW); the EPCM says R: #PF with SGX bit.
    assert not ev.ok and ev.info == (PF_SGX | PF_USER | PF_WRITE | PF_PROT,)
    assert _cssa(model, st) == 0


def test_eaccept_result_comes_back_through_untrusted_memory():
    model = MachineModel("linux-6.0", Scope())
    path = [Action.make("init"), Action.make("mmap", offset=0, length=PAGE, prot="RW"),
            Action.make("eaccept", offset=0), Action.make("eaccept", offset=0)]
    st, steps = _run(model, path)
    first, second = steps[-2].events, steps[-1].events
    # The first EACCEPT's access EAUGs the page and accepts it (result 0);
    # the second finds it no longer PENDING: SGX_PAGE_ATTRIBUTES_MISMATCH.
    assert [e.kind for e in first] == ["aug", "eaccept"] and first[-1].ok
    assert not second[-1].ok
    assert _cssa(model, st) == 0


def test_the_program_is_bound_to_the_enclave_identity():
    model = MachineModel("linux-6.0", Scope())
    st, _ = _run(model, BUILD)
    (mrenclave,) = st.library.programs
    assert st.library.programs[mrenclave] is runtime.program(model.layout)
    assert mrenclave == st.meas.digest()
    # Unknown code at the fetched address would be #UD: the landing pads are
    # only at the explored pages.
    assert 0 in runtime.program(model.layout).code


def test_the_enclave_accepts_what_its_program_asked_for():
    """EACCEPT passes the SECINFO of the request the program made: restricting
    an R page "to RW" leaves the EPCM at R (EMODPR only removes), so the
    enclave's EACCEPT of RW|PR mismatches, as on hardware."""
    model = MachineModel("linux-6.0", Scope())
    add = Action.make("add_pages", offset=0, source="image", type="REG", perms="R")
    path = [add, Action.make("init"), Action.make("mmap", offset=0, length=PAGE, prot="R"),
            Action.make("restrict", offset=0, perms="RW"), Action.make("eaccept", offset=0)]
    st, steps = _run(model, path, trace=True)
    assert steps[3].events[0].ok and not steps[4].events[-1].ok
    assert any("SGX_PAGE_ATTRIBUTES_MISMATCH" in str(d) for d in steps[4].decisions)
    assert 0 in st.expect  # still waiting to be accepted
    path[3] = Action.make("restrict", offset=0, perms="R")
    st, steps = _run(model, path)
    assert steps[4].events[-1].ok and 0 not in st.expect
