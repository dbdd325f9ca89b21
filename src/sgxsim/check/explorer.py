"""Breadth-first search over the states of the real model.

Every state is a whole machine (the model's state object) plus the checker's
:class:`~sgxsim.check.ghost.Ghost`; states are deduplicated by the model's
canonical fingerprint together with the ghost's key.  The search goes level by
level, so the first transition on which a property fails (or a goal is
reached) ends the shortest trace to it.  Properties are evaluated on
*transitions*, not only on new states: a fetch that breaks ``exec-origin`` may
lead back to a state already seen.

What a transition costs is mostly copying the machine, so the search copies
as little as it can:

* a frontier state is kept *frozen* (``model.freeze``: one pickle); the search
  thaws it once, takes a :class:`~sgxsim.check.snapshot.Snapshot` of it
  (``model.snapshot``) and runs every action on that one machine, restoring
  it in place after each action that changed it (a thaw where the model has
  no snapshot);
* a child whose machine has the parent's fingerprint (a refused syscall, an
  access through a PTE that is already there, ...) is, for the search, the
  parent's machine: it shares the parent's frozen copy and the parent's
  :class:`View`, and the machine goes on to the next action without a
  restore.  This is the same equivalence the deduplication already relies on;
* a child is kept only if it is new (or, in a worker, new to that worker)
  and the search goes one level deeper; on the last level nothing is kept.
  With a snapshot (and no ``frontier_mem`` bound) it is kept as an
  ancestor's frozen machine and the actions from it, and made again in
  place when it is expanded: an ancestor is frozen once, for all its
  descendants kept that way, and thawed once for them, since they follow
  one another in the frontier, its machine and snapshot kept from one
  level to the next (the model must be deterministic; the child's
  fingerprint is checked);
* states are known by 16-byte digests (:mod:`sgxsim.check.digests`), so the
  seen-set costs tens of bytes per state;
* with the symmetry reduction (:mod:`sgxsim.check.symmetry`: the explored
  pages, and with two processes the parent/child swap where it is sound) a
  state's digest is the smallest over its mirror images, so one of them is
  explored; the machine kept is the one reached, so traces stay real runs.

One exploration per design checks all the selected properties at once.  With
``workers > 1`` each level's frontier is shared among worker processes that
keep their states; they report fingerprints and property hits, the
coordinator merges them in (parent, action) order, so the result is the same
for any number of workers.  ``engine="ray"`` runs the same workers as Ray
actors (:mod:`sgxsim.check.ray_engine`), with the seen-set partitioned over
them by digest.  With a ``frontier_mem`` bound a worker's frontier goes to
disk in chunks and comes back in the same order (:mod:`sgxsim.check.spill`).
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import time
import traceback
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sgxsim.check import symmetry
from sgxsim.check.digests import DigestSet
from sgxsim.check.ghost import Ghost
from sgxsim.check.model import Action
from sgxsim.check.properties import PROPERTIES, Property
from sgxsim.check.spill import Run, Spill, bound_from_env, merged, new_dir, remove_dir


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
    transitions: int = 0
    # Bytes of frozen states the workers wrote to disk (sgxsim.check.spill).
    spilled: int = 0
    # Seconds until the workers were ready, and an estimate of the wall time
    # on free cores: per level the busiest worker's CPU time, plus the
    # coordinator's CPU time where the workers are other processes.
    startup: float = 0.0
    cpu_path: float = 0.0
    thaws: int = 0
    restores: int = 0
    # New states by the name of the action that first reached them: where
    # the state space grows (for narrowing a scope).
    new_by_action: dict[str, int] = field(default_factory=dict)
    # The digests of every distinct state (a DigestSet; None with the Ray
    # engine, whose seen-set is partitioned over its actors).
    seen: Any = None


# -- the model's copy interface, with fallbacks for models that only step ------------------
# A level with more parents than this keeps its children compressed: a frozen
# machine is ~100 KB, mostly zero pages, and zlib level 1 takes it to ~5 KB
# for ~120 us per new state and ~50 us per thaw.
COMPRESS_ABOVE = 2000


def _freeze(model, state, compress: bool = False) -> bytes:
    f = getattr(model, "freeze", None)
    blob = f(state) if f is not None else pickle.dumps(state, pickle.HIGHEST_PROTOCOL)
    return zlib.compress(blob, 1) if compress else blob


def _thaw(model, blob: bytes):
    if blob[:1] != b"\x80":  # not a pickle (PROTO opcode): compressed
        blob = zlib.decompress(blob)
    f = getattr(model, "thaw", None)
    return f(blob) if f is not None else pickle.loads(blob)


def _apply(model, state, action: Action, view: bool = True):
    """Run ``action`` on ``state``, which the model may change in place.
    ``view=False``: the model may leave ``Step.view`` unset (``None``) when it
    has ``view(state)`` for the explorer to call."""
    return _runner(model, view)(state, action)


def _runner(model, view: bool = True):
    """:func:`_apply` as a function of (state, action), with the model's
    entry point looked up once."""
    f = getattr(model, "apply", None)
    if f is None:
        return model.step
    if view:
        return f
    return lambda state, action: f(state, action, view=False)


# A frontier entry: (node id, machine, ghost, machine fingerprint), the
# machine frozen (bytes) or as (an ancestor's frozen machine, the actions
# that lead from it, in order).
Entry = tuple[int, "bytes | tuple[bytes, tuple[Action, ...]]", Ghost, Any]

# A node kept as an ancestor's frozen machine and the actions from it is made
# again by running them.  For its children, a node that is itself made again
# by running n actions is frozen (a freeze, and at the next level a thaw and
# a snapshot) when it keeps k children with n * k >= FREEZE_AT: that costs
# about as much as running ten actions, and chaining costs each child n more.
FREEZE_AT = 10


class _Expander:
    """Expands frontier entries; shared by the sequential search and the
    workers.  ``known`` holds the digests this expander has already produced:
    their states are not frozen again, and a transition to one is reported
    only if a property fired on it (the first report of every key is at its
    earliest (parent, action) here, so the merge order is unchanged).

    ``reuse=False`` is the plain path the tests compare with: a fresh thaw of
    the parent and a fresh view for every transition."""

    def __init__(self, model, names: list[str], reuse: bool = True, lazy: bool = True):
        self.model = model
        self.reuse = reuse
        self.props: list[Property] = [PROPERTIES[n] for n in names]
        self.known = DigestSet()
        self.transitions = 0
        self.thaws = 0
        self.restores = 0
        self.snapshot = getattr(model, "snapshot", None) if reuse else None
        # Children kept as (ancestor's frozen machine, actions): needs the
        # snapshot (the ancestor's machine is made again in place).
        self.lazy = lazy and self.snapshot is not None
        self.view = getattr(model, "view", None) if reuse else None
        # A view read part by part as the properties ask (most read only the
        # PTEs): used for one transition's checks, before the machine changes.
        self.lazy_view = getattr(model, "lazy_view", self.view) if reuse else None
        # The fingerprint with, where the model can, the maker of that view
        # from what the fingerprint read (``model.observe``).
        self.observe = getattr(model, "observe", None) if reuse and self.view is not None else None
        # (fingerprint, ghost key) -> seen-key: canonical under the page
        # symmetry and the process swap where they apply (check/symmetry.py).
        self.seen_key = symmetry.seen_key(model, names)
        # The last frozen machine thawed with a snapshot, kept from one
        # expansion (level) to the next: (blob, machine, snapshot).  The
        # children kept lazily name their ancestor's blob, and one blob (the
        # root's, with few states) is often the ancestor of every entry of
        # several levels: it is then thawed and walked once, and restored at
        # the start of each later level, as between the entries of one.
        self.ancestor: tuple | None = None

    def expand(self, frontier: Iterable[Entry], size: int, open_props: set[str], pending: Run | None):
        """Expand the ``size`` entries of ``frontier`` (in node order); return
        ``records`` [(parent id, action index, action, digest, hits)] and
        append the children to keep to ``pending`` (None on the last level) as
        ((parent id, action index), machine, ghost, fingerprint), in the
        order of the records (the machine as in :data:`Entry`)."""
        model, known, reuse, lazy = self.model, self.known, self.reuse, self.lazy
        snapshot, view_of, lazy_view, seen_key = self.snapshot, self.view, self.lazy_view, self.seen_key
        # The properties still open do not change during one expansion (the
        # coordinator closes them when it merges the records).
        props = [p for p in self.props if p.name in open_props]
        fingerprint, actions_of, after = model.fingerprint, model.actions, Ghost.after
        observe = self.observe
        run = _runner(model, view_of is None)
        records: list = []
        keep = pending is not None
        compress = size > COMPRESS_ABOVE
        transitions = thaws = restores = 0
        # The machine of the last ancestor blob of a lazy entry, thawed, and
        # its snapshot: the entries that follow it in node order and share
        # the blob are made from it in place (restore, then their actions).
        gblob, gst, gsnap = self.ancestor or (None, None, None)
        self.ancestor = None  # (set again below; not kept if this raises)
        entries = iter(frontier)
        nxt = next(entries, None)  # one entry ahead: does a sibling follow?
        while nxt is not None:
            idx, blob, ghost, pfp = nxt
            nxt = next(entries, None)
            if type(blob) is tuple:
                # (ancestor's frozen machine, actions): this entry's machine.
                pblob, pacts = blob
                if pblob is not gblob:
                    gst = _thaw(model, pblob)
                    thaws += 1
                    # The ancestor's snapshot, if an entry follows to use it.
                    if nxt is not None and type(nxt[1]) is tuple and nxt[1][0] is pblob:
                        gblob, gsnap = pblob, snapshot(gst)
                    else:
                        gblob = gsnap = None
                else:
                    gsnap.restore()
                    restores += 1
                st = gst
                for pa in pacts:
                    st = run(st, pa).state
                if fingerprint(st) != pfp:
                    # A machine made again must be the one first reached; say
                    # so rather than search another space.
                    raise NotDeterministic(f"{getattr(model, 'design', model)}: "
                                       f"{', '.join(map(str, pacts))} did not reach the same machine "
                                       "again: the model's apply is not deterministic, or the "
                                       "fingerprint leaves out state an action depends on")
                # Its snapshot from the ancestor's (what the actions left
                # alone keeps its saved copy), if the model's has after().
                after_of = getattr(gsnap, "after", None) if gblob is pblob and st is gst else None
                snap = after_of() if after_of is not None else snapshot(st)
            else:
                st = _thaw(model, blob)
                thaws += 1
                snap = snapshot(st) if snapshot is not None else None
                if lazy and gsnap is None:
                    # The entries of the next level made from this one's
                    # machine name this very blob as their ancestor (kept
                    # unless an ancestor with a snapshot is kept already).
                    gblob, gst, gsnap = blob, st, snap
            node = st  # the machine the snapshot puts back
            # Lazily kept children of this entry, appended to pending once it
            # is decided how their machine is kept: ((parent, action index),
            # action or None for the parent's machine, ghost, fingerprint).
            kids: list = []
            pview = None  # the parent's view, once a transition needed it
            pkey = None   # the parent's seen-key, once a transition needed it
            dirty = False
            for ai, action in enumerate(actions_of(st)):
                if dirty:
                    if snap is not None:
                        snap.restore()
                        restores += 1
                    else:
                        st = _thaw(model, blob)
                        thaws += 1
                step = run(st, action)
                transitions += 1
                if observe is not None:
                    fp, make_view = observe(step.state)
                else:
                    fp, make_view = fingerprint(step.state), None
                same = reuse and fp == pfp
                if view_of is None:
                    view = step.view
                elif same:
                    # Kept for the later transitions: read whole, now.
                    view = pview = pview if pview is not None else view_of(step.state)
                elif make_view is not None:
                    view = make_view()
                else:
                    view = lazy_view(step.state)
                events = step.events
                g2 = after(ghost, events)
                hits = {}
                for p in props:
                    why = p.check(view, ghost, g2, events)
                    if why is not None:
                        hits[p.name] = why
                if same and g2 is ghost:
                    # The parent's machine and ghost: the parent's key (the
                    # equivalence that shares its frozen copy and view).
                    key = pkey = pkey if pkey is not None else seen_key(pfp, ghost.key())
                else:
                    key = seen_key(fp, g2.key())
                if known.add(key):
                    records.append((idx, ai, action, key, hits))
                    if keep:
                        if lazy:
                            # The parent's machine (same), or it and this
                            # action: made again when the child is expanded
                            # (the actions run again, instead of a freeze
                            # and a thaw per child).
                            kids.append(((idx, ai), None if same else action, g2, fp))
                        else:
                            pending.append(((idx, ai), blob if same else _freeze(model, step.state, compress),
                                            g2, fp))
                elif hits:
                    # A state reached before (here, so at an earlier (parent,
                    # action) in the merge order): only the property hits of
                    # this transition matter.
                    records.append((idx, ai, action, key, hits))
                # An equivalent machine goes on to the next action; any other
                # must become the parent again (unless it already is).
                st = step.state
                dirty = not same
            if kids:
                # The children's machine: this entry's ancestor and actions,
                # one action longer, or (far from it, or many children) this
                # machine frozen for them.
                if type(blob) is tuple and len(blob[1]) * len(kids) < FREEZE_AT:
                    base, acts = blob
                else:
                    if type(blob) is bytes:
                        base = blob
                    else:
                        # This very machine, not one its fingerprint cannot
                        # tell from it (the last action may have left one).
                        snap.restore()
                        restores += 1
                        base = _freeze(model, node, compress)
                    acts = ()
                    blob = base
                for key, action, g2, fp in kids:
                    pending.append((key, blob if action is None else (base, acts + (action,)), g2, fp))
        self.transitions += transitions
        self.thaws += thaws
        self.restores += restores
        if gsnap is not None:
            self.ancestor = (gblob, gst, gsnap)
        return records


class Worker:
    """One worker's share of the search (a process of the embedded engine, or
    the search itself with one worker, or an actor of the Ray engine,
    :mod:`sgxsim.check.ray_engine`): keeps its share of the frontier, expands
    it on request and reports only keys and property hits; states stay here
    except the few moved to balance the load.  The frontier and the children
    being made are :class:`~sgxsim.check.spill.Run` objects, on disk past
    ``bound`` bytes each (under ``spill_root``).  ``own`` is the worker's
    partition of the seen-set where the engine partitions it by digest
    (``dedup``)."""

    def __init__(self, model, names, reuse, bound: int | None = None, spill_root: str | None = None):
        # With a bound on memory a frontier entry is one frozen machine
        # (spill.Run counts its bytes); else a child may be kept lazily.
        self.ex = _Expander(model, names, reuse, lazy=bound is None)
        self.spill = Spill(bound, spill_root)
        self.frontier: list[Run] = []  # sorted runs of entries
        self.pending: Run | None = None
        self.own = DigestSet()
        self.cpu0 = time.process_time()

    def expand(self, open_props, keep):
        """Expand this worker's frontier in node order (the order the
        coordinator merges in): ``(records, transitions, thaws, restores,
        spilled bytes, CPU seconds of this process since the worker began)``."""
        ex = self.ex
        runs, self.frontier = self.frontier, []
        self.pending = self.spill.run() if keep else None
        records = ex.expand(merged(runs), sum(map(len, runs)), open_props, self.pending)
        return (records, ex.transitions, ex.thaws, ex.restores, self.spill.bytes_written,
                time.process_time() - self.cpu0)

    def keep(self, keeps, gives=()):
        """Keep the children ``keeps`` [(parent, action index, node id)], in
        the merge order, as the next frontier, except the last ``sum(gives)``
        of them: return those, in consecutive pieces of ``gives`` entries (to
        move to other workers)."""
        want = {(p, a): nid for p, a, nid in keeps}
        stay = len(keeps) - sum(gives)
        run = self.spill.run()
        tail: list = []
        pending, self.pending = self.pending, None
        for key, blob, g, fp in pending:  # the records' order: the merge order
            nid = want.get(key)
            if nid is not None:
                (run if len(run) < stay else tail).append((nid, blob, g, fp))
        pieces, at = [], 0
        for n in gives:
            pieces.append(tail[at:at + n])
            at += n
        if len(run):
            self.frontier.append(run)
        return pieces

    def take(self, entries) -> None:
        """Entries (sorted by node id) moved here from another worker."""
        if entries:
            self.frontier.append(self.spill.run(entries))

    def dedup(self, keys):
        """For keys in the merge order, whether each is new to this
        worker's partition of the seen-set (the first occurrence wins)."""
        return [self.own.add(k) for k in keys]

    def owned(self) -> int:
        return len(self.own)

    def close(self) -> None:
        """Drop the frontier and remove this worker's spill files."""
        for r in self.frontier:
            r.drop()
        if self.pending is not None:
            self.pending.drop()
        self.frontier, self.pending = [], None
        self.ex.ancestor = None
        self.spill.close()


