"""``sgxsim check``/``sgxsim run`` plumbing (on the toy model) and the scope's
action enumeration."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tests.check.toy_model import ToyModel

from sgxsim.check import runner
from sgxsim.check.scope import PAGE, Scope
from sgxsim.cli import main


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(runner, "make_model",
                        lambda design, scope: ToyModel(design, checked=(design == "linux-5.11")))


def test_check_json_shape_and_run_replays_every_scenario(toy, tmp_path):
    cli = CliRunner()
    r = cli.invoke(main, ["check", "--design", "no-hook", "--design", "linux-5.11", "--property",
                          "no-escalation", "--property", "run-code", "--depth", "6", "--json",
                          "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]
    assert [(x["design"], x["property"], x["verdict"]) for x in res] == [
        ("no-hook", "no-escalation", "violated"), ("no-hook", "run-code", "reachable"),
        ("linux-5.11", "no-escalation", "holds"), ("linux-5.11", "run-code", "reachable")]
    assert all(set(x) == {"design", "property", "verdict", "depth", "states", "seconds", "trace"}
               for x in res)
    assert len(res[0]["trace"]) == 3 and res[0]["depth"] == 3
    files = sorted(tmp_path.glob("*.toml"))
    assert len(files) == 3
    for f in files:
        out = cli.invoke(main, ["run", str(f)])
        assert out.exit_code == 0, out.output
        assert "verdict: violated" in out.output or "verdict: reachable" in out.output
    esc = tmp_path / "no-hook--no-escalation.toml"
    other = cli.invoke(main, ["run", str(esc), "--design", "linux-5.11"])
    # Another verdict than the scenario expects: said plainly, exit status 1.
    assert other.exit_code == 1 and "verdict: holds" in other.output
    assert "on linux-5.11 this scenario gives holds (the scenario expects violated at step 3 on no-hook)" \
        in other.output


def test_check_matrix_text(toy, tmp_path):
    r = CliRunner().invoke(main, ["check", "--design", "no-hook", "--property", "w-xor-x", "--depth", "3",
                                  "--out", str(tmp_path)])
    assert r.exit_code == 0 and "no-hook" in r.output and "VIOL 3" in r.output
    assert "mm: mprotect_fixup: allow" in r.output


def test_check_refuses_a_bad_scope(tmp_path):
    r = CliRunner().invoke(main, ["check", "--pages", "65", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "between 1 and 64" in r.output


def test_scope_offers_build_actions_before_init_and_enclave_actions_after():
    s = Scope(pages=2)
    before = s.enabled(initialized=False, sgx2=True, added=frozenset({0}))
    names = {a.name for a in before}
    assert names == {"mmap", "mprotect", "munmap", "add_pages", "init", "reclaim"}
    assert {a.arg("offset") for a in before if a.name == "add_pages"} == {PAGE}
    # one page each, then the whole enclave; four protections.
    assert [(a.arg("offset"), a.arg("length")) for a in before if a.name == "munmap"] == \
        [(0, PAGE), (PAGE, PAGE), (0, 2 * PAGE)]
    after1 = {a.name for a in s.enabled(initialized=True, sgx2=False, added=frozenset({0}))}
    assert "restrict" not in after1 and "eaccept" not in after1 and "fetch" in after1
    after2 = {a.name for a in s.enabled(initialized=True, sgx2=True, added=frozenset({0}))}
    assert {"restrict", "modtype", "remove", "eaccept", "eacceptcopy", "emodpe"} <= after2
    assert "add_pages" not in after2 and "init" not in after2


def test_scope_enumeration_is_deterministic():
    s = Scope()
    assert s.enabled(initialized=False, sgx2=True, added=frozenset()) == \
        Scope().enabled(initialized=False, sgx2=True, added=frozenset())


def test_run_fails_when_the_replay_does_not_reproduce_the_verdict(toy, tmp_path):
    cli = CliRunner()
    r = cli.invoke(main, ["check", "--design", "no-hook", "--property", "no-escalation", "--depth", "3",
                          "--out", str(tmp_path)])
    assert r.exit_code == 0
    f = tmp_path / "no-hook--no-escalation.toml"
    text = f.read_text()
    f.write_text(text[:text.rindex("[[step]]")])  # drop the last step: at_step 3 of 2 steps
    out = cli.invoke(main, ["run", str(f)])
    assert out.exit_code == 2 and f"{f}: key 'at_step': 3: expect = 'violated' needs the step" in out.output
    f.write_text(text.replace("at_step = 3", "at_step = 2"))
    out = cli.invoke(main, ["run", str(f)])
    assert out.exit_code == 1 and "verdict: violated at step 3" in out.output
    assert "this scenario gives violated at step 3 (the scenario expects violated at step 2)" in out.output
    f.write_text(text.replace('expect = "violated"\nat_step = 3', 'expect = "holds"\nat_step = 0'))
    out = cli.invoke(main, ["run", str(f)])
    assert out.exit_code == 1 and "gives violated at step 3 (the scenario expects holds)" in out.output
