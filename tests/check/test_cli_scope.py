"""``sgxsim check``/``sgxsim run`` plumbing (on the toy model) and the scope's
action enumeration."""

from __future__ import annotations

import json
import subprocess
import sys

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
    assert all(set(x) == {"design", "property", "verdict", "depth", "states", "seconds", "trace", "symmetry"}
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


PLAIN_PROPERTY = '''
from sgxsim.check.properties import Property, register_property


@register_property
class NoWxPte(Property):
    name = "plain-no-wx-pte"
    kind = "safety"

    def check(self, view, before, after, events):
        for pte in view.ptes:
            if "W" in pte.perms and "X" in pte.perms:
                return f"PTE at {pte.va:#x} grants {pte.perms}"
        return None
'''


def _check_json(tmp_path, *args):
    r = CliRunner().invoke(main, ["check", "--design", "linux-5.11", "--depth", "2", *args, "--json",
                                  "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_json_scope_says_which_symmetry_the_search_used(tmp_path):
    # "symmetry": true was what the switch asked for: also where the
    # explorer used no reduction (mremap offered; a property of a user's
    # file that does not declare itself symmetric), as the state counts
    # showed.  Now it is what the explorer's seen-key folded, per result.
    used = _check_json(tmp_path, "--property", "w-xor-x", "--pages", "2")
    assert used["scope"]["symmetry"] is True and used["results"][0]["symmetry"] == ["pages"]
    mremap = _check_json(tmp_path, "--property", "w-xor-x", "--pages", "2", "--actions",
                         "mmap,mremap,add_pages,init,load")
    off = _check_json(tmp_path, "--property", "w-xor-x", "--pages", "2", "--actions",
                      "mmap,mremap,add_pages,init,load", "--no-symmetry")
    assert mremap["scope"]["symmetry"] is False and mremap["results"][0]["symmetry"] == []
    assert mremap["results"][0]["states"] == off["results"][0]["states"]
    (tmp_path / "p.py").write_text(PLAIN_PROPERTY)
    # (in a process of its own: the file's property must not stay registered here)
    r = subprocess.run([sys.executable, "-m", "sgxsim.cli", "check", "--design", "linux-5.11", "--depth", "2",
                        "--property-file", "p.py", "--property", "plain-no-wx-pte", "--pages", "2", "--json",
                        "--out", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    plain = json.loads(r.stdout)
    assert plain["scope"]["symmetry"] is False and plain["results"][0]["symmetry"] == []
    # One page, one process: nothing to fold, and it says so.
    assert _check_json(tmp_path, "--property", "w-xor-x")["scope"]["symmetry"] is False
    # The text says it too, where --symmetry was on and there was something to fold.
    r = CliRunner().invoke(main, ["check", "--design", "linux-5.11", "--design", "linux-6.0", "--property",
                                  "w-xor-x", "--pages", "2", "--depth", "1", "--actions", "mmap,mremap",
                                  "--out", str(tmp_path / "t")])
    assert ("symmetry reduction used: linux-5.11 none, linux-6.0 none (docs/checker-reach.md says when it "
            "applies)") in r.output.splitlines(), r.output


def test_narrowing_options_are_in_the_json_text_and_html(tmp_path):
    # --perms/--map-perms/--sources/--actions appeared nowhere: a narrowed
    # "holds" read like a full one.
    narrow = ["--property", "w-xor-x", "--actions", "mmap", "--perms", "R,RW", "--map-perms", "R",
              "--sources", "image"]
    doc = _check_json(tmp_path, *narrow)
    assert {k: doc["scope"].get(k) for k in ("perms", "map_perms", "sources", "actions")} == {
        "perms": ["R", "RW"], "map_perms": ["R"], "sources": ["image"], "actions": ["mmap"]}
    assert doc["results"][0]["verdict"] == "holds"
    full = _check_json(tmp_path, "--property", "w-xor-x", "--depth", "1")
    assert not {"perms", "map_perms", "sources", "actions"} & set(full["scope"])
    line = ("narrowed by --perms R,RW --map-perms R --sources image --actions mmap: a property that holds "
            "(or a goal unreachable) does so only within them")
    for mode in ([], ["--simulate", "--walks", "3"]):
        extra = [] if mode else ["--depth", "2"]
        r = CliRunner().invoke(main, ["check", "--design", "linux-5.11", *narrow, *mode, *extra,
                                      "--out", str(tmp_path / "t"), "--html", str(tmp_path / "h")])
        assert r.exit_code == 0 and line in r.output.splitlines(), r.output
        assert "Narrowed by --perms R,RW --map-perms R --sources image --actions mmap" in (
            tmp_path / "h" / "index.html").read_text()
    sim = json.loads(CliRunner().invoke(main, ["check", "--simulate", "--walks", "2", "--design", "linux-5.11",
                                               *narrow, "--json", "--out", str(tmp_path / "s")]).stdout)
    assert sim["scope"]["actions"] == ["mmap"] and sim["scope"]["map_perms"] == ["R"]