class NotDeterministic(RuntimeError):
    """A child made again from its ancestor did not reach the machine first
    reached (the lazy children need a deterministic model)."""


class WorkerTraceback(Exception):
    """The traceback of an error raised in a worker process, as text: the
    cause of the error raised again in the coordinator (so that the file and
    line of a user's design can be found in it)."""


class _WorkerFailed(NamedTuple):
    """What a worker process sends instead of its answer when its search
    raised: its exception if it survives pickling (else None), and its
    traceback.  The coordinator raises it again (not a broken pipe)."""

    error: BaseException | None
    text: str


def _worker(conn, model, names, reuse, bound, spill_root) -> None:
    """A worker process of the embedded engine: a :class:`Worker` behind a pipe."""
    w = Worker(model, names, reuse, bound, spill_root)
    try:
        while True:
            msg = conn.recv()
            cmd = msg[0]
            if cmd in ("expand", "keep"):
                try:
                    conn.send(getattr(w, cmd)(*msg[1:]))
                except (Exception, SystemExit) as e:  # noqa: BLE001 - sent to the coordinator, raised there
                    # (a SystemExit too: sys.exit() in a user's design or
                    # property; the coordinator then read a closed pipe)
                    conn.send(_WorkerFailed(_picklable(e), traceback.format_exc()))
                    return
            elif cmd == "take":
                w.take(msg[1])
            else:
                conn.close()
                return
    finally:
        w.close()


