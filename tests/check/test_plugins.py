"""Designs and properties from outside the package: a file loaded with
--design-file/--property-file, and an installed package's entry points
(a .dist-info written onto a directory on the subprocess's PYTHONPATH)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sgxsim.kernel import registry

DESIGN = '''
from sgxsim.kernel.registry import register
from sgxsim.kernel.sgx.driver import SgxDriver
from sgxsim.kernel.sgx.kernels import Linux511


class Driver(SgxDriver):
    def sgx_vma_mprotect(self, vma, start, end, newflags):
        return None

    def sgx_encl_vma_within_max(self, entry, vm_flags):
        return None


@register("{name}")
class Mine(Linux511):
    """linux-5.11 with neither the mprotect hook nor the fault check.

    Modified: sgx_vma_mprotect, sgx_encl_vma_within_max.
    """

    sgx_driver_class = Driver
'''

PROPERTY = '''
from sgxsim.check.properties import Property, register_property


@register_property
class AnyExecPte(Property):
    name = "{name}"
    kind = "goal"

    def check(self, view, before, after, events):
        for pte in view.ptes:
            if pte.offset == 0 and "X" in pte.perms:
                return f"PTE at {{pte.va:#x}} grants {{pte.perms}}"
        return None
'''

SCENARIO = ('design = "linux-5.11"\nproperty = "w-xor-x"\nexpect = "violated"\n\n'
            '[[step]]\naction = "mmap"\noffset = 0\nlength = 0x1000\nprot = "RWX"\n')

NARROW = ["--actions", "mmap,mprotect,add_pages,init,load", "--perms", "R,RX", "--sources", "image"]


def sgxsim(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sgxsim.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


def installed_package(site: Path, name: str, modules: dict[str, str], entry_points: str) -> Path:
    """An installed package ``name`` under ``site`` (its modules, and a
    .dist-info with ``entry_points`` as its entry_points.txt); returns ``site``."""
    pkg = site / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for mod, text in modules.items():
        (pkg / f"{mod}.py").write_text(text)
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)
    return site


def test_design_and_property_files_outside_the_package(tmp_path):
    (tmp_path / "d.py").write_text(DESIGN.format(name="file-5.11-open"))
    (tmp_path / "p.py").write_text(PROPERTY.format(name="exec-pte"))
    r = sgxsim("check", "--design-file", "d.py", "--property-file", "p.py", "--design", "file-5.11-open",
               "--design", "linux-5.11", "--property", "no-escalation", "--property", "exec-pte",
               "--depth", "4", *NARROW, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()[2:4]}
    assert rows == {"file-5.11-open": ["VIOL", "4", "reach", "4"], "linux-5.11": ["holds", "reach", "4"]}
    sc = tmp_path / "scenarios" / "file-5.11-open--no-escalation.toml"
    r = sgxsim("run", "--design-file", "d.py", str(sc), cwd=tmp_path)
    assert r.returncode == 0 and "verdict: violated at step 4" in r.stdout, r.stdout + r.stderr
    # The same trace on the merged design: the fault-time check refuses it.
    r = sgxsim("run", "--design-file", "d.py", str(sc), "--design", "linux-5.11", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "on linux-5.11 this scenario gives holds" in r.stdout
    # The access failed with the SIGBUS of the fault path, which names the driver's EFAULT.
    assert ("first refusal at step 4: mm: handle_mm_fault: SIGBUS: sgx: sgx_encl_load_page_in_vma: EFAULT"
            in r.stdout.splitlines()[-1])
    # Without the file the design is unknown: a usage error, no traceback.
    r = sgxsim("run", str(sc), cwd=tmp_path)
    assert r.returncode == 2 and "unknown design 'file-5.11-open'" in r.stderr and "Traceback" not in r.stderr


def test_entry_points_of_an_installed_package(tmp_path):
    site = installed_package(
        tmp_path / "site", "sgxsim_testpkg",
        {"designs": DESIGN.format(name="ep-5.11-open"), "properties": PROPERTY.format(name="ep-exec-pte")},
        textwrap.dedent("""\
            [sgxsim.designs]
            open = sgxsim_testpkg.designs

            [sgxsim.properties]
            exec = sgxsim_testpkg.properties
            """))
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = sgxsim("check", "--design", "ep-5.11-open", "--property", "no-escalation", "--property", "ep-exec-pte",
               "--depth", "4", *NARROW, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[2].split() == ["ep-5.11-open", "VIOL", "4", "reach", "4"]
    r = sgxsim("run", str(tmp_path / "scenarios" / "ep-5.11-open--no-escalation.toml"), cwd=tmp_path, env=env)
    assert r.returncode == 0 and "verdict: violated at step 4" in r.stdout, r.stdout + r.stderr
    # The Python API knows the design too, and the selftests run on it.
    code = "import sgxsim; print(sgxsim.Machine(kernel='ep-5.11-open').kernel.name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ep-5.11-open", out.stderr
    r = sgxsim("selftest", "--kernel", "ep-5.11-open", "--sgx1", cwd=tmp_path, env=env)
    assert "1..16" in r.stdout and "Traceback" not in r.stderr


@pytest.mark.parametrize("text, problem", [
    ("def broken(:\n", "d.py:1: syntax error"),
    ("import sgxsim\nraise RuntimeError('boom')\n", "d.py:2: RuntimeError: boom"),
    ("x = 1\n", "registers no design"),
    # Not a kernel: Machine() traced back calling it with the CPU.
    ("from sgxsim.kernel.registry import register\n@register('plain')\nclass X:\n    pass\n",
     "d.py: 'plain' is not a kernel class (register a subclass of one, e.g. "
     "sgxsim.kernel.sgx.kernels.Linux60)"),
    # A taken name: the built-in linux-6.0 was silently replaced by the file's
    # class, then the file was said to register no design.
    ("from sgxsim.kernel.registry import kernel_class, register\n"
     "@register('linux-6.0')\nclass X(kernel_class('linux-6.0')):\n    pass\n",
     "d.py: registers 'linux-6.0', a name already taken by sgxsim.kernel.sgx.kernels.Linux60: "
     "give the design a name of its own"),
])
def test_bad_design_files_are_clean_errors(tmp_path, text, problem):
    (tmp_path / "d.py").write_text(text)
    # Bad input, exit status 2 (was 1: for run, "not the expected verdict",
    # so `sgxsim run FILE --design-file d.py || echo stopped` said stopped).
    (tmp_path / "s.toml").write_text(SCENARIO)
    for cmd in (("check", "--depth", "1"), ("run", "s.toml"), ("explain", "s.toml", "--step", "1"),
                ("report", "s.toml", "--out", "r"), ("selftest",)):
        r = sgxsim(*cmd, "--design-file", "d.py", cwd=tmp_path)
        assert r.returncode == 2 and problem in r.stderr and "Traceback" not in r.stderr, (cmd, r.stderr)
        r = sgxsim(*cmd, "--design-file", "missing.py", cwd=tmp_path)
        assert r.returncode == 2 and "missing.py: no such file" in r.stderr, (cmd, r.stderr)


def test_a_file_that_exits_while_loading_is_a_clean_error(tmp_path):
    # A file that is also a script (ends with sys.exit()): SystemExit
    # escaped the loader, and run and check printed nothing and exited 0
    # (for run: "the replay gave the expected verdict").
    (tmp_path / "x.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "s.toml").write_text(SCENARIO)
    problem = f"{tmp_path / 'x.py'}:2: exits (sys.exit(0)): a design or property file must not exit"
    for args in (("check", "--design-file", "x.py", "--depth", "1"),
                 ("run", "s.toml", "--property-file", "x.py"),
                 ("explain", "s.toml", "--step", "1", "--design-file", "x.py")):
        r = sgxsim(*args, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr == f"Error: {problem}\n", (args, r.stderr)
        assert r.stdout == ""


def test_an_entry_point_that_exits_is_a_clean_error(tmp_path):
    site = installed_package(tmp_path / "site", "sgxsim_exits", {"designs": "import sys\nsys.exit(0)\n"},
                             "[sgxsim.designs]\nexits = sgxsim_exits.designs\n")
    r = sgxsim("check", "--design", "linux-6.0", "--depth", "1", cwd=tmp_path,
               env={**os.environ, "PYTHONPATH": str(site)})
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr == ("Error: entry point exits = sgxsim_exits.designs (group sgxsim.designs): exits "
                        "(sys.exit(0)) when imported\n"), r.stderr


def test_ctrl_c_while_a_file_loads_interrupts_and_leaves_nothing_registered(tmp_path):
    from sgxsim.check.properties import PROPERTIES
    from sgxsim.plugins import load_file

    f = tmp_path / "slow.py"
    f.write_text(DESIGN.format(name="half-loaded") + "\nraise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        load_file(f)
    assert "half-loaded" not in registry.names() and "half-loaded" not in PROPERTIES
    assert not [m for m in sys.modules if m.startswith("sgxsim_user_slow_")]


QUITS = """
import sys

