"""Simulation mode: seeded random walks beyond the depth exhaustion reaches.

Breadth-first search settles a property up to a depth; past it the state
space is too large.  A random walk goes deep cheaply: from the initial state
it picks one enabled action after another and evaluates every property on
every transition, exactly as the explorer does (same model, same ghost,
same properties).  Walks are *swarm*-like (SPIN's swarm verification): walk
``i`` draws its own random generator from ``(seed, i)`` and its own bias over
the action names (some actions frequent, some rare, some left out), so that
different walks push the machine in different directions.  Walk ``i`` is the
same whichever worker runs it, so the result does not depend on ``workers``.

Every violation found is *shrunk*: delta debugging (Zeller's ddmin) on the
action list, each candidate replayed on the real model from the initial state
(a candidate whose action is not enabled where it would run is rejected), to
a list from which no single action or chunk can be dropped.  The shrunk
trace is what gets reported and written as a scenario for ``sgxsim run``.

A walk that finds nothing proves nothing: the verdicts of this mode are
``violated`` / ``reachable`` or ``no violation in N walks`` / ``not reached
in N walks``, never ``holds``.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from dataclasses import dataclass, field

from sgxsim.check.digests import DigestSet, digest
from sgxsim.check.explorer import _apply, _freeze, _thaw
from sgxsim.check.ghost import Ghost
from sgxsim.check.model import Action
from sgxsim.check.properties import PROPERTIES
from sgxsim.plugins import no_exit

# A walk picks an action *name* first, then one of its parameter choices:
# uniform over actions would let ADD_PAGES (15 variants) crowd out the one
# mmap that must come before it.  Swarm biases: per walk, each name gets one
# of NAME_BIASES and each parameter value (a protection, a source, a page
# offset, ...) one of PARAM_BIASES (0 leaves it out of that walk unless
# nothing else is enabled); a choice's weight is the product of its values'.
NAME_BIASES = (0.0, 1.0)
PARAM_BIASES = (0.0, 1.0)
# The share of walks that restart from a state met before (see _Pool), and
# how many states the pool keeps (compressed, ~5 KB each).
RESTART = 0.5
POOL_CAP = 20000


@dataclass(slots=True)
class WalkFinding:
    """A property that failed (or a goal reached) on walk ``walk`` at step
    ``found_at``; ``path`` is the shrunk trace, ``reason`` its last step's."""

    prop: str
    walk: int
    found_at: int
    path: list[Action]
    reason: str


@dataclass(slots=True)
class Simulation:
    design: str
    walks: int
    walk_depth: int
    seed: int
    steps: int = 0
    seconds: float = 0.0
    findings: dict[str, WalkFinding] = field(default_factory=dict)


def walk_rng(seed: int, walk: int) -> random.Random:
    """Walk ``walk``'s generator (a string seed is hashed with SHA-512, so it
    is the same on every run and machine)."""
    return random.Random(f"sgxsim-walk:{seed}:{walk}")


def _hits(props, view, ghost, g2, events) -> dict[str, str]:
    out = {}
    for p in props:
        why = p.check(view, ghost, g2, events)
        if why is not None:
            out[p.name] = why
    return out


def first_hit(model, path: list[Action], prop: str) -> tuple[int, str] | None:
    """Replay ``path`` from the initial state: ``(steps, reason)`` up to the
    first transition on which ``prop`` fires, or ``None`` if it never does
    or an action is not enabled where it would run."""
    p = [PROPERTIES[prop]]
    st = _thaw(model, _freeze(model, model.initial()))
    ghost = Ghost()
    for i, action in enumerate(path):
        if action not in model.actions(st):
            return None
        step = _apply(model, st, action)
        g2 = ghost.after(step.events)
        hit = _hits(p, step.view, ghost, g2, step.events)
        if hit:
            return i + 1, hit[prop]
        st, ghost = step.state, g2
    return None


