"""The checker's actions as objects (check/actions/): the registry is the
scope's vocabulary and the scenario schema; --processes 2 (fork) and
--enclaves 2 (two enclaves sharing the EPC) on the real model, their traces
replaying with ``sgxsim run``; one process and one enclave are today's scope."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sgxsim.check import actions
from sgxsim.check import scenario as scn
from sgxsim.check.explorer import explore, verdict
from sgxsim.check.ghost import Ghost, PageGhost
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action, Event
from sgxsim.check.scope import ACTIONS, OPTIONAL_ACTIONS, PAGE, Scope
from sgxsim.cli import main


def test_the_registry_is_the_scopes_vocabulary_and_the_scenario_schema():
    assert ACTIONS == tuple(a.name for a in actions.REGISTRY if not a.optional)
    assert OPTIONAL_ACTIONS == tuple(a.name for a in actions.REGISTRY if a.optional)
    assert list(scn.ACTION_KEYS) == list(ACTIONS + OPTIONAL_ACTIONS)
    for a in actions.REGISTRY:
        assert scn.ACTION_KEYS[a.name] == a.keys
        assert a.optional_keys <= set(a.keys)


_COPY = """design = "linux-6.0"
property = "w-xor-x"
expect = "holds"
[scope]
pages = 2
[[step]]
action = "eacceptcopy"
offset = 0
"""


def test_an_optional_key_may_be_left_out_and_is_checked_when_given():
    # EACCEPTCOPY's src: without it, the run's default (the first build-time page).
    assert scn.loads(_COPY).steps == [Action.make("eacceptcopy", offset=0)]
    assert scn.loads(_COPY + "src = 0x1000\n").steps == [Action.make("eacceptcopy", offset=0, src=PAGE)]
    with pytest.raises(scn.ScenarioError, match="src.*not the offset of an explored page"):
        scn.loads(_COPY + "src = 0x2000\n")
    # A required key is still required.
    with pytest.raises(scn.ScenarioError, match="offset.*missing"):
        scn.loads(_COPY.replace("offset = 0\n", ""))


def test_eacceptcopy_offers_every_build_time_page_as_its_source():
    ctx = actions.Ctx(True, True, frozenset({PAGE}))
    got = actions.BY_NAME["eacceptcopy"].offers(Scope(pages=2), ctx)
    assert got == [Action.make("eacceptcopy", offset=o, src=PAGE) for o in (0, PAGE)]
    none = actions.BY_NAME["eacceptcopy"].offers(Scope(pages=2), ctx._replace(added=frozenset()))
    assert none == [Action.make("eacceptcopy", offset=o) for o in (0, PAGE)]
    # ADD_PAGES: every page not added yet, in any order.
    adds = actions.BY_NAME["add_pages"].offers(Scope(pages=3), actions.Ctx(False, True, frozenset({PAGE})))
    assert sorted({a.arg("offset") for a in adds}) == [0, 2 * PAGE]


def test_each_event_is_updated_by_the_action_that_makes_it():
    g = Ghost().after((Event("add", 0, True, ("REG", "RW", False)), Event("aug", PAGE, True)))
    assert g.page(0) == PageGhost("build", "RW", "REG", False)
    assert g.page(PAGE).origin == "aug"
    g = g.after((Event("store", 0, True), Event("restrict", PAGE, True, ("R",))))
    assert g.page(0).written and g.wrote_build_data and g.page(PAGE).restrict == "pending:R"
    assert g.after((Event("eaccept", PAGE, True),)).page(PAGE).restrict == "accepted:R"
    assert g.after((Event("remove", PAGE, True),)).page(PAGE) is None
    # A failed event changes nothing; one on a page the ghost never saw neither.
    assert g.after((Event("store", PAGE, False), Event("fetch", 5 * PAGE, True))) == g


def test_processes_1_enclaves_1_give_exactly_todays_results(tmp_path):
    args = ["check", "--design", "linux-6.0", "--property", "w-xor-x", "--property", "dynamic-heap",
            "--depth", "3", "--perms", "RW,RWX", "--sources", "image",
            "--actions", "mmap,add_pages,init,load,store,eaccept", "--json"]
    outs = []
    for extra in ([], ["--processes", "1", "--enclaves", "1"]):
        r = CliRunner().invoke(main, args + extra + ["--out", str(tmp_path / str(len(extra)))])
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout)
        outs.append((out["scope"], [{k: v for k, v in x.items() if k != "seconds"} for x in out["results"]]))
    assert outs[0] == outs[1]
    assert [x["verdict"] for x in outs[0][1]] == ["violated", "unreachable"] and outs[0][1][0]["trace"]


def test_simulation_mode_takes_both_options(tmp_path):
    r = CliRunner().invoke(main, ["check", "--simulate", "--design", "linux-6.0", "--processes", "2",
                                  "--enclaves", "2", "--property", "no-stale-pte", "--walks", "4",
                                  "--walk-depth", "12", "--seed", "5", "--json", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["scope"] == {"pages": 1, "policy": "selinux", "processes": 2, "enclaves": 2}
    assert out["results"][0]["verdict"] == "no violation in 4 walks"


def test_one_process_and_one_enclave_are_todays_scope():
    s = Scope(processes=1, enclaves=1)
    assert s == Scope() and s.as_dict() == {"pages": 1, "policy": "selinux"}
    model = MachineModel("linux-6.0", s)
    st = model.initial()
    assert model.actions(st) == s.enabled(initialized=False, sgx2=True, added=frozenset())
    assert all(k not in ("proc", "enclave") for a in model.actions(st) for k, _ in a.args)
    assert "fork" not in {a.name for a in model.actions(st)}


@pytest.mark.parametrize("opt", ["--processes", "--enclaves"])
def test_the_options_are_in_help_and_refuse_three(opt):
    r = CliRunner().invoke(main, ["check", "--help"])
    assert opt in r.output
    r = CliRunner().invoke(main, ["check", opt, "3"])
    assert r.exit_code == 2 and "1<=x<=2" in r.output


# --processes 2 ---------------------------------------------------------------------------
FORK = Scope(processes=2, perms=("RW", "RX", "RWX"), sources=("image",),
             actions=("mmap", "mprotect", "add_pages", "init", "load", "store", "fetch", "fork"))


def test_fork_steps_name_their_process_and_the_child_acts_after_fork():
    model = MachineModel("linux-5.11", FORK)
    st = model.initial()
    first = model.actions(st)
    assert first[0] == Action.make("mmap", proc="parent", offset=0, length=PAGE, prot="RW")
    assert first[-1] == Action.make("fork") and not any(a.arg("proc") == "child" for a in first)
    for a in (Action.make("add_pages", offset=0, source="image", type="REG", perms="RX"), Action.make("init"),
              Action.make("mmap", proc="parent", offset=0, length=PAGE, prot="RX"),
              Action.make("fetch", proc="parent", offset=0), Action.make("fork")):
        st = model.step(st, a).state
    after = model.actions(st)
    assert Action.make("mmap", proc="child", offset=0, length=PAGE, prot="RW") in after
    assert "fork" not in {a.name for a in after}
    # The child's enclave VMAs were opened by sgx_vma_open(): its mm is on the
    # enclave's mm_list; copy_page_range() gave it the parent's PTEs.
    encl = model.encl(st)
    assert {em.mm for em in encl.mm_list} == {st.proc.mm, st.child.mm}
    ptes = model.view(st).ptes
    assert {(p.va, p.perms) for p in ptes if p.proc == 1} == {(p.va, p.perms) for p in ptes if p.proc == 0}
    assert (model.base, "RX") in {(p.va, p.perms) for p in ptes if p.proc == 1}
    # The reclaimer zaps the page's PTE in both mms.
    st = model.step(st, Action.make("reclaim", offset=0)).state
    assert not [p for p in model.view(st).ptes if p.offset == 0]


def test_w_xor_x_counts_the_childs_ptes(tmp_path):
    """A page RWX at build: the parent keeps a RW mapping, the child makes its
    copy RX; the parent's store and the child's load give a W PTE and an X
    PTE to one page in two processes (linux-6.0 violates, safe-to-execute
    refuses the child's mprotect)."""
    steps = [Action.make("add_pages", offset=0, source="image", type="REG", perms="RWX"), Action.make("init"),
             Action.make("mmap", proc="parent", offset=0, length=PAGE, prot="RW"), Action.make("fork"),
             Action.make("mprotect", proc="child", offset=0, length=PAGE, prot="RX"),
             Action.make("store", proc="parent", offset=0), Action.make("load", proc="child", offset=0)]
    sc = scn.Scenario("linux-6.0", "w-xor-x", "violated", steps, FORK.as_dict() | {"pages": 1}, 7, "")
    f = scn.write(tmp_path / "fork.toml", sc)
    assert scn.read(f).steps == steps
    r = CliRunner().invoke(main, ["run", str(f)])
    assert r.exit_code == 0, r.output
    assert "7. load(proc='child', offset=0)" in r.output
    r = CliRunner().invoke(main, ["run", str(f), "--design", "safe-to-execute"])
    assert r.exit_code == 1 and "holds" in r.output


def test_a_child_step_before_the_fork_is_a_scenario_error():
    text = ('design = "linux-6.0"\nproperty = "w-xor-x"\nexpect = "holds"\n[scope]\nprocesses = 2\n'
            '[[step]]\naction = "load"\nproc = "child"\noffset = 0\n')
    with pytest.raises(scn.ScenarioError, match="before the fork"):
        scn.loads(text)
    with pytest.raises(scn.ScenarioError, match="key 'proc'"):
        scn.loads(text.replace('proc = "child"\n', ""))
    with pytest.raises(scn.ScenarioError, match="fork needs scope processes = 2"):
        scn.loads(text.replace("processes = 2", "processes = 1").replace('[[step]]\naction = "load"\n'
                                                                        'proc = "child"\noffset = 0\n',
                                                                        '[[step]]\naction = "fork"\n'))


def test_small_exhaustive_run_with_fork(tmp_path):
    model = MachineModel("linux-6.0", FORK)
    exp = explore(model, ["no-stale-pte", "w-xor-x", "mprotect-honest"], depth=4)
    assert exp.new_by_action.get("fork", 0) > 0
    assert verdict("no-stale-pte", exp) == "holds" and verdict("mprotect-honest", exp) == "holds"
    assert verdict("w-xor-x", exp) == "violated"


# --enclaves 2 -----------------------------------------------------------------------------
TWO = Scope(enclaves=2, perms=("RW", "RX"), sources=("image",),
            actions=("mmap", "add_pages", "init", "load", "fetch", "reclaim"))


def test_two_enclaves_share_an_epc_too_small_for_both():
    model = MachineModel("linux-5.11", TWO)
    st = model.initial()
    assert {a.arg("enclave") for a in model.actions(st)} == {0, 1}
    # Both enclaves' runtime pages fit, and one enclave's explored page ...
    st = model.step(st, Action.make("add_pages", enclave=0, offset=0, source="image", type="REG",
                                    perms="RX")).state
    drv = st.m.kernel.sgx
    assert drv.stats["ewb"] == 0 and drv.sgx_nr_free_pages == 1
    # ... and the other enclave's page takes the last free one: ksgxd wakes
    # and writes a batch back when the ioctl returns.
    step = model.step(st, Action.make("add_pages", enclave=1, offset=0, source="image", type="REG",
                                      perms="RW"), trace=True)
    st = step.state
    assert step.events == (Event("add", model.stride, True, ("REG", "RW", True)),)
    assert st.m.kernel.sgx.stats["ewb"] > 0
    # The first enclave's pages went out (the LRU's oldest), not only the second's.
    first = model.encl(st, st.handles[0]).page_array.values()
    assert any(e.epc_page is None for e in first)


def test_small_exhaustive_run_with_two_enclaves_and_its_trace_replays(tmp_path):
    r = CliRunner().invoke(main, ["check", "--design", "no-hook", "--enclaves", "2", "--property",
                                  "no-stale-pte", "--property", "exec-origin", "--depth", "4",
                                  "--perms", "RW,RX", "--sources", "anon", "--actions",
                                  "mmap,add_pages,init,fetch,reclaim", "--json", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    # The page symmetry is off with two enclaves (check/symmetry.py).
    assert out["scope"] == {"pages": 1, "policy": "selinux", "enclaves": 2, "depth": 4, "symmetry": False,
                            "perms": ["RW", "RX"], "sources": ["anon"],
                            "actions": ["mmap", "add_pages", "init", "fetch", "reclaim"]}
    res = {x["property"]: x for x in out["results"]}
    assert res["no-stale-pte"]["verdict"] == "holds"
    assert res["exec-origin"]["verdict"] == "violated" and res["exec-origin"]["depth"] == 4
    assert all("enclave" in s for s in res["exec-origin"]["trace"])
    f = tmp_path / "no-hook--exec-origin.toml"
    assert "enclaves = 2" in f.read_text()
    r = CliRunner().invoke(main, ["run", str(f)])
    assert r.exit_code == 0, r.output
