"""Scenario files against their schema (docs/scenarios.md): every bad value
is one clean error naming the file, the step and the key (exit status 2 from
``sgxsim run``), never a traceback; Hypothesis streams of random files too."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgxsim.check import scenario as scn
from sgxsim.cli import main

HEAD = 'design = "linux-5.11"\nproperty = "no-escalation"\nexpect = "holds"\n'
MPROTECT = '[[step]]\naction = "mmap"\noffset = 0\nlength = 0x1000\nprot = "R"\n\n[[step]]\n'


def run(tmp_path, text: str, *args: str):
    f = tmp_path / "s.toml"
    f.write_text(text)
    r = CliRunner().invoke(main, ["run", str(f), *args])
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), r.exc_info
    return f, r


# The seven kinds of bad step value of issue 11, and what the error says.
SEVEN = [
    ('action = "jump"\noffset = 0\n', "key 'action': 'jump' is not one of mmap, mprotect"),
    ('action = "mprotect"\noffset = 0\nlength = 0x1000\nprot = "XYZ"\n',
     "key 'prot': 'XYZ' is not one of R, RW"),
    ('action = "add_pages"\noffset = 0\nsource = "web"\ntype = "REG"\nperms = "R"\n',
     "key 'source': 'web' is not one of image, anon, noexec"),
    ('action = "add_pages"\noffset = 0\nsource = "anon"\ntype = "SECS"\nperms = "R"\n',
     "key 'type': 'SECS' is not one of REG, TCS"),
    ('action = "mprotect"\noffset = 0\nlength = 0x1000\n',
     "key 'prot': missing (mprotect needs offset, length, prot)"),
    ('action = "mprotect"\noffset = 0\nlength = "big"\nprot = "R"\n',
     "key 'length': must be an integer, not 'big'"),
    ('action = "store"\noffset = 0x10000000\n',
     "key 'offset': 268435456 is not the offset of an explored page"),
]


@pytest.mark.parametrize("step, message", SEVEN)
def test_every_bad_step_value_is_one_clean_error(tmp_path, step, message):
    f, r = run(tmp_path, HEAD + MPROTECT + step)
    assert r.exit_code == 2, r.output
    assert f"{f}: step 2: {message}" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("text, message", [
    (HEAD + MPROTECT + 'action = "mprotect"\nstart = 0x7f0000000000\noffset = 0\nlength = 0x1000\nprot = "R"\n',
     "step 2: key 'start': mprotect takes no such key (it takes: offset, length, prot)"),
    (HEAD.replace('"holds"', '"maybe"'), "key 'expect': 'maybe': no-escalation is a safety property, "
     "so expect is violated or holds"),
    (HEAD.replace('"holds"', '"reachable"'), "key 'expect': 'reachable'"),
    (HEAD + "at_step = 3\n", "key 'at_step': 3: expect = 'holds' happens at no step"),
    (HEAD.replace('"holds"', '"violated"') + "at_step = 9\n" + MPROTECT + 'action = "init"\n',
     "key 'at_step': 9: expect = 'violated' needs the step it happens at, from 1 to 2"),
    (HEAD + 'at_step = "two"\n', "key 'at_step': must be an integer, not 'two'"),
    (HEAD.replace('"no-escalation"', '"nothing"'), "key 'property': 'nothing' is not one of no-escalation"),
    (HEAD + "colour = 1\n", "key 'colour': unknown key"),
    (HEAD + "[scope]\npages = 65\n", "key 'scope.pages': 65 is not a whole number from 1 to 64"),
    (HEAD + '[scope]\npolicy = "apparmor"\n', "key 'scope.policy': 'apparmor' is not one of selinux, none"),
    (HEAD + "[scope]\ncpus = 2\n", "key 'scope.cpus': unknown key"),
    # A float equal to 1 or 2 is no count of processes or enclaves (2.0
    # passed the membership test and range(2.0) traced back).
    (HEAD + "[scope]\nenclaves = 2.0\n", "key 'scope.enclaves': 2.0 is not 1 or 2"),
    (HEAD + "[scope]\nprocesses = 2.0\n", "key 'scope.processes': 2.0 is not 1 or 2"),
    (HEAD + "[scope]\nenclaves = 2.0\n" + MPROTECT + 'action = "init"\nenclave = 0\n',
     "key 'scope.enclaves': 2.0 is not 1 or 2"),
    (HEAD + 'step = "x"\n', "key 'step': steps are an array of tables"),
    (HEAD + "[[step]]\noffset = 0\n", "step 1: key 'action': missing"),
    ("design = \n", "not valid TOML"),
    ('property = "w-xor-x"\nexpect = "holds"\n', "key 'design': missing"),
])
def test_bad_top_level_values_are_clean_errors(tmp_path, text, message):
    f, r = run(tmp_path, text)
    assert r.exit_code == 2 and f"{f}: {message}" in r.output, r.output


def test_an_unknown_design_is_a_usage_error(tmp_path):
    f, r = run(tmp_path, HEAD.replace("linux-5.11", "linux-9.9"))
    assert r.exit_code == 2 and "unknown design 'linux-9.9'" in r.output


def test_an_unreadable_file(tmp_path):
    (tmp_path / "b.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(scn.ScenarioError, match="cannot be read"):
        scn.read(tmp_path / "b.toml")


# -- random files -------------------------------------------------------------------------------
_SCALARS = st.one_of(st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False, width=32),
                     st.text(max_size=8),
                     st.sampled_from(["R", "RW", "RX", "RWX", "XYZ", "image", "anon", "noexec", "web", "REG",
                                      "TCS", "TRIM", "SECS", "big", "violated", "holds", "reachable"]),
                     st.sampled_from([0, 0x1000, 0x2000, 0x3000, 4097, -4096]))
_VALUES = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=3))
_ACTIONS = st.sampled_from(list(scn.ACTION_KEYS) + ["jump", ""])
_KEYS = st.sampled_from(["offset", "length", "prot", "perms", "source", "type", "start", "action", "x"])


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else "0.5"
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return scn._value(v)


def _good_step(draw) -> dict:
    name = draw(st.sampled_from(list(scn.ACTION_KEYS)))
    step = {"action": name}
    for k, dom in scn.ACTION_KEYS[name].items():
        step[k] = (0x1000 if dom is scn.LENGTH else 0 if dom is scn.OFFSET
                   else draw(st.sampled_from(dom)))
    return step


@st.composite
def scenario_text(draw) -> str:
    """Half of the files are tidy (a valid head, well-formed steps, now and
    then one value changed at random), half anything."""
    tidy = draw(st.booleans())
    if tidy:
        prop, expect = draw(st.sampled_from([("no-escalation", "holds"), ("w-xor-x", "violated"),
                                             ("run-code", "unreachable"), ("run-code", "reachable")]))
        top = {"design": draw(st.sampled_from(["linux-5.11", "linux-6.0"])), "property": prop, "expect": expect}
    else:
        top = {"design": draw(st.sampled_from(["linux-5.11", "linux-6.0", "nope"])),
               "property": draw(st.sampled_from(["no-escalation", "run-code", "w-xor-x", "nope"])),
               "expect": draw(st.sampled_from(["violated", "holds", "reachable", "unreachable", "x"]))}
        extra = st.sampled_from(["at_step", "reason", "design", "expect", "extra"])
        for k in draw(st.lists(extra, max_size=2)):
            top[k] = draw(_VALUES)
    lines = [f"{k} = {_toml(v)}" for k, v in top.items()]
    if draw(st.booleans()):
        pages = draw(st.sampled_from([1, 2, 3] if tidy else [1, 2, 3, 65, "x"]))
        lines += ["[scope]", f"pages = {_toml(pages)}"]
        if draw(st.booleans()):
            policies = ["none", "selinux"] if tidy else ["none", "selinux", 1]
            lines.append(f"{'policy' if tidy else draw(st.sampled_from(['policy', 'zz']))} = "
                         f"{_toml(draw(st.sampled_from(policies)))}")
    for _ in range(draw(st.integers(1 if tidy else 0, 4))):
        lines += ["", "[[step]]"]
        if tidy:
            step = _good_step(draw)
            if draw(st.integers(0, 4)) == 0:
                step[draw(_KEYS)] = draw(_VALUES)
        elif draw(st.integers(0, 3)) == 0:
            step = _good_step(draw)
        else:
            step = {"action": draw(_ACTIONS)}
            for k in draw(st.lists(_KEYS, max_size=4, unique=True)):
                step[k] = draw(_VALUES)
        lines += [f"{k} = {_toml(v)}" for k, v in step.items()]
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=scenario_text())
def test_random_files_load_or_fail_cleanly(tmp_path, text):
    f = tmp_path / "r.toml"
    f.write_text(text)
    try:
        sc = scn.read(f)
    except scn.ScenarioError as e:
        assert str(e).startswith(f"{f}: ") and e.problem
        if e.step is not None:
            assert f": step {e.step}: " in str(e)
    else:
        assert len(sc.steps) == text.count("[[step]]")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=scenario_text())
def test_random_files_through_the_cli_never_trace_back(tmp_path, text):
    f, r = run(tmp_path, text)
    assert r.exit_code in (0, 1, 2), r.output
    assert "Traceback" not in r.output
    if r.exit_code == 2:
        assert str(f) in r.output or "unknown design" in r.output
    else:  # a valid file: explaining its first step never traces back either
        sc = scn.read(f)
        if sc.steps:
            e = CliRunner().invoke(main, ["explain", str(f), "--step", "1"])
            assert e.exit_code == 0 and e.output.startswith("step 1 on "), e.output
            assert not isinstance(e.exception, Exception) or isinstance(e.exception, SystemExit)
