"""linux-6.12 under the checker with MDWE (``--mdwe``) and with ``mseal`` among
the actions, at the default depth: every verdict and trace length pinned
(docs/designs.md, "linux-6.12, MDWE and mseal"), and what a sealed enclave
mapping still allows, replayed step by step."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sgxsim.check import runner
from sgxsim.check.cli import _factory
from sgxsim.check.explorer import replay
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.model import Action
from sgxsim.check.properties import PROPERTIES
from sgxsim.check.scope import ACTIONS, Scope
from sgxsim.cli import main

DEPTH = 6
#           no-esc exec  w^x  stale honest run   heap  dcode restrict
MDWE = ("h", "v4", "h", "h", "h", "r6", "r4", "r5", "r6")
MSEAL = ("h", "v4", "v3", "h", "h", "r5", "r4", "r4", "r6")  # = linux-6.12 without mseal
WITH_MSEAL = Scope(actions=ACTIONS + ("mseal",))
A = Action.make


def _cell(r: dict) -> str:
    return r["verdict"][0] + (str(len(r["trace"])) if r["trace"] else "")


def _matrix(scope: Scope, out) -> dict:
    res = runner.check(_factory(scope), ["linux-6.12"], list(PROPERTIES), depth=DEPTH, workers=2,
                       out_dir=out)
    return {r["property"]: r for r in res}


@pytest.fixture(scope="module")
def mdwe(tmp_path_factory):
    return _matrix(Scope(mdwe=True), tmp_path_factory.mktemp("mdwe"))


@pytest.fixture(scope="module")
def mseal(tmp_path_factory):
    return _matrix(WITH_MSEAL, tmp_path_factory.mktemp("mseal"))


def _actions(r: dict) -> list[str]:
    return [f"{s['action']}{'(' + s['prot'] + ')' if 'prot' in s else ''}" for s in r["trace"]]


def test_mdwe_matrix_is_pinned(mdwe):
    assert tuple(_cell(mdwe[p]) for p in PROPERTIES) == MDWE
    for r in mdwe.values():
        if r["verdict"] in ("holds", "unreachable"):
            assert r["depth"] == DEPTH


def test_mdwe_gives_enclave_pages_w_xor_x_but_not_against_remapping(mdwe):
    """MDWE: no enclave page is W and X through PTEs (w-xor-x holds), but an
    EAUGed page written through an RW mapping runs after a fresh RX mmap over
    it (MAP_FIXED is a new mapping, not one becoming executable)."""
    assert mdwe["w-xor-x"]["verdict"] == "holds"
    assert _actions(mdwe["dynamic-code"]) == ["mmap(RW)", "init", "eacceptcopy", "mmap(RX)", "fetch"]
    # Build-time code the enclave writes first needs the same remapping (6, not 5).
    assert _actions(mdwe["run-code"])[-2:] == ["mmap(RX)", "fetch"]
    # exec-origin falls as without MDWE: no mapping is ever W+X on that path.
    assert _actions(mdwe["exec-origin"]) == ["mmap(RX)", "add_pages", "init", "fetch"]


def test_every_mdwe_scenario_replays(mdwe):
    cli = CliRunner()
    for r in mdwe.values():
        if "scenario" in r:
            res = cli.invoke(main, ["run", r["scenario"]])
            assert res.exit_code == 0, res.output
            assert f"verdict: {r['verdict']} at step {len(r['trace'])}" in res.output


def test_an_mdwe_scenario_replays_where_mdwe_exists(mdwe):
    res = CliRunner().invoke(main, ["run", mdwe["dynamic-code"]["scenario"], "--all-designs"])
    assert res.exit_code == 0, res.output
    assert "# not replayed (no MDWE in their mm): no-hook" in res.output
    rows = {line.split()[0]: line for line in res.output.splitlines() if not line.startswith("#")}
    assert list(rows) == ["linux-6.12"] and "reachable at step 5" in rows["linux-6.12"]


def test_mseal_changes_no_verdict(mseal):
    """Sealing only takes options away: the shortest traces need no seal and
    nothing breaks a property through a sealed mapping in 6 steps."""
    assert tuple(_cell(mseal[p]) for p in PROPERTIES) == MSEAL
    assert not any(s["action"] == "mseal" for r in mseal.values() for s in r["trace"])


def _replay(steps: list[Action]) -> list[tuple]:
    model = MachineModel("linux-6.12", WITH_MSEAL)
    return [(a.name, [e.ok for e in ev], [str(d) for d in dec], hits)
            for a, dec, ev, hits in replay(model, steps)]


SEAL = A("mseal", offset=0, length=4096)


def test_a_sealed_rw_enclave_mapping_keeps_data_but_never_runs_code():
    out = _replay([A("mmap", offset=0, length=4096, prot="RW"), A("init"), SEAL,
                   A("eacceptcopy", offset=0), A("store", offset=0),
                   A("mmap", offset=0, length=4096, prot="RX"),
                   A("mprotect", offset=0, length=4096, prot="RX"),
                   A("munmap", offset=0, length=4096),
                   A("emodpe", offset=0, perms="RX"), A("fetch", offset=0),
                   A("restrict", offset=0, perms="R"), A("eaccept", offset=0), A("store", offset=0)])
    by = {i: o for i, o in enumerate(out)}
    assert "dynamic-heap" in by[4][3]  # EAUG + EACCEPTCOPY + store through the sealed RW VMA
    for i in (5, 6, 7):  # mmap over it, mprotect, munmap: EPERM
        assert any("EPERM" in d and "sealed" in d for d in by[i][2]), by[i]
    assert by[8][1] == [True]  # EMODPE changes the EPCM, not the VMA
    assert by[9][1] == [False] and not by[9][3]  # the VMA is still NX
    assert "restrict" in by[12][3]  # the SGX2 ioctls and EACCEPT work as before


def test_a_sealed_rx_enclave_mapping_still_runs_a_dynamic_page():
    """Through a sealed RX mapping nothing is written, but a read fault EAUGs
    a page, EACCEPT + EMODPE make it executable in the EPCM and it runs."""
    out = _replay([A("mmap", offset=0, length=4096, prot="RX"), A("init"), SEAL,
                   A("eacceptcopy", offset=0), A("eaccept", offset=0),
                   A("emodpe", offset=0, perms="RX"), A("fetch", offset=0)])
    assert out[3][1] == [False]  # EACCEPTCOPY writes: the RX VMA refuses
    assert "dynamic-code" in out[6][3] and "w-xor-x" not in out[6][3]


def test_a_sealed_rwx_enclave_mapping_is_as_open_as_before():
    out = _replay([A("mmap", offset=0, length=4096, prot="RWX"), A("init"), SEAL,
                   A("eacceptcopy", offset=0), A("fetch", offset=0)])
    assert {"dynamic-code", "w-xor-x"} <= set(out[4][3])


def test_mdwe_needs_a_kernel_with_it():
    res = CliRunner().invoke(main, ["check", "--design", "linux-6.0", "--mdwe", "--depth", "1"])
    assert res.exit_code != 0 and "has no MDWE" in res.output