def shrink(model, path: list[Action], prop: str) -> list[Action]:
    """ddmin: the smallest sub-list (in order) of ``path`` found on which
    ``prop`` still fires, cut after the step where it fires."""
    got = first_hit(model, path, prop)
    if got is None:
        raise ValueError(f"{prop} does not fire on the path to shrink")
    path = path[:got[0]]
    n = 2
    while len(path) >= 2:
        chunk = -(-len(path) // n)
        parts = [path[i:i + chunk] for i in range(0, len(path), chunk)]
        reduced = False
        for k in range(len(parts)):
            cand = [a for j, part in enumerate(parts) if j != k for a in part]
            got = first_hit(model, cand, prop)
            if got is not None:
                path, n, reduced = cand[:got[0]], max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(path):
                break
            n = min(len(path), 2 * n)
    return path


def _bias(key, bias: dict, rng: random.Random, choices) -> float:
    """The walk's bias for ``key``, drawn on first sight (in the walk's
    order, so a walk is reproducible)."""
    w = bias.get(key)
    if w is None:
        w = bias[key] = rng.choice(choices)
    return w


def _pick(actions: list[Action], bias: dict, rng: random.Random) -> Action:
    groups: dict[str, list[Action]] = {}
    for a in actions:
        groups.setdefault(a.name, []).append(a)
    names = list(groups)
    nw = [_bias(n, bias, rng, NAME_BIASES) for n in names]
    name = rng.choices(names, nw if any(nw) else None)[0]
    group = groups[name]
    weights = []
    for a in group:
        w = 1.0
        for kv in a.args:
            w *= _bias(kv, bias, rng, PARAM_BIASES)
        weights.append(w)
    if not any(weights):
        weights = [1.0] * len(group)
    return rng.choices(group, weights)[0]


class _Pool:
    """The distinct states the walks have met, to restart from: a walk starts
    from the initial state or from a state drawn uniformly from this pool, so
    that a state that only a rare ordering reaches (an mmap before the ADD it
    protects) is as likely a starting point as a common one.  Capped: past
    ``cap`` states the pool stops growing."""

    def __init__(self, model, cap: int):
        self.model, self.cap = model, cap
        self.seen = DigestSet()
        self.entries: list[tuple[bytes, Ghost, list[Action]]] = []

    def offer(self, st, fp, ghost: Ghost, path: list[Action]) -> None:
        if self.seen.add(digest((fp, ghost.key()))) and len(self.entries) < self.cap:
            self.entries.append((_freeze(self.model, st, compress=True), ghost, list(path)))


def _walk(model, blob: bytes, props, seed: int, i: int, depth: int, found: dict,
          pool: _Pool | None) -> int:
    """Walk ``i``; record in ``found`` (prop -> (walk, step, raw path, reason))
    the first hit of each property not found before.  Returns steps taken."""
    rng = walk_rng(seed, i)
    bias: dict = {}
    st, ghost, path = None, Ghost(), []
    if pool is not None and pool.entries and rng.random() < RESTART:
        eblob, ghost, path = pool.entries[rng.randrange(len(pool.entries))]
        if len(path) < depth:
            st, path = _thaw(model, eblob), list(path)
        else:
            ghost, path = Ghost(), []
    if st is None:
        st = _thaw(model, blob)
    steps = 0
    while len(path) < depth:
        actions = model.actions(st)
        if not actions:
            break
        action = _pick(actions, bias, rng)
        step = _apply(model, st, action)
        steps += 1
        path.append(action)
        g2 = ghost.after(step.events)
        for name, why in _hits(props, step.view, ghost, g2, step.events).items():
            if name not in found:
                found[name] = (i, len(path), list(path), why)
        st, ghost = step.state, g2
        if pool is not None:
            pool.offer(st, model.fingerprint(st), ghost, path)
    return steps


def _run_walks(model, names: list[str], seed: int, walks: range, depth: int, restarts: bool = True):
    props = [PROPERTIES[n] for n in names]
    blob = _freeze(model, model.initial())
    pool = _Pool(model, POOL_CAP) if restarts else None
    found: dict = {}
    steps = 0
    for i in walks:
        steps += _walk(model, blob, props, seed, i, depth, found, pool)
    return found, steps


# What a forked walker needs (set just before the pool forks).
_JOB: dict = {}


@no_exit
def _walker(part: range):
    model, names, seed, depth = _JOB["args"]
    return _run_walks(model, names, seed, part, depth)


def simulate(model, prop_names: list[str] | None = None, walks: int = 1000, walk_depth: int = 30,
             seed: int = 0, workers: int = 1) -> Simulation:
    """``walks`` random walks of ``walk_depth`` actions from ``seed``; each
    property's first hit (lowest walk, then step) is shrunk."""
    names = list(prop_names or PROPERTIES)
    t0 = time.perf_counter()
    res = Simulation(model.design, walks, walk_depth, seed)
    if workers > 1 and walks > 1 and "fork" in mp.get_all_start_methods():
        parts = [range(w, walks, workers) for w in range(workers)]
        _JOB["args"] = (model, names, seed, walk_depth)
        try:
            with mp.get_context("fork").Pool(workers) as pool:
                outs = pool.map(_walker, parts)
        finally:
            _JOB.clear()
    else:
        outs = [_run_walks(model, names, seed, range(walks), walk_depth)]
    # Per property the hit of the lowest walk: the same for any number of workers.
    first: dict = {}
    for found, steps in outs:
        res.steps += steps
        for name, hit in found.items():
            if name not in first or hit[:2] < first[name][:2]:
                first[name] = hit
    for name in names:
        if name in first:
            walk, at, path, _why = first[name]
            small = shrink(model, path, name)
            res.findings[name] = WalkFinding(name, walk, at, small, first_hit(model, small, name)[1])
    res.seconds = time.perf_counter() - t0
    return res


def verdict(prop: str, sim: Simulation) -> str:
    """``violated``/``reachable`` when found, else what the walks showed."""
    found = prop in sim.findings
    if PROPERTIES[prop].kind == "safety":
        return "violated" if found else f"no violation in {sim.walks} walks"
    return "reachable" if found else f"not reached in {sim.walks} walks"
