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
import operator
import types
from array import array
from collections import deque

# Immutable leaves: nothing to save, nothing inside to walk.
_ATOMS = (int, float, complex, str, bytes, bool, type(None), range, type, types.FunctionType,
          types.BuiltinFunctionType, types.MethodType, types.ModuleType, enum.Enum, type(Ellipsis))


def _slots(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for c in cls.__mro__:
        s = c.__dict__.get("__slots__", ())
        names += [s] if isinstance(s, str) else [n for n in s if n not in ("__dict__", "__weakref__")]
    return tuple(names)


# Per class: its slot names and a getter of all of them at once (a cache of
# class facts, not state).
_SLOTS: dict[type, tuple[tuple[str, ...], object]] = {}
_MISSING = object()
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined by a class statement


def _slot_getter(names: tuple[str, ...]):
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda o: (one(o),)
    return operator.attrgetter(*names)


class Snapshot:
    """``Snapshot(root)`` remembers the state reachable from ``root``;
    ``restore()`` puts it back (any number of times)."""

    __slots__ = ("dicts", "lists", "sets", "buffers", "slotted", "stateful")

    def __init__(self, root: object):
        dicts: list = []     # (dict, saved copy): also instances' __dict__
        lists: list = []     # (list or deque, saved tuple)
        sets: list = []      # (set, saved members in iteration order)
        buffers: list = []   # (bytearray or array, saved copy)
        slotted: list = []   # (object, names, getter, saved values)
        stateful: list = []  # (object, __getstate__())
        seen: set[int] = set()
        stack = [root]
        while stack:
            x = stack.pop()
            if isinstance(x, _ATOMS) or id(x) in seen:
                continue
            seen.add(id(x))
            t = type(x)
            if t is dict:
                dicts.append((x, x.copy()))
                stack.extend(x.keys())
                stack.extend(x.values())
            elif t is tuple or t is frozenset:
                stack.extend(x)
            elif t is list or t is deque:
                lists.append((x, tuple(x)))
                stack.extend(x)
            elif t is set:
                sets.append((x, tuple(x)))
                stack.extend(x)
            elif t is bytearray or t is array:
                buffers.append((x, array(x.typecode, x) if t is array else bytes(x)))
            elif not t.__flags__ & _HEAPTYPE:
                # A C type with state the walk cannot see (an iterator, a
                # hashlib object, ...): refuse rather than miss it.
                raise TypeError(f"cannot snapshot a {t.__qualname__}: unknown mutable type")
            elif "__reduce__" in t.__dict__:
                continue  # pickled by reference: shared, not state
            elif "__setstate__" in t.__dict__:
                stateful.append((x, x.__getstate__()))
            elif isinstance(x, tuple):  # a NamedTuple
                stack.extend(x)
            else:
                cached = _SLOTS.get(t)
                if cached is None:
                    names = _slots(t)
                    cached = _SLOTS[t] = (names, _slot_getter(names) if names else None)
                names, getter = cached
                if names:
                    vals = tuple(getattr(x, n, _MISSING) for n in names)
                    # An unset slot cannot be read in one call: walk it by name.
                    slotted.append((x, names, None if any(v is _MISSING for v in vals) else getter,
                                    vals))
                    stack.extend(v for v in vals if v is not _MISSING)
                d = getattr(x, "__dict__", None)
                if d is not None:
                    dicts.append((d, d.copy()))
                    stack.extend(d.values())
        self.dicts, self.lists, self.sets, self.buffers = dicts, lists, sets, buffers
        self.slotted, self.stateful = slotted, stateful

    def restore(self) -> None:
        is_ = operator.is_
        for d, saved in self.dicts:
            d.clear()
            d.update(saved)
        for seq, saved in self.lists:
            seq.clear()
            seq.extend(saved)
        for s, saved in self.sets:
            # Same members in the same iteration order (a set of objects
            # hashes by address: re-adding in the saved order rebuilds the
            # same table, so it iterates, and pickles, as before).
            if len(s) != len(saved) or not all(map(is_, s, saved)):
                s.clear()
                s.update(saved)
        for b, saved in self.buffers:
            if b != saved:
                b[:] = saved
        for o, names, getter, vals in self.slotted:
            if getter is not None and all(map(is_, getter(o), vals)):
                continue  # every slot still holds what it held
            for n, v in zip(names, vals, strict=True):
                if v is _MISSING:
                    if hasattr(o, n):
                        delattr(o, n)
                else:
                    setattr(o, n, v)
        for o, saved in self.stateful:
            if o.__getstate__() != saved:
                o.__setstate__(saved)
