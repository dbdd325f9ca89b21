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


def _children(model, props: list[Property], idx: int, state, ghost: Ghost, open_props: set[str]):
    """Yield, for every action enabled in ``state`` (in order): ``(action
    index, action, fingerprint, new state, new ghost, {prop: reason})``."""
    for ai, action in enumerate(model.actions(state)):
        st = model.step(state, action)
        g2 = ghost.after(st.events)
        hits = {}
        for p in props:
            if p.name in open_props:
                why = p.check(st.view, ghost, g2, st.events)
                if why is not None:
                    hits[p.name] = why
        yield ai, action, (model.fingerprint(st.state), g2.key()), st.state, g2, hits


def _worker(conn, model, names) -> None:
    """A worker process: keeps its share of the frontier, expands it on
    request and reports only fingerprints and property hits; states stay here
    except the few moved to balance the load."""
    props = [PROPERTIES[n] for n in names]
    frontier: list[tuple[int, Any, Ghost]] = []
    pending: dict[tuple[int, int], tuple[Any, Ghost]] = {}
    while True:
        msg = conn.recv()
        cmd = msg[0]
        if cmd == "expand":
            pending = {}
            records = []
            for idx, state, ghost in frontier:
                for ai, action, fp, st, g2, hits in _children(model, props, idx, state, ghost, msg[1]):
                    pending[(idx, ai)] = (st, g2)
                    records.append((idx, ai, action, fp, hits))
            conn.send(records)
        elif cmd == "keep":
            _, keeps, give = msg
            frontier = [(nid, *pending[(pidx, ai)]) for pidx, ai, nid in keeps]
            pending = {}
            surplus, frontier = frontier[len(frontier) - give:] if give else [], \
                frontier[:len(frontier) - give] if give else frontier
            conn.send(surplus)
        elif cmd == "take":
            frontier.extend(msg[1])
        else:
            conn.close()
            return


class _Pool:
    """Persistent worker processes, one pipe each."""

    def __init__(self, model, names, workers: int):
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        self.conns, self.procs = [], []
        for _ in range(workers):
            a, b = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(b, model, names), daemon=True)
            p.start()
            self.conns.append(a)
            self.procs.append(p)

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(("stop",))
            except OSError:
                pass
        for p in self.procs:
            p.join(timeout=5)


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
    # to any state is rebuilt from them).
    parent: list[int] = [-1]
    via: list[Action | None] = [None]
    seen = {(model.fingerprint(init), ghost.key()): 0}
    res = Exploration(model.design, 0, 1, 0.0, False)
    open_props = set(names)

    def path_to(i: int) -> list[Action]:
        p = []
        while i > 0:
            p.append(via[i])
            i = parent[i]
        return p[::-1]

    def merge(level: int, records) -> list[tuple[int, int, int]]:
        """Record the children in (parent, action) order; return the new ones
        as (parent, action index, new node id)."""
        new = []
        for pidx, ai, action, fp, hits in records:
            for name, why in hits.items():
                if name in open_props:
                    open_props.discard(name)
                    res.findings[name] = Finding(name, level, path_to(pidx) + [action], why,
                                                 len(seen), time.perf_counter() - t0)
            if fp in seen:
                continue
            nid = len(parent)
            seen[fp] = nid
            parent.append(pidx)
            via.append(action)
            new.append((pidx, ai, nid))
        return new

    level = 0
    if workers <= 1:
        frontier = [(0, init, ghost)]
        while frontier and level < depth and open_props:
            level += 1
            records, states = [], {}
            for idx, state, g in frontier:
                for ai, action, fp, st, g2, hits in _children(model, props, idx, state, g, open_props):
                    records.append((idx, ai, action, fp, hits))
                    states[(idx, ai)] = (st, g2)
            frontier = [(nid, *states[(pidx, ai)]) for pidx, ai, nid in merge(level, records)]
            res.levels.append(len(frontier))
            if max_states is not None and len(seen) >= max_states:
                break
        remaining = len(frontier)
    else:
        pool = _Pool(model, names, workers)
        try:
            pool.conns[0].send(("take", [(0, init, ghost)]))
            remaining = 1
            while remaining and level < depth and open_props:
                level += 1
                for c in pool.conns:
                    c.send(("expand", set(open_props)))
                owner: dict[tuple[int, int], int] = {}
                records = []
                for w, c in enumerate(pool.conns):
                    for r in c.recv():
                        owner[(r[0], r[1])] = w
                        records.append(r)
                records.sort(key=lambda r: (r[0], r[1]))  # the sequential order
                new = merge(level, records)
                keeps: list[list[tuple[int, int, int]]] = [[] for _ in pool.conns]
                for k in new:
                    keeps[owner[(k[0], k[1])]].append(k)
                target = -(-len(new) // workers)
                for w, c in enumerate(pool.conns):
                    c.send(("keep", keeps[w], max(0, len(keeps[w]) - target)))
                surplus = [s for c in pool.conns for s in c.recv()]
                for w, c in enumerate(pool.conns):
                    lack = target - min(len(keeps[w]), target)
                    if lack and surplus:
                        c.send(("take", surplus[:lack]))
                        surplus = surplus[lack:]
                remaining = len(new)
                res.levels.append(remaining)
                if max_states is not None and len(seen) >= max_states:
                    break
        finally:
            pool.close()
    res.depth = level
    res.states = len(seen)
    res.exhausted = not remaining
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
