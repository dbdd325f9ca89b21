"""Which decision refused a step: the one that made it fail as its caller
saw it (runner.is_refusal, trace.Refusal).  A failure a layer handled on the
way (EWB's SGX_NOT_TRACKED before sgx_encl_ewb()'s ETRACK and second EWB,
EINIT's SGX_UNMASKED_EVENT in sgx_encl_init()'s retry loop) is listed among
the step's decisions but refuses nothing."""

from __future__ import annotations

from click.testing import CliRunner

from sgxsim.check import runner
from sgxsim.check import scenario as scn
from sgxsim.check.model import Action
from sgxsim.check.scope import Scope
from sgxsim.cli import main
from sgxsim.explain import explain_step
from sgxsim.report import render_trace, trace_data
from sgxsim.trace import Refusal

A = Action.make
# The reclaimer writes the page back after INIT: its EWB meets SGX_NOT_TRACKED
# (no ETRACK since EBLOCK) and the driver tracks and writes it again.
RECLAIM = [A("add_pages", offset=0, source="image", type="REG", perms="R"), A("init"),
           A("reclaim", offset=0), A("mmap", offset=0, length=0x1000, prot="R"), A("load", offset=0)]


def _model(design="linux-6.0"):
    return runner.make_model(design, Scope())


def test_a_handled_not_tracked_is_no_refusal_of_the_reclaim():
    sc = scn.Scenario("linux-6.0", "w-xor-x", "holds", RECLAIM, {}, 0)
    r = runner.replay_scenario(lambda d: _model(d), sc)
    assert any("EWB: SGX_NOT_TRACKED" in line for line in r["lines"])  # still shown
    assert r["first_refusal"] is None
    # The same on every design that reclaims.
    for c in runner.compare_designs(lambda d: _model(d), sc, ["linux-5.11", "linux-6.0"]):
        assert c["first_refusal"] is None, c
    ex = explain_step(_model(), RECLAIM, 3)
    assert ex.lines()[-1] == "=> no layer refused anything"


def test_the_run_and_report_do_not_call_it_a_refusal(tmp_path):
    f = scn.write(tmp_path / "rec.toml", scn.Scenario("linux-6.0", "w-xor-x", "violated", RECLAIM, {}, 5))
    r = CliRunner().invoke(main, ["run", str(f)])
    assert r.exit_code == 1 and r.output.splitlines()[-1].endswith("; no layer refused any step"), r.output
    r = CliRunner().invoke(main, ["run", str(f), "--all-designs"])
    assert "NOT_TRACKED" not in r.output.split("\n", 1)[1], r.output
    data = trace_data(_model(), RECLAIM, "w-xor-x")
    col = data["columns"][3]
    assert any(d[2] == "SGX_NOT_TRACKED" for d in col["decisions"]) and col["refused"] == []
    page = render_trace(data)
    assert "dec refusal" not in page and '"SGX_NOT_TRACKED", "no completed ETRACK since EBLOCK", false]' in page


def test_an_einit_retried_after_an_unmasked_event_is_no_refusal():
    model = _model()
    st = model.step(model.initial(), RECLAIM[0]).state
    st.m.cpu.inject_unmasked_events(2)  # the first two EINITs see a pending interrupt
    step = model.step(st, A("init"), trace=True)
    outcomes = [d.outcome for d in step.decisions]
    assert outcomes.count("SGX_UNMASKED_EVENT") == 2 and outcomes[-1] == "SGX_SUCCESS", outcomes
    assert not any(runner.is_refusal(d) for d in step.decisions)
    assert model.handle(step.state, A("init")).initialized