from sgxsim.check.properties import Property, register_property


@register_property
class Quits(Property):
    name = "quits"
    kind = "safety"

    def check(self, view, before, after, events):
        sys.exit(3)
"""


@pytest.mark.parametrize("extra", [["--depth", "2"], ["--depth", "2", "--workers", "2"],
                                   ["--depth", "2", "--workers", "2", "--design", "linux-5.11"],
                                   ["--simulate", "--walks", "10"],
                                   ["--simulate", "--walks", "10", "--workers", "2"]],
                         ids=["search", "level-workers", "design-workers", "simulation", "walk-workers"])
def test_a_property_that_exits_while_checking_is_a_clean_error(tmp_path, extra):
    # In this process the command exited with the property's status and no
    # word; in a pool's worker the pool waited for ever for the worker it
    # replaced, in the search's level workers the coordinator read a closed
    # pipe (click's "Aborted!").
    (tmp_path / "q.py").write_text(QUITS)
    r = subprocess.run([sys.executable, "-m", "sgxsim.cli", "check", "--design", "linux-6.0", "--property-file",
                        "q.py", "--property", "quits", *extra], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.splitlines()[-1] == (f"Error: {tmp_path / 'q.py'}:13: exits (sys.exit(3)): a design or "
                                         "property file must not exit (raised by a design or property of "
                                         "yours)")


def test_a_design_that_exits_fails_the_selftests_it_breaks(tmp_path):
    # The suite stopped after "1..16" and exited with the design's status.
    (tmp_path / "b.py").write_text(BUGGY.replace("return 1 // 0", "raise SystemExit(4)").replace(
        '@register("buggy")', '@register("exits")'))
    r = sgxsim("selftest", "--design-file", "b.py", "--kernel", "exits", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "# SystemExit: sys.exit(4)\nnot ok 1 enclave.unclobbered_vdso\n" in r.stdout
    assert r.stdout.endswith("# Totals: pass:0 fail:16 xfail:0 xpass:0 skip:0 error:0\n")


def test_every_design_lists_what_it_modifies():
    for name in registry.names():
        cls = registry.kernel_class(name)
        if cls.__module__.startswith("sgxsim_user_"):
            continue
        declared = [n for n in registry.declared_modified(cls) if "." not in n]
        assert sorted(declared) == sorted(registry.overrides(cls)), name


BUGGY = '''
from sgxsim.kernel.registry import register
from sgxsim.kernel.sgx.driver import SgxDriver
from sgxsim.kernel.sgx.kernels import Linux511


class Driver(SgxDriver):
    def sgx_encl_may_map(self, encl, start, end, vm_flags):
        return 1 // 0


@register("buggy")
class Buggy(Linux511):
    """Modified: sgx_encl_may_map."""

    sgx_driver_class = Driver
'''


# The same bug, only in processes other than the one that loaded the design:
# in the search's worker processes (--workers 2, one design).
BUGGY_IN_WORKERS = BUGGY.replace(
    "from sgxsim.kernel.registry import register\n",
    "import os\n\nfrom sgxsim.kernel.registry import register\n\nLOADED_BY = os.getpid()\n").replace(
    "        return 1 // 0\n",
    "        if os.getpid() != LOADED_BY:\n            return 1 // 0\n"
    "        return super().sgx_encl_may_map(encl, start, end, vm_flags)\n")


def test_a_bug_in_a_users_design_inside_a_worker_process_is_a_clean_error(tmp_path):
    (tmp_path / "b.py").write_text(BUGGY_IN_WORKERS)
    line = BUGGY_IN_WORKERS.splitlines().index("            return 1 // 0") + 1
    r = sgxsim("check", "--design-file", "b.py", "--design", "buggy", "--workers", "2", "--depth", "4",
               "--property", "no-escalation", "--actions", "mmap,add_pages,init", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"{tmp_path / 'b.py'}:{line}: ZeroDivisionError: integer division or modulo by zero" in r.stderr


@pytest.mark.parametrize("extra", [[], ["--design", "linux-5.11", "--workers", "2"]])
def test_a_bug_in_a_users_design_is_a_clean_error(tmp_path, extra):
    (tmp_path / "b.py").write_text(BUGGY)
    r = sgxsim("check", "--design-file", "b.py", "--design", "buggy", *extra, "--property", "no-escalation",
               "--depth", "2", "--actions", "mmap,add_pages", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"{tmp_path / 'b.py'}:9: ZeroDivisionError: integer division or modulo by zero" in r.stderr


def test_a_bug_in_a_users_design_is_no_verdict_for_run_explain_report(tmp_path):
    # run exited 1 ("not the expected verdict") when the design raised
    # during the replay: a bad design is bad input, exit status 2, in every
    # command that replays.
    (tmp_path / "b.py").write_text(BUGGY)
    (tmp_path / "s.toml").write_text(SCENARIO)
    where = f"{tmp_path / 'b.py'}:9: ZeroDivisionError: integer division or modulo by zero"
    for cmd in (("run", "s.toml"), ("explain", "s.toml", "--step", "1"), ("report", "s.toml", "--out", "r")):
        r = sgxsim(*cmd, "--design-file", "b.py", "--design", "buggy", cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (cmd, r.stderr[-3000:])
        assert r.stderr.splitlines()[-1] == f"Error: {where} (raised by a design or property of yours)", cmd


def test_an_entry_point_cannot_replace_a_built_in_design(tmp_path):
    """An installed package registering "linux-6.0" would have replaced the
    built-in kernel for every command without a word: it is a clean error
    naming the entry point, and the name keeps its class."""
    site = installed_package(
        tmp_path / "site", "sgxsim_takeover",
        {"designs": "from sgxsim.kernel.registry import kernel_class, register\n"
                    "@register('linux-6.0')\nclass X(kernel_class('linux-6.0')):\n    pass\n"},
        "[sgxsim.designs]\ntakeover = sgxsim_takeover.designs\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = sgxsim("check", "--design", "linux-6.0", "--property", "no-escalation", "--depth", "1",
               cwd=tmp_path, env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert ("entry point takeover = sgxsim_takeover.designs (group sgxsim.designs) registers "
            "'linux-6.0', a name already taken by sgxsim.kernel.sgx.kernels.Linux60") in r.stderr


@pytest.mark.parametrize("refused, why", [
    ("@register('plain-refused')\nclass X:\n    pass\n", "is not a kernel class"),
    ("raise RuntimeError('late')\n", "RuntimeError: late"),
    # register() refuses the taken name at once, before the file goes on to raise.
    ("@register('linux-6.0')\nclass X(kernel_class('linux-6.0')):\n    pass\nraise RuntimeError('late')\n",
     "already taken"),
    ("@register('linux-6.0')\nclass X(kernel_class('linux-6.0')):\n    pass\n", "already taken"),
])
def test_a_refused_design_file_leaves_nothing_registered(tmp_path, refused, why):
    """Whichever registration is refused, nothing of the file stays: its
    other designs, its properties, and the taken name's own class."""
    from sgxsim.check.properties import PROPERTIES, SAFETY
    from sgxsim.plugins import PluginError, load_file

    builtin = registry.kernel_class("linux-6.0")
    f = tmp_path / "mixed.py"
    f.write_text("from sgxsim.kernel.registry import kernel_class, register\n"
                 "from sgxsim.check.properties import Property, register_property\n"
                 "@register('fine-but-refused')\nclass Fine(kernel_class('linux-6.0')):\n    pass\n"
                 "@register_property\nclass P(Property):\n    name = 'leaky-prop'\n    kind = 'safety'\n"
                 "    def check(self, *args, **kwargs):\n        return None\n"
                 + refused)
    with pytest.raises(PluginError, match=why):
        load_file(f)
    names = registry.names()
    assert "plain-refused" not in names and "fine-but-refused" not in names
    assert "leaky-prop" not in PROPERTIES and "leaky-prop" not in SAFETY
    assert registry.kernel_class("linux-6.0") is builtin


