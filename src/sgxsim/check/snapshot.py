"""Restore a machine in place instead of thawing a fresh copy.

The explorer runs every action of a parent on the parent's own machine; after
an action that changed it, the machine must be the parent again for the next
action.  Thawing a pickle rebuilds every object (~160 us for a two-page
machine); a :class:`Snapshot` instead remembers, once per parent, the
*contents* of every mutable object reachable from the state (each dict, list,
set, deque, bytearray, array, and each instance's ``__dict__`` and slots) and
puts them back: afterwards every object the parent had holds exactly the
references it held, and whatever the action created is unreachable again.

What it walks is what ``pickle`` copies, so that a restored state is the state
a thaw would give (``tests/check/test_snapshot.py`` compares the pickles byte
for byte): classes, functions, enum members and objects with their own
``__reduce__`` (which pickle by reference, like the checker's runtime
program) are shared, not state; an object with ``__getstate__`` and
``__setstate__`` (a measurement, whose hashlib state is opaque) is saved and
restored through them.  An object of a type it does not know (a C object with
hidden state) is an error, not a silent miss.
"""

from __future__ import annotations

import enum
import keyword
import operator
import types
from array import array
from collections import deque
from itertools import chain, compress, repeat

# Immutable leaves: nothing to save, nothing inside to walk.
_ATOMS = (int, float, complex, str, bytes, bool, type(None), range, type, types.FunctionType,
          types.BuiltinFunctionType, types.MethodType, types.ModuleType, enum.Enum, type(Ellipsis))
# The exact types of the commonest leaves: a set lookup settles most of the
# walk's items without an isinstance() over every atom class.
_ATOM_TYPES = frozenset((int, str, bytes, bool, float, type(None)))


def _slots(cls: type) -> tuple[str, ...]:
    """The attribute names of every slot of ``cls`` (a private ``__x`` of
    class ``C`` is stored as ``_C__x``)."""
    names: list[str] = []
    for c in cls.__mro__:
        s = c.__dict__.get("__slots__", ())
        for n in [s] if isinstance(s, str) else s:
            if n in ("__dict__", "__weakref__"):
                continue
            if n.startswith("__") and not n.endswith("__") and c.__name__.lstrip("_"):
                n = f"_{c.__name__.lstrip('_')}{n}"
            names.append(n)
    return tuple(names)


# Per class: its slot names, a getter of all of them at once and a test
# whether any differs from saved values (a cache of class facts, not state).
_SLOTS: dict[type, tuple[tuple[str, ...], object, object]] = {}
_MISSING = object()
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined by a class statement


def _spellable(names) -> bool:
    """Whether ``o.<name>`` reads each slot (no private, mangled name)."""
    return all(n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("__") for n in names)


def _slot_getter(names: tuple[str, ...]):
    """A function returning the tuple of an object's slots, in ``names``
    order; like ``operator.attrgetter(*names)`` (AttributeError on an
    unset slot) but compiled as plain attribute loads, which the
    interpreter specialises for slots: about a third cheaper."""
    if not _spellable(names):
        get = operator.attrgetter(*names)  # a name a load cannot spell
        return (lambda o: (get(o),)) if len(names) == 1 else get
    ns: dict = {}
    exec(f"def get(o):\n    return ({''.join(f'o.{n}, ' for n in names)})\n", ns)
    return ns["get"]


def _slot_differ(names: tuple[str, ...], getter):
    """``differs(o, saved)``: whether any slot of ``o`` is not (by identity)
    its value in ``saved`` (in ``names`` order); AttributeError if a slot
    was deleted.  Compiled once per class as plain attribute loads and ``is
    not`` tests: the restore asks it of every slotted object of the machine
    each time (~60 objects, ~400 slots at --pages 2), through one C-level
    ``map``."""
    if not _spellable(names):
        return lambda o, saved: not all(map(operator.is_, getter(o), saved))
    vs = [f"v{k}" for k in range(len(names))]
    ns: dict = {}
    exec(f"def differs(o, saved):\n    {', '.join(vs)}, = saved\n"
         f"    return {' or '.join(f'o.{n} is not {v}' for n, v in zip(names, vs, strict=True))}\n", ns)
    return ns["differs"]


# Slot comparers by the classes of the slotted objects, in walk order (a
# cache of class facts: a search meets a few dozen machine shapes, ~25 at
# --pages 2 --depth 5 with snapshots made from others).  Compiling one
# costs a few milliseconds (~400 slots); in a search, with the caches cold
# after each action, it is ~5-10 us cheaper per restore than the per-class
# tests: a shape is compiled after COMPILE_AFTER restores of snapshots of
# it (counted in _USES; 300 measured best at --pages 2 --depth 5).
_DIFFS: dict[tuple[type, ...], object] = {}
_USES: dict[tuple[type, ...], int] = {}
_DIFFS_MAX = 512
COMPILE_AFTER = 300


