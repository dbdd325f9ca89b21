"""What every checker action is: one object per action name holding its
parameter domain (given the scope), when it is enabled (given the state),
how it runs through the real syscalls, ioctls and vDSO, and what it tells
the ghost state.

An action object is not the step itself: the step is a
:class:`~sgxsim.check.model.Action` value (name and arguments), the thing
traces, scenario files and JSON carry.  The object is the behaviour of every
step of that name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, NamedTuple

from sgxsim.check.model import Action, Event

if TYPE_CHECKING:
    from sgxsim.check.ghost import GhostEdit
    from sgxsim.check.scope import Scope

# The domains of a scenario key (docs/scenarios.md): OFFSET is the
# page-aligned offset of an explored page, LENGTH a positive multiple of a
# page ending within the explored pages; a tuple of strings is an enum.
OFFSET, LENGTH = "offset", "length"


class Ctx(NamedTuple):
    """What enabling looks at, for one enclave: whether the program INITed
    it, whether the kernel's driver is the SGX2 one, the explored offsets
    the program added with ADD_PAGES, and whether the program forked.

    Along every run each field only grows: nothing un-INITs an enclave or
    un-forks the program, ``sgx2`` is the kernel's, and ``added`` gains the
    pages ADD_PAGES adds and loses none (a page removed after INIT stays
    one).  The process symmetry relies on this (:func:`~sgxsim.check.actions.alike_from`)."""

    initialized: bool
    sgx2: bool
    added: frozenset[int]
    forked: bool = False


class CheckerAction(ABC):
    """One action of the checker.  Subclasses set ``name`` and ``keys`` (the
    scenario schema of its arguments, in trace order) and override
    :meth:`offers`, :meth:`run` and, when its events change the ghost,
    :meth:`update`.  Every key is required in a scenario step except those
    in ``optional_keys``: :meth:`run` has a default for them (so files
    written before the key existed still replay)."""

    name: str = ""
    keys: dict[str, Any] = {}
    optional_keys: frozenset[str] = frozenset()
    # Offered only when named in --actions.
    optional: bool = False
    # The event kinds whose ghost update this action owns (default: its name).
    events: tuple[str, ...] = ()
    # Whether a step names its enclave (--enclaves 2) and its process
    # (--processes 2; only the actions a child may run: mm calls, entering).
    per_enclave: bool = True
    per_process: bool = False
    # An ioctl on the enclave's fd: issued by the parent, or by either
    # process with --child-ioctls (Scope.child_ioctls), when it is per-process.
    ioctl: bool = False
    # Run by the kernel in no process (the reclaimer): offered once, and
    # alike whichever process is which.
    by_kernel: bool = False

    # Abstract: an action class that leaves either out cannot be
    # instantiated, so the registry refuses it when it is built.
    @abstractmethod
    def offers(self, scope: Scope, ctx: Ctx) -> list[Action]:
        """The steps of this action enabled in a state, in the search's order."""

    @abstractmethod
    def run(self, model: Any, st: Any, a: Action, ev: list[Event]) -> None:
        """Run step ``a`` on machine state ``st`` through the model's real
        entry points, appending the checker events it produced to ``ev``."""

    def update(self, edit: GhostEdit, ev: Event) -> None:
        """The ghost update of a successful event of this action (one of
        :meth:`event_kinds`); the default changes nothing."""
        return None  # most actions leave the ghost as it is

    def per_process_in(self, scope: Scope) -> bool:
        """Whether a step names its process in ``scope`` (with --processes 2):
        the mm calls and entering always, the ioctls with --child-ioctls."""
        return self.per_process or (self.ioctl and getattr(scope, "child_ioctls", False))

    def event_kinds(self) -> tuple[str, ...]:
        return self.events or (self.name,)

    def __repr__(self) -> str:
        return f"<checker action {self.name}>"


def errno_of(st: Any, fn, *args) -> int:
    """Run a syscall; return its errno (0 on success).  The refusal's
    decision goes into the trace: it is what the syscall's caller sees."""
    try:
        fn(*args)
    except OSError as e:
        why = getattr(e, "why", None)
        tr = st.m.trace
        if why is not None and tr.enabled:
            tr.refuse(why)  # the syscall returned -errno: its caller's refusal
        return e.errno or -1
    return 0