def test_an_entry_point_refused_once_is_refused_every_time(tmp_path, monkeypatch):
    """Its module stays imported after the first refusal, so a second load
    registered nothing and passed: the refusal is kept, and what else the
    entry point registered is undone."""
    import importlib
    import sys as _sys

    site = installed_package(
        tmp_path / "site", "sgxsim_takeover2",
        {"designs": "from sgxsim.kernel.registry import kernel_class, register\n"
                    "@register('takeover2-extra')\nclass Y(kernel_class('linux-6.0')):\n    pass\n"
                    "@register('linux-6.0')\nclass X(kernel_class('linux-6.0')):\n    pass\n"},
        "[sgxsim.designs]\ntakeover2 = sgxsim_takeover2.designs\n")
    builtin = registry.kernel_class("linux-6.0")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    try:
        for _ in range(2):
            with pytest.raises(ValueError, match="registers 'linux-6.0', a name already taken"):
                registry.load_entry_points("sgxsim.designs")
            assert registry.kernel_class("linux-6.0") is builtin
            assert "takeover2-extra" not in registry._KERNELS  # (names() raises the refusal)
    finally:
        for mod in ("sgxsim_takeover2.designs", "sgxsim_takeover2"):
            _sys.modules.pop(mod, None)
        registry._REFUSED.clear()