def _picklable(e: BaseException) -> BaseException | None:
    try:
        pickle.loads(pickle.dumps(e))
    except Exception:  # noqa: BLE001 - any failure: only the text goes
        return None
    return e


def _answer(conn):
    """A worker's answer, or its failure raised here: the worker's own
    exception (a RuntimeError naming its last line if it does not pickle),
    caused by the worker's traceback."""
    got = conn.recv()
    if isinstance(got, _WorkerFailed):
        remote = WorkerTraceback(f"a worker of the search failed:\n{got.text}")
        if got.error is None:
            last = got.text.strip().splitlines()[-1]
            raise RuntimeError(f"a worker of the search failed: {last}") from remote
        raise got.error from remote
    return got


def _moves(counts: list[int]) -> list[list[tuple[int, int]]]:
    """How to balance the next level: for each worker, the (receiver, count)
    pieces of its surplus (the workers that made more than their share give
    the last of their children to those that made fewer, in worker order)."""
    target = -(-sum(counts) // len(counts))
    lacks = [[w, target - c] for w, c in enumerate(counts) if c < target]
    moves: list[list[tuple[int, int]]] = [[] for _ in counts]
    for w, c in enumerate(counts):
        give = c - target
        while give > 0 and lacks:
            r = lacks[0]
            n = min(give, r[1])
            moves[w].append((r[0], n))
            give -= n
            r[1] -= n
            if not r[1]:
                lacks.pop(0)
    return moves


class _Serial:
    """The search in this process: one :class:`Worker` behind the engine
    interface (see :class:`_Pool`)."""

    dedup = None
    size = 1

    def __init__(self, model, names, reuse: bool, bound, spill_root):
        self.w = Worker(model, names, reuse, bound, spill_root)

    def expand(self, open_props, keep) -> list:
        return [self.w.expand(open_props, keep)]

    def keep(self, keeps, moves) -> None:
        self.w.keep(keeps[0])

    def take(self, w: int, entries) -> None:
        self.w.take(entries)

    def close(self) -> None:
        self.w.close()


class _Pool:
    """Persistent worker processes, one pipe each.  The engine interface
    (shared with :class:`_Serial` and
    :class:`sgxsim.check.ray_engine.RayPool`): ``size``, ``expand``,
    ``keep`` (keep the new children, move the surplus as planned by
    :func:`_moves`), ``take``, ``close``; an engine with ``dedup`` keeps the
    seen-set partitioned by digest across its workers."""

    dedup = None

    def __init__(self, model, names, workers: int, reuse: bool, bound, spill_root):
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        self.conns, self.procs = [], []
        for _ in range(workers):
            a, b = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(b, model, names, reuse, bound, spill_root),
                            daemon=True)
            p.start()
            self.conns.append(a)
            self.procs.append(p)
        self.size = workers

    def expand(self, open_props, keep) -> list:
        for c in self.conns:
            c.send(("expand", set(open_props), keep))
        return [_answer(c) for c in self.conns]

    def keep(self, keeps, moves) -> None:
        # Pipes join only the workers and this process: moved states pass here.
        for c, k, m in zip(self.conns, keeps, moves, strict=True):
            c.send(("keep", k, [n for _, n in m]))
        for c, m in zip(self.conns, moves, strict=True):
            for (r, _), piece in zip(m, _answer(c), strict=True):
                self.conns[r].send(("take", piece))

    def take(self, w: int, entries) -> None:
        self.conns[w].send(("take", entries))

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(("stop",))
            except OSError:
                pass
        for p in self.procs:
            p.join(timeout=5)
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)


