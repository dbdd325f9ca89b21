"""``sgxsim check --engine ray`` on a local two-worker Ray cluster gives the
local engine's JSON: the same verdicts, depths, shortest traces and state
counts (only the times differ)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
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


def test_ray_engine_spilling_gives_the_same_json(tmp_path, monkeypatch):
    # The actors' frontiers go to disk in chunks past 64 KB each: the same
    # results, and no file left behind.
    monkeypatch.setenv("SGXSIM_SPILL_DIR", str(tmp_path / "spill"))
    local = _results([], tmp_path, "local")
    ray = _results(["--engine", "ray", "--workers", "2", "--frontier-mem", "0.0625"], tmp_path, "ray")
    assert ray == local
    assert os.listdir(tmp_path / "spill") == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sgxsim(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "sgxsim.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_an_address_where_nothing_listens_is_a_clean_error(tmp_path):
    port = _free_port()  # closed again: nothing listens there
    r = _sgxsim("check", "--engine", "ray", "--address", f"127.0.0.1:{port}", "--design", "no-hook",
                "--depth", "1", "--out", str(tmp_path))
    assert r.returncode == 2 and r.stdout == ""
    # One message, naming the address and what to do; no traceback, no Ray log.
    assert r.stderr.splitlines() == [
        f"Error: --engine ray: no Ray cluster answers at 127.0.0.1:{port} (Connection refused). Start "
        "one there (`ray start --head --port=PORT`, docs/checker-reach.md) and pass its address, or "
        "leave out --address to run on a local cluster"]


@pytest.mark.parametrize("address", ["nonsense", "10.0.0.5", "10.0.0.5:http", "host:70000"])
def test_a_malformed_address_is_refused(address, tmp_path):
    r = CliRunner().invoke(main, ["check", "--engine", "ray", "--address", address, "--out", str(tmp_path)])
    assert r.exit_code == 2, r.output
    assert f"--address {address!r} is not a Ray address: expected HOST:PORT" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_without_ray_installed_the_engine_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    r = CliRunner().invoke(main, ["check", "--engine", "ray", "--design", "no-hook", "--depth", "1",
                                  "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert "--engine ray needs Ray, which is not installed: pip install 'sgxsim[ray]'" in r.output


def test_a_local_cluster_that_fails_to_start_is_a_clean_error(tmp_path, monkeypatch):
    """Ray raises a bare Exception when its node times out starting (a
    loaded machine): one line and exit status 1, no traceback."""
    import ray

    def init(*_a, **_k):
        raise Exception("The current node timed out during startup. This could happen because "
                        "some of the Ray processes failed to startup.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    r = CliRunner().invoke(main, ["check", "--engine", "ray", "--design", "no-hook", "--depth", "1",
                                  "--out", str(tmp_path)])
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "Error: --engine ray: cannot start a local Ray cluster: The current node timed out " \
        "during startup" in r.output
    assert "Traceback" not in r.output


def test_the_recipe_on_an_existing_cluster(tmp_path):
    """docs/checker-reach.md's recipe on a one-node cluster of this machine:
    `ray start --head` (a port of its own, its own temporary directory so
    other Ray users here do not find it), then `sgxsim check --engine ray
    --address`; the JSON is the local engine's.  The cluster is stopped by
    its process group (the `ray start --block` this test started)."""
    port = _free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    log = tmp_path / "head.log"
    tmp = tempfile.mkdtemp(prefix="sgxr-", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    with open(log, "w") as out:
        head = subprocess.Popen([str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2",
                                 "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}",
                                 "--block"], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        local = _results([], tmp_path, "local")
        r = _sgxsim("check", *SCOPE, "--engine", "ray", "--address", f"127.0.0.1:{port}", "--workers", "2",
                    "--out", str(tmp_path / "cluster"), timeout=300)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        out = json.loads(r.stdout)["results"]
        for x in out:
            x.pop("seconds")
        assert out == local
        assert head.poll() is None  # the cluster stays up afterwards
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        # What Ray started in that group and outlived `ray start` goes too.
        with contextlib.suppress(ProcessLookupError):
            time.sleep(2)
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def test_design_and_property_files_reach_the_actors(tmp_path):
    # The actors are fresh processes, not forks of the driver: a --design-file
    # or --property-file was unknown to them (KeyError traceback, or a model
    # pickle naming a class no actor could import).  Their sources now travel
    # with the actors; the results are the local engine's.
    from tests.check.test_plugins import DESIGN, NARROW, PROPERTY

    (tmp_path / "d.py").write_text(DESIGN.format(name="ray-5.11-open"))
    (tmp_path / "p.py").write_text(PROPERTY.format(name="ray-exec-pte"))
    scope = ["check", "--design-file", str(tmp_path / "d.py"), "--property-file", str(tmp_path / "p.py"),
             "--design", "ray-5.11-open", "--property", "no-escalation", "--property", "ray-exec-pte",
             "--depth", "4", *NARROW, "--json"]
    out = {}
    for engine in ("local", "ray"):
        # A process of its own: loading the files registers their design and
        # property for good (in this process, every later test would see them).
        r = subprocess.run([sys.executable, "-m", "sgxsim.cli", *scope, "--engine", engine, "--workers", "2",
                            "--out", str(tmp_path / engine)], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        out[engine] = json.loads(r.stdout)["results"]
        for x in out[engine]:
            x.pop("seconds")
    assert out["ray"] == out["local"]
    assert [(x["property"], x["verdict"]) for x in out["ray"]] == [("no-escalation", "violated"),
                                                                   ("ray-exec-pte", "reachable")]


def test_a_property_that_exits_in_an_actor_is_a_clean_error(tmp_path):
    # Ray takes sys.exit() in an actor for the actor's own end: the driver
    # got a dead actor and a traceback, not the file and line.
    from tests.check.test_plugins import QUITS

    (tmp_path / "q.py").write_text(QUITS)
    r = subprocess.run([sys.executable, "-m", "sgxsim.cli", "check", "--design", "linux-6.0", "--property-file",
                        "q.py", "--property", "quits", "--depth", "2", "--engine", "ray", "--workers", "2"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.splitlines()[-1] == (f"Error: {tmp_path / 'q.py'}:13: exits (sys.exit(3)): a design or "
                                         "property file must not exit (raised by a design or property of "
                                         "yours)")
