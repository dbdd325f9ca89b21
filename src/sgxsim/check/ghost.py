"""The checker's ghost (monitor) state: facts about the history of each
enclave page that the machine itself forgets but the properties need.

It is kept beside each explored state, updated only from the
:class:`~sgxsim.check.model.Event` s a step produced, and it is part of the
state's fingerprint (two machines that are equal but whose pages have
different histories are different states for the properties).
"""

from __future__ import annotations

from typing import NamedTuple

from sgxsim.check.model import Event


class PageGhost(NamedTuple):
    """History of one enclave page, keyed by its offset in ELRANGE.

    ``origin`` is ``build`` (added by ADD_PAGES) or ``aug`` (added after
    INIT by EAUG); ``secinfo`` the permissions its SECINFO declared at ADD
    (``""`` for EAUG pages) and ``sectype`` its type; ``source_exec`` whether
    the source mapping was VM_EXEC when the page was added; ``written``
    whether an enclave store or EACCEPTCOPY wrote it since; ``restrict`` is
    ``""``, ``"pending:P"`` after RESTRICT_PERMISSIONS to ``P``, or
    ``"accepted:P"`` once the enclave EACCEPTed that restriction."""

    origin: str
    secinfo: str
    sectype: str
    source_exec: bool
    written: bool = False
    restrict: str = ""


class GhostEdit:
    """A ghost being updated by one step's events (the actions' ``update``)."""

    __slots__ = ("pages", "ran_build_code", "wrote_build_data")

    def __init__(self, pages: dict[int, PageGhost], ran_build_code: bool, wrote_build_data: bool):
        self.pages, self.ran_build_code, self.wrote_build_data = pages, ran_build_code, wrote_build_data


class Ghost:
    """Immutable: :meth:`after` returns a new ghost."""

    __slots__ = ("pages", "ran_build_code", "wrote_build_data", "_key")

    def __init__(self, pages: dict[int, PageGhost] | None = None,
                 ran_build_code: bool = False, wrote_build_data: bool = False):
        self.pages = pages or {}
        self.ran_build_code = ran_build_code
        self.wrote_build_data = wrote_build_data
        self._key = None

    def page(self, offset: int) -> PageGhost | None:
        return self.pages.get(offset)

    def key(self) -> tuple:
        """The ghost as a value: (offset, page history) pairs in offset order,
        each history a plain tuple of PageGhost's fields (only PageGhosts sit
        there, so this is as distinct as the named tuples, and a plain tuple
        pickles in a fraction of the time: the key is digested for every
        transition that changes the state)."""
        if self._key is None:
            self._key = (tuple([(o, tuple(g)) for o, g in sorted(self.pages.items())]),
                         self.ran_build_code, self.wrote_build_data)
        return self._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ghost) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __getstate__(self):
        return (self.pages, self.ran_build_code, self.wrote_build_data)

    def __setstate__(self, st):
        self.pages, self.ran_build_code, self.wrote_build_data = st
        self._key = None

    def after(self, events: tuple[Event, ...]) -> Ghost:
        """The ghost after a step's events: each successful event updated by
        the action that produced it (:data:`sgxsim.check.actions.UPDATES`)."""
        if not events:
            return self
        updates = _UPDATES or _load_updates()
        edit = None  # made at the first event with an update (most have none)
        for ev in events:
            if ev.ok:
                f = updates.get(ev.kind)
                if f is not None:
                    if edit is None:
                        edit = GhostEdit(dict(self.pages), self.ran_build_code, self.wrote_build_data)
                    f(edit, ev)
        if edit is None or (edit.ran_build_code, edit.wrote_build_data) == \
                (self.ran_build_code, self.wrote_build_data) and edit.pages == self.pages:
            return self  # most steps teach nothing new: keep the key already made
        return Ghost(edit.pages, edit.ran_build_code, edit.wrote_build_data)

    def __repr__(self) -> str:
        return f"Ghost({self.pages!r}, ran={self.ran_build_code}, wrote={self.wrote_build_data})"


_UPDATES: dict = {}


def _load_updates() -> dict:
    # The actions import this module (PageGhost): look them up on first use.
    from sgxsim.check.actions import UPDATES

    _UPDATES.update(UPDATES)
    return _UPDATES