def test_register_refuses_a_taken_name_a_bad_name_and_a_class_that_is_no_kernel():
    """register() validated nothing: "linux-6.0" silently became the user's
    class, 42 broke every later unknown-kernel error, a plain class gave a
    confusing TypeError at Machine(), and "../escaped" took check --out's
    scenario files out of their directory."""
    import sgxsim
    from sgxsim.kernel.sgx.kernels import Linux60, Linux511

    taken = "registers 'linux-6.0', a name already taken by sgxsim.kernel.sgx.kernels.Linux60: give the"
    with pytest.raises(ValueError, match=taken):
        @registry.register("linux-6.0")
        class Oops(Linux511):
            pass
    assert registry.kernel_class("linux-6.0") is Linux60
    assert type(sgxsim.Machine(kernel="linux-6.0").kernel) is Linux60
    with pytest.raises(TypeError, match="register\\(\\) takes the design's name as a str, not 42"):
        registry.register(42)
    for bad in ("../escaped", "a/b", "", "-x", ".hidden", "two words"):
        with pytest.raises(ValueError, match=f"{re.escape(repr(bad))} is not a design name"):
            registry.register(bad)
    with pytest.raises(TypeError, match="'not-a-kernel' is not a kernel class") as e:
        @registry.register("not-a-kernel")
        class NotKernel:
            pass
    assert isinstance(e.value, ValueError)
    with pytest.raises(TypeError, match="'an-instance' is not a kernel class"):
        registry.register("an-instance")(object())
    assert "not-a-kernel" not in registry.names() and "../escaped" not in registry.names()
    with pytest.raises(ValueError, match="unknown kernel 'typo'; known: linux, "):
        sgxsim.Machine(kernel="typo")


def test_register_accepts_a_kernel_under_a_free_name_and_the_same_class_again():
    from sgxsim.kernel.sgx.kernels import Linux60

    try:
        cls = registry.register("free-6.0.x_1")(type("Free", (Linux60,), {}))
        assert registry.register("free-6.0.x_1")(cls) is cls  # the same class again: a no-op
        assert registry.kernel_class("free-6.0.x_1") is cls and cls.name == "free-6.0.x_1"
    finally:
        registry.unregister("free-6.0.x_1")


def test_a_design_file_with_a_bad_name_is_refused_naming_the_file(tmp_path):
    from sgxsim.plugins import PluginError, load_file

    f = tmp_path / "esc.py"
    f.write_text("from sgxsim.kernel.registry import kernel_class, register\n"
                 "@register('../escaped')\nclass X(kernel_class('linux-6.0')):\n    pass\n")
    with pytest.raises(PluginError, match=f"{re.escape(str(f))}: '../escaped' is not a design name"):
        load_file(f)
    assert "../escaped" not in registry.names()
