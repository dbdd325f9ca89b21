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
    start = 0x7f0000000000
    ...

Read with :mod:`tomllib`; written by the small writer below (strings, ints,
bools and flat tables are all a scenario needs).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sgxsim.check.model import Action


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


def loads(text: str) -> Scenario:
    d = tomllib.loads(text)
    try:
        steps = [Action(s["action"], tuple((k, v) for k, v in s.items() if k != "action"))
                 for s in d.get("step", [])]
        return Scenario(d["design"], d["property"], d["expect"], steps, dict(d.get("scope", {})),
                        int(d.get("at_step", len(steps))), d.get("reason", ""))
    except KeyError as e:
        raise ValueError(f"scenario lacks {e.args[0]!r}") from None


def write(path: Path, sc: Scenario, comments: list[list[str]] | None = None) -> Path:
    path.write_text(dumps(sc, comments))
    return path


def read(path: Path) -> Scenario:
    return loads(Path(path).read_text())