def explore(model, prop_names: list[str] | None = None, depth: int = 6, workers: int = 1,
            max_states: int | None = None, reuse: bool = True, progress=None,
            engine: str = "local", address: str | None = None,
            frontier_mem: int | None = None, spill_dir: str | None = None) -> Exploration:
    """Explore ``model`` breadth first up to ``depth`` actions and decide every
    property in ``prop_names`` (all by default).  ``reuse=False`` thaws a
    fresh copy of the parent and computes a fresh view for every transition
    (slower; the tests compare the two).  ``progress(exploration)`` is called after every level.
    ``engine="ray"`` shares each level out to ``workers`` Ray actors
    (:mod:`sgxsim.check.ray_engine`; a local cluster, or the one at
    ``address``) with the seen-set partitioned by digest; the result is the
    same as the embedded engine's.  ``frontier_mem``: bytes of frozen states
    each worker keeps in memory per run before it spills to disk
    (:mod:`sgxsim.check.spill`; default ``SGXSIM_FRONTIER_MEM``, else no
    bound), under ``spill_dir`` (default ``SGXSIM_SPILL_DIR``, else the
    temporary directory); the result is the same."""
    if engine not in ("local", "ray"):
        raise ValueError(f"no engine named {engine!r}; known: local, ray")
    if frontier_mem is None:
        frontier_mem = bound_from_env()
    names = list(prop_names or PROPERTIES)
    t0, cpu0 = time.perf_counter(), time.process_time()
    init = model.initial()
    ghost = Ghost()
    fp0 = model.fingerprint(init)
    root: Entry = (0, _freeze(model, init), ghost, fp0)
    # Node tables: parent index and action of every distinct state (the path
    # to any state is rebuilt from them).
    parent: list[int] = [-1]
    via: list[Action | None] = [None]
    key0 = symmetry.seen_key(model, names)(fp0, ghost.key())
    seen = DigestSet()
    seen.add(key0)
    res = Exploration(model.design, 0, 1, 0.0, False)
    open_props = set(names)
    nstates = 1  # distinct states so far (the seen-set may be partitioned)

    def path_to(i: int) -> list[Action]:
        p = []
        while i > 0:
            p.append(via[i])
            i = parent[i]
        return p[::-1]

    def merge(level: int, records, fresh: list[bool] | None = None) -> list[tuple[int, int, int]]:
        """Record the children in (parent, action) order; return the new ones
        as (parent, action index, new node id).  ``fresh``: whether each
        record is new, decided by the workers' partitions of the seen-set
        (else by ``seen``)."""
        nonlocal nstates
        new = []
        for i, (pidx, ai, action, key, hits) in enumerate(records):
            for name, why in hits.items():
                if name in open_props:
                    open_props.discard(name)
                    res.findings[name] = Finding(name, level, path_to(pidx) + [action], why,
                                                 nstates, time.perf_counter() - t0)
            if not (seen.add(key) if fresh is None else fresh[i]):
                continue
            nstates += 1
            nid = len(parent)
            parent.append(pidx)
            via.append(action)
            res.new_by_action[action.name] = res.new_by_action.get(action.name, 0) + 1
            new.append((pidx, ai, nid))
        return new

    level = 0
    remaining = 1
    spill_root = new_dir(spill_dir) if frontier_mem is not None else None
    try:
        if engine == "ray":
            from sgxsim.check.ray_engine import RayPool
            pool = RayPool(model, names, workers, reuse, address, frontier_mem, spill_root)
            seen = None  # partitioned over the actors
            pool.dedup([key0])
        elif workers <= 1:
            pool = _Serial(model, names, reuse, frontier_mem, spill_root)
            pool.w.ex.known.add(key0)
        else:
            pool = _Pool(model, names, workers, reuse, frontier_mem, spill_root)
        try:
            pool.take(0, [root])
            res.startup = time.perf_counter() - t0
            cpu = [0.0] * pool.size
            while remaining and level < depth and open_props:
                level += 1
                keep = level < depth
                owner: dict[tuple[int, int], int] = {}
                records = []
                res.transitions = res.thaws = res.restores = res.spilled = 0
                busiest = 0.0
                for w, (recs, tr, th, rs, sp, c) in enumerate(pool.expand(open_props, keep)):
                    busiest, cpu[w] = max(busiest, c - cpu[w]), c
                    res.transitions += tr
                    res.thaws += th
                    res.restores += rs
                    res.spilled += sp
                    if pool.size > 1:
                        for r in recs:
                            owner[(r[0], r[1])] = w
                    records.extend(recs)
                res.cpu_path += busiest
                if pool.size > 1:
                    records.sort(key=lambda r: (r[0], r[1]))  # the sequential order
                fresh = pool.dedup([r[3] for r in records]) if pool.dedup is not None else None
                new = merge(level, records, fresh)
                res.levels.append(len(new))
                remaining = len(new)
                if progress is not None:
                    res.depth, res.states, res.seconds = level, nstates, time.perf_counter() - t0
                    progress(res)
                if not keep:
                    break
                keeps: list[list[tuple[int, int, int]]] = [[] for _ in range(pool.size)]
                if pool.size > 1:
                    for k in new:
                        keeps[owner[(k[0], k[1])]].append(k)
                else:
                    keeps[0] = new
                pool.keep(keeps, _moves([len(k) for k in keeps]))
                if max_states is not None and nstates >= max_states:
                    break
        finally:
            pool.close()
    finally:
        remove_dir(spill_root)
    res.depth = level
    res.states = nstates
    res.seen = seen
    res.exhausted = not remaining
    res.seconds = time.perf_counter() - t0
    if not isinstance(pool, _Serial):
        res.cpu_path += time.process_time() - cpu0
    return res


