"""``sgxsim explain`` and ``sgxsim.explain.explain``: the chain of calls
behind one call, the refusing layer marked; bad input is a usage error."""

from __future__ import annotations

import errno

from click.testing import CliRunner

import sgxsim
from sgxsim.check import scenario as scn
from sgxsim.check.model import Action
from sgxsim.cli import main
from sgxsim.explain import explain

STEPS = [Action.make("mmap", offset=0, length=0x1000, prot="RX"),
         Action.make("add_pages", offset=0, source="image", type="REG", perms="R"),
         Action.make("init"), Action.make("load", offset=0)]


def test_a_refused_syscall_names_the_rule_and_the_path_to_it():
    m = sgxsim.Machine(kernel="linux-6.0", policy="selinux")
    p = m.spawn()
    ex = explain(p.mmap, 0, 4096, sgxsim.PROT_READ | sgxsim.PROT_WRITE | sgxsim.PROT_EXEC,
                 sgxsim.MAP_PRIVATE | sgxsim.MAP_ANONYMOUS)
    assert isinstance(ex.error, PermissionError) and ex.error.errno == errno.EACCES
    assert ex.refusal().layer == "lsm" and "execmem" in ex.refusal().detail
    text = str(ex).splitlines()
    assert text[-1].startswith("=> refused by lsm: selinux: EACCES")
    assert any(line.startswith("lsm") and "-> EACCES" in line for line in text)
    assert len(text) <= 40 and not m.trace.enabled  # the log is left as it was


def test_explain_a_fault_step_on_the_cli(tmp_path):
    f = scn.write(tmp_path / "s.toml", scn.Scenario("linux-5.11", "run-code", "unreachable", STEPS, {}, 0))
    r = CliRunner().invoke(main, ["explain", str(f), "--step", "4"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "step 4 on linux-5.11: load(offset=0)" and len(lines) <= 40
    # The fault path refused the VMA (RX) beyond the page's maximum (R): the seam's check.
    assert any("sgx_encl_vma_within_max  -> EFAULT" in line for line in lines), r.output
    assert lines[-1].startswith("=> refused by ")
    # On no-hook the same step meets no fault-time check.
    r = CliRunner().invoke(main, ["explain", str(f), "--step", "4", "--design", "no-hook", "--lines", "400"])
    assert r.exit_code == 0 and "sgx_encl_vma_within_max  ->" not in r.output
    assert "NoHookDriver.sgx_encl_vma_within_max" in r.output


def test_bad_explain_arguments_are_usage_errors(tmp_path):
    f = scn.write(tmp_path / "s.toml", scn.Scenario("linux-5.11", "run-code", "unreachable", STEPS, {}, 0))
    for args, text in ((["--step", "0"], "has steps 1 to 4, not 0"), (["--step", "9"], "not 9"),
                       (["--step", "1", "--design", "nope"], "unknown design 'nope'")):
        r = CliRunner().invoke(main, ["explain", str(f), *args])
        assert r.exit_code == 2 and text in r.output and "Traceback" not in r.output
    # A scenario without steps has none to explain (it said "steps 1 to 0").
    f = scn.write(tmp_path / "e.toml", scn.Scenario("linux-5.11", "run-code", "unreachable", [], {}, 0))
    r = CliRunner().invoke(main, ["explain", str(f), "--step", "1"])
    assert r.exit_code == 2 and f"{f} has no steps to explain" in r.output, r.output


def test_bad_arguments_of_the_python_api_are_named():
    """peek/poke/fetch, trace_data and Explanation.lines raised stray internal
    errors ("unsupported operand type(s) for &=", "slice indices must be
    integers", a bare KeyError): each is a TypeError/ValueError naming the
    argument, raised before the call does anything."""
    import pytest

    from sgxsim.check import runner
    from sgxsim.check.scope import Scope
    from sgxsim.report import trace_data

    m = sgxsim.Machine(kernel="linux-6.0")
    p = m.spawn()
    a = 0x10000000
    p.mmap(a, 4096, 3, sgxsim.MAP_PRIVATE | sgxsim.MAP_ANONYMOUS | sgxsim.MAP_FIXED)
    for call, problem in ((lambda: p.peek(a * 1.0, 1), "argument 'addr' must be an int, not float"),
                          (lambda: p.peek(a, 1.0), "argument 'n' must be an int, not float"),
                          (lambda: p.peek(str(a), 1), "argument 'addr' must be an int, not str"),
                          (lambda: p.poke(a * 1.0, b"x"), "argument 'addr' must be an int, not float"),
                          (lambda: p.poke(a, "abc"), "argument 'data' must be a bytes-like object, not str"),
                          (lambda: p.poke(a, None),
                           "argument 'data' must be a bytes-like object, not NoneType"),
                          (lambda: p.poke(a, 5), "argument 'data' must be a bytes-like object, not int"),
                          (lambda: p.fetch(None), "argument 'addr' must be an int, not NoneType")):
        with pytest.raises(TypeError) as e:
            call()
        assert str(e.value) == problem
    p.poke(a, [1, 2])  # what bytes() takes still goes
    assert p.peek(a, 2) == b"\x01\x02" and p.peek(a, True) == b"\x01"
    model = runner.make_model("linux-6.0", Scope())
    with pytest.raises(ValueError, match="argument 'prop': no property named 'nope'; known: no-escalation"):
        trace_data(model, STEPS, "nope")
    with pytest.raises(TypeError, match="argument 'prop' must be a property's name"):
        trace_data(model, STEPS, ["w-xor-x"])
    ex = explain(p.close, 9)
    with pytest.raises(TypeError, match="argument 'max_lines' must be an int, not str"):
        ex.lines("x")
    with pytest.raises(ValueError, match="argument 'max_lines' must be at least 1, not 0"):
        ex.lines(0)
    assert ex.lines(8)[0] == "close(9)"
