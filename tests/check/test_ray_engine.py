"""``sgxsim check --engine ray`` on a local two-worker Ray cluster gives the
local engine's JSON: the same verdicts, depths, shortest traces and state
counts (only the times differ)."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from sgxsim.cli import main

SCOPE = ["--design", "linux-6.0", "--design", "no-hook", "--pages", "1", "--depth", "4", "--json"]


def _results(args, tmp_path, name):
    r = CliRunner().invoke(main, ["check", *SCOPE, *args, "--out", str(tmp_path / name)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)["results"]
    for x in out:
        x.pop("seconds")
    return out


def test_ray_engine_gives_the_local_engines_json(tmp_path):
    local = _results([], tmp_path, "local")
    ray = _results(["--engine", "ray", "--workers", "2"], tmp_path, "ray")
    assert ray == local
    # The scope decides something either way: traces to compare, both kinds.
    verdicts = {x["verdict"] for x in local}
    assert {"violated", "holds"} <= verdicts and any(x["trace"] for x in local)
    # Written scenario files are the same too.
    for f in (tmp_path / "local").iterdir():
        assert (tmp_path / "ray" / f.name).read_text() == f.read_text()


def test_the_embedded_engine_never_imports_ray(tmp_path):
    code = ("import sys; from sgxsim.cli import main\n"
            "try:\n"
            f"    main(['check', '--design', 'no-hook', '--property', 'w-xor-x', '--depth', '2', "
            f"'--workers', '2', '--out', {str(tmp_path)!r}])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('ray' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_engine_options_refused_where_they_do_not_apply(tmp_path):
    r = CliRunner().invoke(main, ["check", "--address", "127.0.0.1:6379", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--address needs --engine ray" in r.output
    r = CliRunner().invoke(main, ["check", "--simulate", "--engine", "ray", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--simulate runs on the local engine" in r.output
