"""The whole matrix at the default scope and depth (what ``make run`` prints):
every verdict and shortest-trace length pinned, the traces the seed
discussions describe checked step by step, and every written scenario
replayed with ``sgxsim run``.

One exploration of all nine designs (two worker processes, ~45 s here) is
shared by the tests of this module.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sgxsim.check import runner
from sgxsim.check import scenario as scn
from sgxsim.check.cli import DESIGNS, _factory
from sgxsim.check.explorer import replay
from sgxsim.check.machine_model import MachineModel
from sgxsim.check.properties import PROPERTIES
from sgxsim.check.scope import Scope
from sgxsim.cli import main

DEPTH = 6  # the CLI's default

# verdict letter (violated/holds/reachable/unreachable) and trace length.
EXPECTED = {
    #                    no-esc exec  w^x   stale honest run   heap  dcode restrict
    "no-hook":          ("v4", "v4", "v4", "h", "h", "r5", "u", "u", "u"),
    "rfc-2019":         ("h", "v5", "v4", "h", "h", "r5", "u", "u", "u"),
    "v40":              ("h", "v4", "v4", "h", "h", "r5", "u", "u", "u"),
    "linux-5.11":       ("h", "v4", "v4", "h", "h", "r5", "u", "u", "u"),
    "sgx2-rfc":         ("v4", "v4", "v3", "h", "h", "r5", "r4", "r4", "r6"),
    "linux-6.0":        ("h", "v4", "v3", "h", "h", "r5", "r4", "r4", "r6"),
    "safe-to-execute":  ("h", "v4", "h", "h", "h", "r6", "r4", "r5", "r6"),
    "propagate-source": ("v4", "v5", "v5", "h", "h", "r6", "u", "u", "u"),
    "linux-6.12":       ("h", "v4", "v3", "h", "h", "r5", "r4", "r4", "r6"),
}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenarios")
    res = runner.check(_factory(Scope()), list(DESIGNS), list(PROPERTIES), depth=DEPTH, workers=2,
                       out_dir=out)
    return {(r["design"], r["property"]): r for r in res}


def _cell(r: dict) -> str:
    return r["verdict"][0] + (str(len(r["trace"])) if r["trace"] else "")


def test_every_cell_is_pinned(matrix):
    got = {d: tuple(_cell(matrix[(d, p)]) for p in PROPERTIES) for d in DESIGNS}
    assert got == EXPECTED
    # Safety verdicts that hold were decided over the whole bound.
    for (d, p), r in matrix.items():
        if r["verdict"] in ("holds", "unreachable"):
            assert r["depth"] == DEPTH, (d, p)


def test_no_hook_maps_past_the_secinfo(matrix):
    r = matrix[("no-hook", "no-escalation")]
    assert [s["action"] for s in r["trace"]] == ["mmap", "add_pages", "init", "load"]
    assert r["trace"][0]["prot"] == "RW" and r["trace"][1]["perms"] == "R"
    assert "extra W" in r["reason"]


def test_merged_designs_keep_no_escalation_at_the_default_bound(matrix):
    for d in ("linux-5.11", "linux-6.0"):
        assert matrix[(d, "no-escalation")]["verdict"] == "holds"


def test_merged_sgx2_executes_a_dynamically_added_page_without_execmod(matrix):
    """linux-6.0's dynamic-code witness: a page that no ADD_PAGES ever added
    (so no source mapping the LSM could judge) runs, while the policy denies
    execmem and execmod; replayed, that same path breaks exec-origin."""
    r = matrix[("linux-6.0", "dynamic-code")]
    assert [s["action"] for s in r["trace"]] == ["mmap", "init", "eacceptcopy", "fetch"]
    model = MachineModel("linux-6.0", Scope())
    path = scn.read(r["scenario"]).steps
    hits = [h for _, _, _, h in replay(model, path, ["exec-origin"])]
    assert "EAUG" in hits[-1]["exec-origin"] and not any(hits[:-1])
    # The SGX1 merged kernel has no way to add a page after INIT.
    assert matrix[("linux-5.11", "dynamic-code")]["verdict"] == "unreachable"


def test_safe_to_execute_is_leaky_through_mappings_made_earlier(matrix):
    """Two findings about the proposal as written: the bit is only consulted
    when a mapping is made, so an executable mapping of a blank page made
    before ADD_PAGES (exec-origin) or a writable one made before INIT
    (dynamic-code) survives the bit being cleared or never clears it."""
    r = matrix[("safe-to-execute", "exec-origin")]
    assert [s["action"] for s in r["trace"]] == ["mmap", "add_pages", "init", "fetch"]
    assert r["trace"][0]["prot"] == "RX" and r["trace"][1]["source"] != "image"
    r = matrix[("safe-to-execute", "dynamic-code")]
    assert [s["action"] for s in r["trace"]] == ["mmap", "init", "eacceptcopy", "mmap", "fetch"]


def test_restrict_needs_the_enclave_to_accept(matrix):
    for d in ("sgx2-rfc", "linux-6.0", "safe-to-execute"):
        acts = [s["action"] for s in matrix[(d, "restrict")]["trace"]]
        assert acts.index("restrict") < acts.index("eaccept") < acts.index("store"), d


def test_every_scenario_replays_to_its_verdict(matrix):
    cli = CliRunner()
    n = 0
    for r in matrix.values():
        if "scenario" not in r:
            continue
        res = cli.invoke(main, ["run", r["scenario"]])
        assert res.exit_code == 0, res.output
        assert f"verdict: {r['verdict']} at step {len(r['trace'])}" in res.output, res.output
        n += 1
    assert n == sum(1 for r in matrix.values() if r["verdict"] in ("violated", "reachable"))


def test_the_matrix_fits_100_columns_and_names_every_cell(matrix):
    text = runner.render_matrix(list(matrix.values()))
    assert max(len(line) for line in text.splitlines()) <= 100, text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[2:2 + len(DESIGNS)]}
    for d in DESIGNS:
        cells = " ".join(rows[d])
        for p in PROPERTIES:
            r = matrix[(d, p)]
            want = runner.CELL[r["verdict"]] + (f" {len(r['trace'])}" if r["trace"] else "")
            assert want in cells, (d, p)
    assert "no-esc = no-escalation" in text and "dyn-code = dynamic-code" in text
