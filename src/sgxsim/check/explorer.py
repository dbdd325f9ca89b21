"""Breadth-first search over the states of the real model.

Every state is a whole machine (the model's state object) plus the checker's
:class:`~sgxsim.check.ghost.Ghost`; states are deduplicated by the model's
canonical fingerprint together with the ghost's key.  The search goes level by
level, so the first transition on which a property fails (or a goal is
reached) ends the shortest trace to it.  Properties are evaluated on
*transitions*, not only on new states: a fetch that breaks ``exec-origin`` may
lead back to a state already seen.

One exploration per design checks all the selected properties at once.  With
``workers > 1`` each level's frontier is cut into contiguous chunks, expanded
in a process pool (states travel as pickles; the model is shipped to every
worker once), and the children are merged back in chunk order, so the result
is the same for any number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass, field
from typing import Any

from sgxsim.check.ghost import Ghost
from sgxsim.check.model import Action
from sgxsim.check.properties import PROPERTIES, Property


@dataclass(slots=True)
class Finding:
    """The first transition on which ``prop`` failed or was reached."""

    prop: str
    depth: int
    path: list[Action]
    reason: str
    states: int
    seconds: float


@dataclass(slots=True)
class Exploration:
    design: str
    depth: int
    states: int
    seconds: float
    exhausted: bool
    findings: dict[str, Finding] = field(default_factory=dict)
    levels: list[int] = field(default_factory=list)


# Worker-process globals: set once per pool by _init (a process's own copy,
# not shared model state).
_W: dict[str, Any] = {}


def _init(model, prop_names) -> None:
    _W["model"] = model
    _W["props"] = [PROPERTIES[n] for n in prop_names]


def _expand(model, props: list[Property], nodes: list[tuple[int, Any, Ghost]], open_props: set[str]):
    """Children of ``nodes``, in (node, action) order: ``(parent, action,
    fingerprint, state, ghost, {prop: reason})``."""
    out = []
    for idx, state, ghost in nodes:
        for action in model.actions(state):
            st = model.step(state, action)
            g2 = ghost.after(st.events)
            hits = {}
            for p in props:
                if p.name in open_props:
                    why = p.check(st.view, ghost, g2, st.events)
                    if why is not None:
                        hits[p.name] = why
            out.append((idx, action, (model.fingerprint(st.state), g2.key()), st.state, g2, hits))
    return out


def _expand_chunk(args):
    nodes, open_props = args
    return _expand(_W["model"], _W["props"], nodes, open_props)


def explore(model, prop_names: list[str] | None = None, depth: int = 6, workers: int = 1,
            max_states: int | None = None) -> Exploration:
    """Explore ``model`` breadth first up to ``depth`` actions and decide every
    property in ``prop_names`` (all by default)."""
    names = list(prop_names or PROPERTIES)
    props = [PROPERTIES[n] for n in names]
    t0 = time.perf_counter()
    init = model.initial()
    ghost = Ghost()
    # Node tables: parent index and action of every distinct state (the path
    # to any state is rebuilt from them); states only for the frontier.
    parent: list[int] = [-1]
    via: list[Action | None] = [None]
    seen = {(model.fingerprint(init), ghost.key()): 0}
    frontier = [(0, init, ghost)]
    res = Exploration(model.design, 0, 1, 0.0, False)
    open_props = set(names)

    def path_to(i: int) -> list[Action]:
        p = []
        while i > 0:
            p.append(via[i])
            i = parent[i]
        return p[::-1]

    pool = None
    if workers > 1:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        pool = ctx.Pool(workers, initializer=_init, initargs=(model, names))
    try:
        level = 0
        while frontier and level < depth and open_props:
            level += 1
            if pool is None or len(frontier) < 2 * workers:
                children = _expand(model, props, frontier, open_props)
            else:
                n = max(1, len(frontier) // (workers * 4))
                chunks = [(frontier[i:i + n], open_props) for i in range(0, len(frontier), n)]
                children = [c for part in pool.map(_expand_chunk, chunks) for c in part]
            nxt = []
            for pidx, action, fp, state, g2, hits in children:
                for name, why in hits.items():
                    if name in open_props:
                        open_props.discard(name)
                        res.findings[name] = Finding(name, level, path_to(pidx) + [action], why,
                                                     len(seen), time.perf_counter() - t0)
                if fp in seen:
                    continue
                seen[fp] = len(parent)
                parent.append(pidx)
                via.append(action)
                nxt.append((len(parent) - 1, state, g2))
            frontier = nxt
            res.levels.append(len(nxt))
            res.depth = level
            if max_states is not None and len(seen) >= max_states:
                break
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    res.states = len(seen)
    res.exhausted = not frontier
    res.seconds = time.perf_counter() - t0
    return res


def verdict(prop: str, exp: Exploration) -> str:
    """``violated``/``holds`` for a safety property, ``reachable``/``unreachable``
    for a goal."""
    p = PROPERTIES[prop]
    found = prop in exp.findings
    if p.kind == "safety":
        return "violated" if found else "holds"
    return "reachable" if found else "unreachable"


def replay(model, path: list[Action], props: list[str] | None = None):
    """Run ``path`` from the initial state with tracing on; yield, per step,
    ``(action, decisions, events, {prop: reason})``."""
    sel = [PROPERTIES[n] for n in (props or PROPERTIES)]
    state, ghost = model.initial(), Ghost()
    for action in path:
        st = model.step(state, action, trace=True)
        g2 = ghost.after(st.events)
        hits = {}
        for p in sel:
            why = p.check(st.view, ghost, g2, st.events)
            if why is not None:
                hits[p.name] = why
        yield action, st.decisions, st.events, hits
        state, ghost = st.state, g2