def verdict(prop: str, exp: Exploration) -> str:
    """``violated``/``holds`` for a safety property, ``reachable``/``unreachable``
    for a goal."""
    p = PROPERTIES[prop]
    found = prop in exp.findings
    if p.kind == "safety":
        return "violated" if found else "holds"
    return "reachable" if found else "unreachable"


def replay(model, path: list[Action], props: list[str] | None = None, states: bool = False):
    """Run ``path`` from the initial state with tracing on; yield, per step,
    ``(action, decisions, events, {prop: reason})``, with ``states`` also
    the state after the step (a fifth item).  A step the model's scope does
    not offer, or a property that does not exist, is a ValueError naming it
    (before anything runs)."""
    for n in props or ():
        if n not in PROPERTIES:
            raise ValueError(f"no property named {n!r}; known: {', '.join(PROPERTIES)}")
    sel = [PROPERTIES[n] for n in (props or PROPERTIES)]
    if hasattr(model, "scope"):
        from sgxsim.check.scenario import check_steps  # (scenario imports the actions)

        check_steps(path, model.scope())
    state, ghost = model.initial(), Ghost()
    for action in path:
        st = model.step(state, action, trace=True)
        g2 = ghost.after(st.events)
        hits = {}
        for p in sel:
            why = p.check(st.view, ghost, g2, st.events)
            if why is not None:
                hits[p.name] = why
        yield (action, st.decisions, st.events, hits) + ((st.state,) if states else ())
        state, ghost = st.state, g2