def _differ(types: tuple[type, ...]):
    """``diff(objs, saved)``: the indices of the flattened slots of ``objs``
    (objects of ``types``, every slot set) that are not the ``saved``
    values, by identity; AttributeError if a slot was deleted.  Compiled as
    one function of plain attribute loads and ``is not`` tests: the restore
    compares every slot of the machine each time (~400 at --pages 2), and
    this costs about a third of reading them through getters and comparing
    the lists."""
    f = _DIFFS.get(types)
    if f is not None:
        return f
    names = [_SLOTS[t][0] for t in types]
    if not all(map(_spellable, names)):
        getters = [_SLOTS[t][1] for t in types]

        def f(objs, saved):
            cur = list(_chain(map(operator.call, getters, objs)))
            return list(compress(range(len(saved)), map(operator.is_not, cur, saved)))
    else:
        lines, k = [], 0
        for i, ns in enumerate(names):
            for n in ns:
                lines.append(f"    if o{i}.{n} is not v{k}: out.append({k})")
                k += 1
        head = ["def diff(objs, saved):", "    out = []"]
        if types:
            head += [f"    {', '.join(f'o{i}' for i in range(len(types)))}, = objs",
                     f"    {', '.join(f'v{j}' for j in range(k))}, = saved"]
        ns: dict = {}
        exec("\n".join(head + lines + ["    return out", ""]), ns)
        f = ns["diff"]
    if len(_DIFFS) >= _DIFFS_MAX:
        _DIFFS.clear()
    _DIFFS[types] = f
    return f


# What the walk does with an object, by its exact type (a cache of class
# facts, filled on first sight of each type): the chain of checks it
# replaces ran for every object of every snapshot.
_ATOM, _DICT, _SEQ, _LIST, _DEQUE, _SET, _BUF, _ARRAY, _SHARED, _STATEFUL, _INSTANCE = range(11)
_KINDS: dict[type, int] = {dict: _DICT, tuple: _SEQ, frozenset: _SEQ, list: _LIST, deque: _DEQUE,
                           set: _SET, bytearray: _BUF, array: _ARRAY}
_KINDS.update(dict.fromkeys(_ATOM_TYPES, _ATOM))


def _kind(t: type) -> int:
    if issubclass(t, _ATOMS):
        k = _ATOM
    elif not t.__flags__ & _HEAPTYPE:
        # A C type with state the walk cannot see (an iterator, a hashlib
        # object, ...): refuse rather than miss it.
        raise TypeError(f"cannot snapshot a {t.__qualname__}: unknown mutable type")
    elif issubclass(t, (dict, list, set, deque, bytearray, array)):
        # A subclass of a container (a Counter, ...): its contents are state
        # the kinds above would not save (a Counter's __reduce__ would make
        # it look shared): refuse rather than miss it.
        raise TypeError(f"cannot snapshot a {t.__qualname__}: a subclass of a container")
    elif "__reduce__" in t.__dict__:
        k = _SHARED  # pickled by reference: shared, not state
    elif "__setstate__" in t.__dict__:
        k = _STATEFUL
    elif issubclass(t, tuple):  # a NamedTuple
        k = _SEQ
    else:
        k = _INSTANCE
        if t not in _SLOTS:
            names = _slots(t)
            getter = _slot_getter(names) if names else None
            _SLOTS[t] = (names, getter, _slot_differ(names, getter) if names else None)
    _KINDS[t] = k
    return k


