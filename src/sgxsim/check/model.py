"""What the explorer needs from a model: the vocabulary between ``check/`` and
the machine it explores.

A *model* wraps one design of the real ``Machine`` (one kernel from the
registry, one scope of actions).  The explorer never looks inside a state; it
asks the model for

* ``initial()`` – the state the search starts from (the documented initial
  state of the scope);
* ``actions(state)`` – the actions enabled in a state, in a fixed order (so
  the search is deterministic);
* ``step(state, action, trace=False)`` – run one action through the model's
  real API on a *copy* of ``state`` and return a :class:`Step`: the new state,
  the checker :class:`Event` s the action produced (what the enclave fetched,
  stored, which pages ADD_PAGES added from which source, what mprotect
  returned, ...), a :class:`~sgxsim.check.properties.View` of the new state,
  and, when ``trace`` is set, every layer's decisions;
* ``fingerprint(state)`` – a canonical, hashable key of the state with the
  allocation accidents (which EPC slot or RAM frame was used) canonicalised
  away.

Models must be picklable: ``--workers`` ships the model to its worker
processes once, and states with each level of the search.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a scenario: ``name`` (``mmap``, ``mprotect``, ``add_pages``,
    ``store``, ...) and its arguments as ``(key, value)`` pairs in a fixed order,
    values being ints, strs or bools so that they round-trip through TOML."""

    name: str
    args: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def make(cls, name: str, **kw: Any) -> Action:
        return cls(name, tuple(kw.items()))

    def arg(self, key: str, default: Any = None) -> Any:
        for k, v in self.args:
            if k == key:
                return v
        return default

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.name, **dict(self.args)}

    def __str__(self) -> str:
        def fmt(v: Any) -> str:
            return f"{v:#x}" if isinstance(v, int) and not isinstance(v, bool) and v >= 4096 else repr(v) \
                if isinstance(v, str) else str(v)
        inner = ", ".join(f"{k}={fmt(v)}" for k, v in self.args)
        return f"{self.name}({inner})"


class Event(NamedTuple):
    """Something the checker's ghost state must know about, produced by one step.

    ``kind`` is one of ``add`` (ADD_PAGES added the page at enclave offset
    ``addr``; ``info = (sectype, perms, source_exec)``), ``aug`` (a page was
    added after INIT by EAUG), ``store``/``fetch``/``load`` (an enclave
    access at enclave offset ``addr``; ``info = (error_code,)`` when it
    faulted), ``eaccept``, ``eacceptcopy``, ``emodpe`` (``info = (perms,)``),
    ``restrict`` (RESTRICT_PERMISSIONS, ``info = (perms,)``), ``modtype``
    (``info = (type,)``), ``remove``, ``reclaim`` and ``mprotect`` (``addr`` is
    the start address, ``info = (end, prot)``, and ``(end, prot, proc)``
    with two processes).  With two enclaves ``addr`` is taken from the first
    enclave's base.  ``ok`` tells whether the operation succeeded."""

    kind: str
    addr: int
    ok: bool
    info: tuple = ()


@dataclass(slots=True)
class Step:
    state: Any
    events: tuple[Event, ...]
    view: Any
    decisions: list = field(default_factory=list)


class Model(Protocol):
    design: str

    def initial(self) -> Any: ...

    def actions(self, state: Any) -> Sequence[Action]: ...

    def step(self, state: Any, action: Action, trace: bool = False) -> Step: ...

    def fingerprint(self, state: Any) -> Hashable: ...

    def scope(self) -> dict[str, Any]: ...
