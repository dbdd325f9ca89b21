"""Scenario files: a trace as TOML, replayable with ``sgxsim run``.

Layout::

    # comment lines: the per-layer decisions recorded when it was written
    design = "no-hook"
    property = "no-escalation"
    expect = "violated"
    at_step = 3
    reason = "..."

    [scope]
    pages = 4
    policy = "selinux"

    [[step]]
    action = "mprotect"
    offset = 0
    length = 0x1000
    prot = "RX"

Every key, its type and domain: docs/scenarios.md (and :data:`ACTION_KEYS`).
:func:`loads` validates a file against that schema and raises one
:class:`ScenarioError` naming the file, the step and the key for the first
thing wrong.  Read with :mod:`tomllib`; written by the small writer below
(strings, ints, bools and flat tables are all a scenario needs).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sgxsim.check.actions import BY_NAME, REGISTRY
from sgxsim.check.actions.base import LENGTH, OFFSET
from sgxsim.check.model import Action
from sgxsim.check.scope import PAGE, POLICIES, Scope

VERDICTS = {"safety": ("violated", "holds"), "goal": ("reachable", "unreachable")}
# The keys of each action besides ``action``, with their domain: OFFSET (a
# page-aligned offset of an explored page), LENGTH (a positive multiple of a
# page that stays within the explored pages) or a tuple of strings; each
# action object holds its own (sgxsim.check.actions), the optional ones last;
# a step may leave out the keys in its action's ``optional_keys``.
ACTION_KEYS: dict[str, dict[str, Any]] = {
    a.name: dict(a.keys) for a in sorted(REGISTRY, key=lambda a: a.optional)}
TOP_KEYS = ("design", "property", "expect", "at_step", "reason", "scope", "step")
SCOPE_KEYS = {"pages": "a whole number from 1 to 64", "policy": POLICIES, "mdwe": "true or false",
              "processes": "1 or 2", "enclaves": "1 or 2", "child_ioctls": "true or false"}
PROCS = ("parent", "child")
MAX_BYTES = 16 << 20  # a checker's scenario is a few KB


class ScenarioError(ValueError):
    """A scenario file that does not fit the schema: ``file``, ``step``
    (1-based, or None for a top-level key), ``key`` and what is wrong."""

    def __init__(self, file: str, step: int | None, key: str | None, problem: str):
        self.file, self.step, self.key, self.problem = file, step, key, problem
        where = [file] + ([f"step {step}"] if step is not None else []) + \
            ([f"key {key!r}"] if key is not None else [])
        super().__init__(": ".join(where + [problem]))


@dataclass(slots=True)
class Scenario:
    design: str
    prop: str
    expect: str
    steps: list[Action]
    scope: dict[str, Any] = field(default_factory=dict)
    at_step: int = 0
    reason: str = ""


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return hex(v) if v >= 4096 else str(v)
    if isinstance(v, str):
        # A TOML basic string: escape the quote, the backslash and every
        # control character (TOML forbids them raw).
        out = "".join("\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 or c == "\x7f"
                      else c for c in v)
        return f'"{out}"'
    raise TypeError(f"a scenario value must be bool, int or str, not {type(v).__name__}")


def _key(k: str) -> str:
    if not k or not all(c.isalnum() or c in "_-" for c in k):
        raise ValueError(f"bad scenario key {k!r}")
    return k


def dumps(sc: Scenario, comments: list[list[str]] | None = None) -> str:
    """TOML text of ``sc``; ``comments[i]`` are comment lines put before step i."""
    lines = [f"design = {_value(sc.design)}", f"property = {_value(sc.prop)}",
             f"expect = {_value(sc.expect)}", f"at_step = {sc.at_step}",
             f"reason = {_value(sc.reason)}", "", "[scope]"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in sc.scope.items()]
    for i, a in enumerate(sc.steps):
        lines.append("")
        for c in (comments[i] if comments and i < len(comments) else []):
            # TOML comments may not hold control characters either.
            lines.append("# " + "".join(" " if ord(ch) < 0x20 or ch == "\x7f" else ch for ch in c))
        lines.append("[[step]]")
        lines.append(f"action = {_value(a.name)}")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in a.args]
    return "\n".join(lines) + "\n"


def _check_int(v: Any, file: str, step: int | None, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ScenarioError(file, step, key, f"must be an integer, not {_show(v)}")
    return v


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_step(raw: Any, i: int, file: str, pages: int, processes: int = 1, enclaves: int = 1,
                child_ioctls: bool = False) -> Action:
    if not isinstance(raw, dict):
        raise ScenarioError(file, i, None, f"a step is a table ([[step]]), not {_show(raw)}")
    name = raw.get("action")
    if name is None:
        raise ScenarioError(file, i, "action", "missing")
    if not isinstance(name, str) or name not in ACTION_KEYS:
        raise ScenarioError(file, i, "action", f"{_show(name)} is not one of {', '.join(ACTION_KEYS)}")
    if name == "fork" and processes < 2:
        raise ScenarioError(file, i, "action", "fork needs scope processes = 2")
    act = BY_NAME[name]
    # With two enclaves or processes a step names its enclave and process first.
    where: dict[str, Any] = {}
    if enclaves > 1 and act.per_enclave:
        where["enclave"] = tuple(range(enclaves))
    if processes > 1 and act.per_process_in(Scope(processes=2, child_ioctls=child_ioctls)):
        where["proc"] = PROCS
    schema = {**where, **ACTION_KEYS[name]}
    for k in raw:
        if k != "action" and k not in schema:
            raise ScenarioError(file, i, k, f"{name} takes no such key (it takes: "
                                f"{', '.join(schema) or 'no keys'})")
    args = []
    for k, dom in schema.items():
        if k not in raw:
            if k in act.optional_keys:
                continue  # the action's default (e.g. eacceptcopy without src)
            raise ScenarioError(file, i, k, f"missing ({name} needs {', '.join(schema)})")
        v = raw[k]
        if dom is OFFSET:
            v = _check_int(v, file, i, k)
            if v % PAGE or not 0 <= v < pages * PAGE:
                raise ScenarioError(file, i, k, f"{_show(v)} is not the offset of an explored page "
                                    f"(a multiple of {PAGE:#x} below {pages * PAGE:#x}: scope pages = {pages})")
        elif dom is LENGTH:
            v = _check_int(v, file, i, k)
            off = raw.get("offset", 0)
            if v <= 0 or v % PAGE or off + v > pages * PAGE:
                raise ScenarioError(file, i, k, f"{_show(v)} is not a positive multiple of {PAGE:#x} "
                                    f"ending within the explored pages (offset + length <= {pages * PAGE:#x})")
        elif k == "enclave":
            if _check_int(v, file, i, k) not in dom:
                raise ScenarioError(file, i, k, f"{_show(v)} is not one of {', '.join(map(str, dom))} "
                                    f"(scope enclaves = {enclaves})")
        elif not isinstance(v, str) or v not in dom:
            raise ScenarioError(file, i, k, f"{_show(v)} is not one of {', '.join(dom)}")
        args.append((k, v))
    return Action(name, tuple(args))


def _check_order(steps: list[Action], file: str) -> None:
    """The child acts after the fork, and the program forks once."""
    forked = False
    for i, a in enumerate(steps, 1):
        forked = forked or a.name == "fork"
        if a.arg("proc") == "child" and not forked:
            raise ScenarioError(file, i, "proc", "'child' before the fork step: there is no child yet")
        if a.name == "fork" and sum(b.name == "fork" for b in steps[:i]) > 1:
            raise ScenarioError(file, i, "action", "a second fork (the program forks once)")


def check_steps(steps: list[Action], scope: dict[str, Any]) -> None:
    """Refuse a step that the model of ``scope`` (a model's ``scope()``)
    does not offer: an offset or length beyond its explored pages, a
    ``proc`` without ``processes = 2``, an ``enclave`` it does not have.  A
    replay must not act on the runtime's pages or another enclave instead.
    The :class:`ScenarioError` (a ValueError) names the step and the key."""
    pages, procs, encls = scope.get("pages", 1), scope.get("processes", 1), scope.get("enclaves", 1)
    where = f"replay on the model's scope (pages = {pages}, processes = {procs}, enclaves = {encls})"
    try:
        for i, a in enumerate(steps, 1):
            if not isinstance(a, Action):
                raise ScenarioError(where, i, None, f"a step is an Action, not {_show(a)}")
            _check_step({"action": a.name, **dict(a.args)}, i, where, pages, procs, encls,
                        scope.get("child_ioctls", False))
        _check_order(steps, where)
    except ScenarioError as e:
        raise ScenarioError(where, e.step, e.key, f"{e.problem}; build the model in the scenario's own "
                            "scope, Scope(**sc.scope)") from None


def loads(text: str, file: str = "<scenario>", properties: dict | None = None) -> Scenario:
    """Parse and validate a scenario (docs/scenarios.md).  ``properties``
    (default: the checker's registry) gives the known properties and their
    kinds; the design name is checked by whoever builds the model."""
    if properties is None:
        from sgxsim.check.properties import PROPERTIES as properties
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(file, None, None, f"not valid TOML: {e}") from None
    for k in d:
        if k not in TOP_KEYS:
            raise ScenarioError(file, None, k, f"unknown key (the keys are {', '.join(TOP_KEYS)})")
    for k in ("design", "property", "expect"):
        if k not in d:
            raise ScenarioError(file, None, k, "missing")
        if not isinstance(d[k], str) or not d[k]:
            raise ScenarioError(file, None, k, f"must be a non-empty string, not {_show(d[k])}")
    prop = properties.get(d["property"])
    if prop is None:
        raise ScenarioError(file, None, "property", f"{d['property']!r} is not one of {', '.join(properties)}")
    verdicts = VERDICTS[prop.kind]
    if d["expect"] not in verdicts:
        raise ScenarioError(file, None, "expect", f"{d['expect']!r}: {d['property']} is a {prop.kind} "
                            f"property, so expect is {' or '.join(verdicts)}")
    reason = d.get("reason", "")
    if not isinstance(reason, str):
        raise ScenarioError(file, None, "reason", f"must be a string, not {_show(reason)}")
    scope = d.get("scope", {})
    if not isinstance(scope, dict):
        raise ScenarioError(file, None, "scope", f"must be a table ([scope]), not {_show(scope)}")
    for k, v in scope.items():
        if k == "pages":
            _check_int(v, file, None, "scope.pages")
            if not 1 <= v <= 64:
                raise ScenarioError(file, None, "scope.pages", f"{v} is not {SCOPE_KEYS['pages']}")
        elif k == "policy":
            if v not in POLICIES:
                raise ScenarioError(file, None, "scope.policy",
                                    f"{_show(v)} is not one of {', '.join(POLICIES)}")
        elif k in ("processes", "enclaves"):
            # An int: 2.0 == 2 would pass the test and reach range(2.0).
            if type(v) is not int or v not in (1, 2):
                raise ScenarioError(file, None, f"scope.{k}", f"{_show(v)} is not {SCOPE_KEYS[k]}")
        elif k in ("mdwe", "child_ioctls"):
            if not isinstance(v, bool):
                raise ScenarioError(file, None, f"scope.{k}", f"{_show(v)} is not {SCOPE_KEYS[k]}")
        else:
            raise ScenarioError(file, None, f"scope.{k}", f"unknown key (the keys are {', '.join(SCOPE_KEYS)})")
    raw_steps = d.get("step", [])
    if not isinstance(raw_steps, list):
        raise ScenarioError(file, None, "step", "steps are an array of tables ([[step]])")
    pages = scope.get("pages", 1)
    if scope.get("child_ioctls") and scope.get("processes", 1) != 2:
        raise ScenarioError(file, None, "scope.child_ioctls", "true needs scope processes = 2 (a child to "
                            "issue them)")
    steps = [_check_step(raw, i, file, pages, scope.get("processes", 1), scope.get("enclaves", 1),
                         scope.get("child_ioctls", False))
             for i, raw in enumerate(raw_steps, 1)]
    _check_order(steps, file)
    at_step = d.get("at_step", len(steps) if d["expect"] == verdicts[0] else 0)
    _check_int(at_step, file, None, "at_step")
    if d["expect"] == verdicts[0] and not 1 <= at_step <= len(steps):
        raise ScenarioError(file, None, "at_step", f"{at_step}: expect = {d['expect']!r} needs the step "
                            f"it happens at, from 1 to {len(steps)} (the number of steps)")
    if d["expect"] == verdicts[1] and at_step != 0:
        raise ScenarioError(file, None, "at_step", f"{at_step}: expect = {d['expect']!r} happens at no "
                            "step, so at_step is 0 (or absent)")
    return Scenario(d["design"], d["property"], d["expect"], steps, dict(scope), at_step, reason)


def write(path: Path, sc: Scenario, comments: list[list[str]] | None = None) -> Path:
    """Write ``sc`` to ``path``; a file that cannot be written is an
    :class:`~sgxsim.outfile.OutputError` naming it."""
    from sgxsim.outfile import write_output

    return write_output(path, dumps(sc, comments))


def read(path: Path) -> Scenario:
    """Read and validate a scenario file; every problem is a
    :class:`ScenarioError` naming the file."""
    try:
        with open(path, "rb") as f:  # bounded: /dev/zero is no scenario either
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ScenarioError(str(path), None, None,
                                f"larger than {MAX_BYTES >> 20} MiB: not a scenario file")
        text = raw.decode()
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(str(path), None, None, f"cannot be read: {e}") from None
    return loads(text, str(path))