def test_a_failed_step_is_refused_by_what_its_caller_got():
    # An mprotect beyond the page's maximum: the errno the syscall returned.
    path = [A("mmap", offset=0, length=0x1000, prot="R"),
            A("add_pages", offset=0, source="image", type="REG", perms="R"), A("init"),
            A("mprotect", offset=0, length=0x1000, prot="RW")]
    sc = scn.Scenario("linux-5.11", "no-escalation", "holds", path, {}, 0)
    step, why = runner.replay_scenario(lambda d: _model(d), sc)["first_refusal"]
    assert step == 4 and isinstance(why, Refusal) and (why.rule, why.outcome) == ("sgx_encl_may_map", "EACCES")
    # The EPCM's refusal of a store: the fault's signal, reported by the vDSO.
    path = path[:3] + [A("store", offset=0)]
    step, why = runner.replay_scenario(lambda d: _model(d), scn.Scenario(
        "linux-5.11", "no-escalation", "holds", path, {}, 0))["first_refusal"]
    assert step == 4 and why.outcome == "SIGSEGV" and why.rule == "access_error"
    # An ENCLU leaf's code, returned to the enclave: EACCEPT of a page that is not PENDING.
    path = [A("add_pages", offset=0, source="image", type="REG", perms="RW"), A("init"),
            A("mmap", offset=0, length=0x1000, prot="RW"), A("eaccept", offset=0)]
    step, why = runner.replay_scenario(lambda d: _model(d), scn.Scenario(
        "linux-6.0", "no-escalation", "holds", path, {}, 0))["first_refusal"]
    assert step == 4 and why.outcome == "SGX_PAGE_ATTRIBUTES_MISMATCH"


# -- a replay on a model of another scope is refused, not run on other pages ----------------------

TWO_PAGES = [A("add_pages", offset=0, source="image", type="REG", perms="RX"),
             A("mmap", offset=0x1000, length=0x1000, prot="RW")]


def test_a_replay_refuses_steps_beyond_the_models_explored_pages():
    import pytest

    sc = scn.Scenario("linux-6.0", "dynamic-heap", "unreachable", TWO_PAGES, {"pages": 2}, 0)
    with pytest.raises(ValueError, match=r"scope \(pages = 1, processes = 1, enclaves = 1\): step 2: "
                                         r"key 'offset': 4096 is not the offset of an explored page"):
        runner.run_scenario(lambda d: runner.make_model(d, Scope()), sc)
    with pytest.raises(ValueError, match=r"step 2: key 'offset'.*Scope\(\*\*sc.scope\)"):
        trace_data(runner.make_model("linux-6.0", Scope()), TWO_PAGES, "dynamic-heap")
    with pytest.raises(ValueError, match="step 2: key 'offset'"):
        explain_step(runner.make_model("linux-6.0", Scope()), TWO_PAGES, 2)
    # A length that runs past them too.
    with pytest.raises(ValueError, match="step 1: key 'length'"):
        trace_data(_model(), [A("mmap", offset=0, length=0x2000, prot="R")], "w-xor-x")
    # In the scenario's own scope it replays.
    assert runner.run_scenario(lambda d: runner.make_model(d, Scope(**sc.scope)), sc)[1] == "unreachable"


def test_a_replay_refuses_a_process_or_enclave_the_scope_does_not_have():
    import pytest

    child = [A("fork"), A("load", proc="child", offset=0)]
    with pytest.raises(ValueError, match="step 1: key 'action': fork needs scope processes = 2"):
        trace_data(_model(), child, "w-xor-x")
    with pytest.raises(ValueError, match="step 2: key 'proc': load takes no such key"):
        trace_data(_model(), [A("init"), A("load", proc="child", offset=0)], "w-xor-x")
    with pytest.raises(ValueError, match="step 1: key 'enclave': init takes no such key"):
        trace_data(_model(), [A("init", enclave=1)], "w-xor-x")
    two = runner.make_model("linux-6.0", Scope(enclaves=2))
    with pytest.raises(ValueError, match="step 1: key 'enclave': 2 is not one of 0, 1"):
        trace_data(two, [A("init", enclave=2)], "w-xor-x")
    with pytest.raises(ValueError, match="step 1: key 'proc': 'child' before the fork step"):
        trace_data(runner.make_model("linux-6.0", Scope(processes=2)), [A("load", proc="child", offset=0)],
                   "w-xor-x")
