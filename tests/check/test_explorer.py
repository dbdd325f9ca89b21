"""The explorer, scenario files and matrix on the toy model of tests/check/toy_model.py."""

from __future__ import annotations

from tests.check.toy_model import ToyModel

from sgxsim.check import scenario as scn
from sgxsim.check.explorer import explore, verdict
from sgxsim.check.model import Action
from sgxsim.check.runner import check, render_matrix, run_scenario


def factory(name):
    return ToyModel(name, checked=(name == "toy-checked"))


def test_bfs_finds_the_shortest_mprotect_escalation():
    exp = explore(ToyModel(), ["no-escalation", "w-xor-x", "exec-origin"], depth=4)
    f = exp.findings["no-escalation"]
    # add, mprotect past the SECINFO, one access that installs the PTE.
    assert f.depth == 3 and [a.name for a in f.path][:2] == ["add_pages", "mprotect"]
    assert f.path[2].name in ("store", "fetch")
    assert verdict("no-escalation", exp) == "violated"


def test_checked_mprotect_keeps_no_escalation_up_to_the_bound():
    exp = explore(ToyModel("toy-checked", checked=True), ["no-escalation", "run-code"], depth=6)
    assert verdict("no-escalation", exp) == "holds"
    # add RX, mprotect RX, fetch, add RW, mprotect RW, store.
    assert verdict("run-code", exp) == "reachable" and exp.findings["run-code"].depth == 6
    assert exp.states > 10


def test_deterministic_and_same_with_workers():
    a = explore(ToyModel(), depth=4)
    b = explore(ToyModel(), depth=4, workers=2)
    assert a.states == b.states and a.levels == b.levels
    assert {k: (f.path, f.reason) for k, f in a.findings.items()} == \
           {k: (f.path, f.reason) for k, f in b.findings.items()}


def test_scenario_round_trip_and_replay(tmp_path):
    res = check(factory, ["toy-no-hook", "toy-checked"], ["no-escalation", "exec-origin"], depth=4,
                out_dir=tmp_path)
    viol = [r for r in res if r["verdict"] == "violated"]
    assert viol and all(r["design"] == "toy-no-hook" for r in viol)
    for r in viol:
        sc = scn.read(r["scenario"])
        assert sc.design == "toy-no-hook" and sc.expect == "violated"
        lines, v, at = run_scenario(factory, sc)
        assert v == "violated" and at == sc.at_step == len(r["trace"])
        # The same steps on the checked design do not violate no-escalation.
        if sc.prop == "no-escalation":
            assert run_scenario(factory, sc, "toy-checked")[1] == "holds"
    assert "toy-checked" in render_matrix(res)


def test_scenario_writer_quotes_and_rejects_bad_values():
    sc = scn.Scenario("d\\\"x", "no-escalation", "violated",
                      [Action.make("mmap", offset=0x3000, length=0x1000, prot="RW")],
                      {"pages": 4}, 1, 'a "quoted"\nreason\x01')
    back = scn.loads(scn.dumps(sc, [['mm: do_mmap: "allow"\n']]))
    assert back.design == sc.design
    assert back.steps == sc.steps and back.reason == sc.reason and back.scope == {"pages": 4}
    try:
        scn.dumps(scn.Scenario("d", "p", "holds", [Action.make("x", v=1.5)]))
    except TypeError:
        pass
    else:
        raise AssertionError("a float must be refused")


def _brute_force_first(model, depth):
    """The shortest length at which each property fires, by enumerating every
    action sequence (no deduplication): the explorer must agree."""
    from sgxsim.check.ghost import Ghost
    from sgxsim.check.properties import PROPERTIES

    first: dict[str, int] = {}
    layer = [(model.initial(), Ghost())]
    for d in range(1, depth + 1):
        nxt = []
        for state, g in layer:
            for a in model.actions(state):
                st = model.step(state, a)
                g2 = g.after(st.events)
                for name, p in PROPERTIES.items():
                    if name not in first and p.check(st.view, g, g2, st.events) is not None:
                        first[name] = d
                nxt.append((st.state, g2))
        layer = nxt
    return first


def test_dedup_keeps_every_shortest_trace_of_brute_force():
    for checked in (False, True):
        m = ToyModel(checked=checked, pages=1)
        exp = explore(m, depth=4)
        assert {k: f.depth for k, f in exp.findings.items()} == _brute_force_first(m, 4)


import tomllib  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_VALUES = st.one_of(st.booleans(), st.integers(0, 2**64 - 1), st.text(max_size=20))


@given(st.lists(st.tuples(st.sampled_from(["mmap", "mprotect", "store"]),
                          st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
                                          .filter(lambda k: k != "action"), _VALUES, max_size=4)),
                max_size=5), st.text(max_size=40))
def test_scenario_text_round_trips_any_steps(steps, reason):
    sc = scn.Scenario("no-hook", "w-xor-x", "violated",
                      [Action(n, tuple(a.items())) for n, a in steps], {"pages": 4}, len(steps), reason)
    text = scn.dumps(sc, [[reason]] * len(steps))
    # The writer is exact TOML ...
    d = tomllib.loads(text)
    assert [(s.pop("action"), s) for s in d.get("step", [])] == steps and d["reason"] == reason
    # ... and the reader validates it: the same steps back, or one clean error.
    try:
        back = scn.loads(text)
    except scn.ScenarioError:
        return
    assert back.steps == sc.steps and back.reason == reason and back.at_step == len(steps)


def test_progress_is_reported_after_every_level():
    seen = []
    exp = explore(ToyModel(), depth=3, progress=lambda e: seen.append((e.depth, e.states)))
    assert [d for d, _ in seen] == [1, 2, 3]
    assert seen[-1][1] == exp.states and seen[0][1] < seen[-1][1]