class Snapshot:
    """``Snapshot(root)`` remembers the state reachable from ``root``;
    ``restore()`` puts it back (any number of times)."""

    __slots__ = ("sets", "buffers", "slotted", "stateful", "_dict_objs",
                 "_dict_saved", "_list_objs", "_list_saved", "_deques", "_set_objs", "_set_lens",
                 "_set_flat", "_slot_entries", "_slot_objs", "_slot_tests", "_slot_saved", "_slow",
                 "_buf_objs", "_buf_saved", "_shape", "_slot_diff", "_slot_flat", "_slot_owners",
                 "_slot_names", "_slot_entry", "_seen", "_prefix", "_pre_objs", "_suffix", "_base")

    def __init__(self, root: object):
        self._empty()
        self._walk([root])
        self._finish(len(self._slot_objs))

    def _empty(self) -> None:
        # What restore() puts back, laid out for its common case, which runs
        # as C-level maps over these lists (no Python step per object):
        # every dict put back, every list refilled, and one identity
        # comparison of all the slots and set members at once.
        self._dict_objs = []   # every dict (also instances' __dict__) ...
        # ... and its saved copy, made by dict() rather than copy(): an
        # instance's __dict__ may share its keys with its class (a split
        # table), and copy() keeps that, which update() then puts back entry
        # by entry, growing the table as it goes; dict() makes a plain,
        # dense table, which update() into the cleared dict clones at once.
        self._dict_saved = []
        self._list_objs = []   # every list and its saved tuple
        self._list_saved = []
        self._deques = []      # (deque, saved tuple)
        self.sets = []         # (set, saved members in iteration order)
        self.buffers = []      # (bytearray or array, saved copy)
        self.slotted = []      # (object, names, getter or None, saved values)
        self._slot_entries = []  # those whose slots are all set, and apart:
        self._slot_objs = []     # the objects, their classes' tests and
        self._slot_tests = []    # their saved values
        self._slot_saved = []
        self.stateful = []     # (object, __getstate__())
        self._seen = set()     # the ids of the objects walked (all held above)
        self._base = None      # the snapshot after() made this one from

    def _walk(self, stack: list) -> None:
        """Save what is reachable from ``stack`` and not walked yet."""
        dict_objs, dict_saved = self._dict_objs, self._dict_saved
        list_objs, list_saved, deques = self._list_objs, self._list_saved, self._deques
        sets, buffers, stateful = self.sets, self.buffers, self.stateful
        slotted, slot_entries, slot_objs = self.slotted, self._slot_entries, self._slot_objs
        slot_tests, slot_saved = self._slot_tests, self._slot_saved
        seen = self._seen
        kinds, slots_of = _KINDS, _SLOTS
        while stack:
            x = stack.pop()
            t = type(x)
            k = kinds.get(t)
            if k is None:
                k = _kind(t)
            if k == _ATOM or id(x) in seen:
                continue
            seen.add(id(x))
            if k == _INSTANCE:
                names, getter, differs = slots_of[t]
                if names:
                    try:
                        vals = getter(x)
                    except AttributeError:
                        # An unset slot cannot be read in one call: walk it by name.
                        vals = tuple(getattr(x, n, _MISSING) for n in names)
                        slotted.append((x, names, None, vals))
                        stack.extend(v for v in vals if v is not _MISSING)
                    else:
                        entry = (x, names, getter, vals)
                        slotted.append(entry)
                        slot_entries.append(entry)
                        slot_objs.append(x)
                        slot_tests.append(differs)
                        slot_saved.append(vals)
                        stack.extend(vals)
                d = getattr(x, "__dict__", None)
                if d is not None:
                    dict_objs.append(d)
                    dict_saved.append(dict(d))  # (see _empty)
                    stack.extend(d.values())
            elif k == _DICT:
                dict_objs.append(x)
                dict_saved.append(dict(x))
                stack.extend(x.keys())
                stack.extend(x.values())
            elif k == _SEQ:
                stack.extend(x)
            elif k == _LIST:
                list_objs.append(x)
                list_saved.append(tuple(x))
                stack.extend(x)
            elif k == _SET:
                saved = tuple(x)
                sets.append((x, saved))
                stack.extend(saved)
            elif k == _BUF:
                buffers.append((x, bytes(x)))
            elif k == _ARRAY:
                buffers.append((x, array(x.typecode, x)))
            elif k == _DEQUE:
                deques.append((x, tuple(x)))
                stack.extend(x)
            elif k == _STATEFUL:
                stateful.append((x, x.__getstate__()))
            # _SHARED: nothing to save

    def _finish(self, prefix: int, like: Snapshot | None = None) -> None:
        """The lists restore() maps over; the machine shape, whose compiled
        comparer tests the first ``prefix`` fully set slotted objects (the
        rest, objects a snapshot made by after() walked anew, by their
        classes' tests).  ``like``: a flattened snapshot whose first
        ``prefix`` fully set slotted objects are this one's, in order (the
        one after() made this one from): its shape and the slots' owners
        and names are this one's too."""
        sets = self.sets
        self._set_objs = [x for x, _ in sets]
        self._set_flat = list(_chain([c for _, c in sets]))
        self._set_lens = [len(c) for _, c in sets]
        self._buf_objs = [b for b, _ in self.buffers]
        self._buf_saved = [c for _, c in self.buffers]
        self._prefix = prefix
        self._shape = like._shape if like is not None else tuple(map(type, self._slot_objs[:prefix]))
        self._slot_diff = _DIFFS.get(self._shape)
        if self._slot_diff is not None:
            self._flatten(like)
        self._slow = [e for e in self.slotted if e[2] is None]

    def after(self) -> Snapshot:
        """A snapshot of the same root as it is now, made from this one (the
        explorer's node made again from its ancestor's machine: restored,
        then a few actions run).  What still holds the saved contents (by
        identity, in order) keeps its saved copy; the rest is saved again,
        and the objects it now holds that this snapshot did not cover are
        walked.  Sound because this snapshot holds every object it covers
        (no id is reused): an object reachable now and not covered can only
        be reached through a covered object whose contents changed.  Objects
        no longer reachable stay covered: restoring them changes nothing
        reachable."""
        is_ = operator.is_
        new = Snapshot.__new__(Snapshot)
        new._empty()
        # This snapshot's ids, and this snapshot held, so that no id in
        # them is reused while the new one (or one made from it) may look
        # them up: an object only this one's saved copies held stays alive.
        new._seen = set(self._seen)
        new._base = self
        stack: list = []
        for d, saved in zip(self._dict_objs, self._dict_saved, strict=True):
            if len(d) != len(saved) or not all(map(is_, d, saved)) or \
                    not all(map(is_, d.values(), saved.values())):
                saved = dict(d)
                stack.extend(saved.keys())
                stack.extend(saved.values())
            new._dict_objs.append(d)
            new._dict_saved.append(saved)
        for x, saved in zip(self._list_objs, self._list_saved, strict=True):
            if len(x) != len(saved) or not all(map(is_, x, saved)):
                saved = tuple(x)
                stack.extend(saved)
            new._list_objs.append(x)
            new._list_saved.append(saved)
        for into, old in ((new._deques, self._deques), (new.sets, self.sets)):
            for x, saved in old:
                if len(x) != len(saved) or not all(map(is_, x, saved)):
                    saved = tuple(x)
                    stack.extend(saved)
                into.append((x, saved))
        for b, saved in self.buffers:
            if b != saved:
                saved = bytes(b) if type(b) is bytearray else array(b.typecode, b)
            new.buffers.append((b, saved))
        for o, saved in self.stateful:
            now = o.__getstate__()
            new.stateful.append((o, saved if now == saved else now))
        fast = self._changed_slotted()
        if fast is not None:
            # Every slot set, before and now: the entries of the objects
            # whose slots differ are made again, the rest kept.
            new.slotted, new._slot_entries = list(self.slotted), list(self.slotted)
            new._slot_objs, new._slot_tests = list(self._slot_objs), list(self._slot_tests)
            new._slot_saved = list(self._slot_saved)
            for j, now in fast:
                x, names, getter, _ = self.slotted[j]
                stack.extend(now)
                new.slotted[j] = new._slot_entries[j] = (x, names, getter, now)
                new._slot_saved[j] = now
        for e in self.slotted if fast is None else ():
            x, names, getter, vals = e
            try:
                now = getter(x) if getter is not None else None
            except AttributeError:
                now = None
            if now is None:
                now = tuple(getattr(x, n, _MISSING) for n in names)
                if any(map(is_, now, repeat(_MISSING))):
                    getter = None
                elif getter is None:
                    getter = _SLOTS[type(x)][1]
            if not all(map(is_, now, vals)):
                stack.extend(v for v in now if v is not _MISSING)
                e = (x, names, getter, now)
            elif getter is not e[2]:
                e = (x, names, getter, vals)
            new.slotted.append(e)
            if getter is not None:
                new._slot_entries.append(e)
                new._slot_objs.append(x)
                new._slot_tests.append(_SLOTS[type(x)][2])
                new._slot_saved.append(e[3])
        new._walk(stack)
        # The same shape as this one's for the objects this one covered
        # (one compiled comparer for both), the new ones apart: with every
        # slot set before and now (fast), the first of them are this one's
        # objects, in order.
        prefix = self._prefix if len(new._slot_objs) >= self._prefix else 0
        like = self if fast is not None and prefix and self._slot_diff is not None else None
        new._finish(prefix, like)
        return new

    def _changed_slotted(self) -> list[tuple[int, tuple]] | None:
        """(index in ``slotted``, its slots now) of each object whose slots
        are not the saved ones, found by the shape's compiled comparer and
        the classes' tests; None when they cannot say: no comparer yet, or
        a slot unset before or now (an AttributeError)."""
        diff = self._slot_diff
        if diff is None or self._slow:
            return None
        # With no unset slot, slotted and _slot_entries are the same list.
        owner = self._slot_entry
        if owner is None:
            pre = self._slot_entries[:self._prefix]
            owner = self._slot_entry = [j for j, (_, names, _, _) in enumerate(pre) for _ in names]
        try:
            changed = {owner[k] for k in diff(self._pre_objs, self._slot_flat)}
            entries, tests, objs, saved = self._suffix
            if entries:
                changed.update(compress(range(self._prefix, self._prefix + len(entries)),
                                        map(operator.call, tests, objs, saved)))
            slotted = self.slotted
            return [(j, slotted[j][2](slotted[j][0])) for j in sorted(changed)]
        except AttributeError:
            return None

    def restore(self) -> None:
        is_ = operator.is_
        _drain(map(dict.clear, self._dict_objs))
        _drain(map(dict.update, self._dict_objs, self._dict_saved))
        _drain(map(list.clear, self._list_objs))
        _drain(map(list.extend, self._list_objs, self._list_saved))
        for seq, saved in self._deques:
            seq.clear()
            seq.extend(saved)
        sets = self._set_objs
        # Same members in the same iteration order (a set of objects hashes
        # by address: re-adding in the saved order rebuilds the same table,
        # so it iterates, and pickles, as before).  The sizes are compared
        # too, so that members moving between sets cannot line up.
        if list(map(len, sets)) != self._set_lens or \
                not all(map(is_, _chain(sets), self._set_flat)):
            for s, saved in self.sets:
                if len(s) != len(saved) or not all(map(is_, s, saved)):
                    s.clear()
                    s.update(saved)
        for b, saved in compress(self.buffers, map(operator.ne, self._buf_objs, self._buf_saved)):
            b[:] = saved
        # Put back the slots that differ: found by the shape's compiled
        # comparer, or (until the shape has earned one) by each object's
        # class's test, putting back every slot of an object where one does.
        diff = self._slot_diff
        if diff is None:
            shape = self._shape
            uses = _USES.get(shape, 0) + 1
            if uses >= COMPILE_AFTER:
                diff = self._slot_diff = _differ(shape)
                self._flatten()
            else:
                if len(_USES) >= _DIFFS_MAX:
                    _USES.clear()
                _USES[shape] = uses
        # Every test runs before anything is put back, inside the try: a
        # deleted slot (AttributeError) anywhere puts every slot back by name.
        try:
            if diff is None:
                changed = list(compress(self._slot_entries, map(operator.call, self._slot_tests,
                                                                self._slot_objs, self._slot_saved)))
            else:
                changed = diff(self._pre_objs, self._slot_flat)
                entries, tests, objs, saved = self._suffix
                suffix = list(compress(entries, map(operator.call, tests, objs, saved))) \
                    if entries else ()
        except AttributeError:
            self._restore_slots(self.slotted)
        else:
            if diff is None:
                if changed:
                    self._restore_slots(changed)
            else:
                flat, owners, names = self._slot_flat, self._slot_owners, self._slot_names
                for k in changed:
                    setattr(owners[k], names[k], flat[k])
                if suffix:
                    self._restore_slots(suffix)
            if self._slow:
                self._restore_slots(self._slow)
        for o, saved in self.stateful:
            if o.__getstate__() != saved:
                o.__setstate__(saved)

    def _flatten(self, like: Snapshot | None = None) -> None:
        """The saved slots in a row, and whose and which each is (what the
        shape's compiled comparer reads; whose and which as ``like``'s, if
        given: see _finish)."""
        n = self._prefix
        self._slot_flat = list(_chain(self._slot_saved[:n]))
        if like is not None:
            # (read only, so shared)
            self._pre_objs, self._slot_owners = like._pre_objs, like._slot_owners
            self._slot_names, self._slot_entry = like._slot_names, like._slot_entry
        else:
            pre = self._slot_entries[:n]
            self._pre_objs = self._slot_objs[:n]
            self._slot_owners = [o for o, names, _, _ in pre for _ in names]
            self._slot_names = [name for _, names, _, _ in pre for name in names]
            self._slot_entry = None  # each slot's entry, when after() first asks
        self._suffix = (self._slot_entries[n:], self._slot_tests[n:], self._slot_objs[n:], self._slot_saved[n:])

    @staticmethod
    def _restore_slots(entries) -> None:
        for o, names, _, vals in entries:
            for n, v in zip(names, vals, strict=True):
                if v is _MISSING:
                    if hasattr(o, n):
                        delattr(o, n)
                else:
                    setattr(o, n, v)


_chain = chain.from_iterable


def _drain(it) -> None:
    """Run an iterator of side effects to its end (at C speed)."""
    deque(it, maxlen=0)
