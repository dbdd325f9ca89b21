"""The checker's actions, one object each (:class:`~.base.CheckerAction`):
parameter domain, enabling, execution through the real API, ghost update.

:data:`REGISTRY` is in the search's order: in every state the explorer is
offered each action's enabled steps in that order, so the order decides which
of several shortest traces is printed.
"""

from __future__ import annotations

from itertools import combinations

from sgxsim.check.actions.base import CheckerAction, Ctx
from sgxsim.check.actions.build import AddPages, Init
from sgxsim.check.actions.enclave import Eaccept, EacceptCopy, Emodpe, Fetch, Load, Store, update_aug
from sgxsim.check.actions.mm import Mmap, Mprotect, Mremap, Mseal, Munmap
from sgxsim.check.actions.process import Fork
from sgxsim.check.actions.reclaim import Reclaim
from sgxsim.check.actions.sgx2 import ModType, Remove, Restrict
from sgxsim.check.model import Action

REGISTRY: tuple[CheckerAction, ...] = (
    Mmap(), Mprotect(), Munmap(), Mseal(), Mremap(), AddPages(), Init(), Restrict(), ModType(), Remove(),
    Load(), Store(), Fetch(), Eaccept(), EacceptCopy(), Emodpe(), Reclaim(), Fork())
BY_NAME: dict[str, CheckerAction] = {a.name: a for a in REGISTRY}

# The ghost update of each event kind: the action's that produces it, and
# ``aug`` (an EAUG the driver made on an access's fault).
UPDATES = {k: a.update for a in REGISTRY for k in a.event_kinds() if type(a).update is not CheckerAction.update}
UPDATES["aug"] = update_aug


def enabled(scope, ctx: Ctx) -> list[Action]:
    """The steps offered in a state of one process and one enclave, in the
    search's order."""
    want = scope.actions
    out: list[Action] = []
    for a in REGISTRY:
        if a.name in want:
            out += a.offers(scope, ctx)
    return out


def enabled_in(scope, ctxs: list[Ctx]) -> list[Action]:
    """The steps offered with ``ctxs[e]`` the context of enclave ``e``: per
    action (in the search's order), per enclave, per process (the parent,
    then the child once forked), each step naming its ``enclave`` (with
    --enclaves 2) and its ``proc`` (with --processes 2) first."""
    if scope.enclaves == 1 and scope.processes == 1:
        return enabled(scope, ctxs[0])
    want = scope.actions
    out: list[Action] = []
    for a in REGISTRY:
        if a.name not in want:
            continue
        if not a.per_enclave:
            out += a.offers(scope, ctxs[0])
            continue
        for e, ctx in enumerate(ctxs):
            where: tuple = (("enclave", e),) if scope.enclaves > 1 else ()
            mine = a.per_process_in(scope)
            procs = ("parent", "child") if mine and ctx.forked else ("parent",)
            for p in procs:
                pre = where + ((("proc", p),) if scope.processes > 1 and mine else ())
                out += [Action(s.name, pre + s.args) for s in a.offers(scope, ctx)]
    return out


def process_bound(scope) -> tuple[CheckerAction, ...]:
    """The actions of ``scope`` whose steps run in one given process (the
    parent): neither offered to each process alike (``per_process_in``) nor
    run by the kernel in none (``by_kernel``).  Today: the ioctls without
    --child-ioctls, and ``fork``."""
    return tuple(a for a in REGISTRY if a.name in scope.actions and not a.per_process_in(scope)
                 and not a.by_kernel)


# Beyond this many explored pages not added yet, alike_from() does not
# enumerate the contexts ahead and answers False (no reduction: sound).
ALIKE_FREE_PAGES = 10


def alike_from(scope, ctx: Ctx) -> bool:
    """Whether no step of a :func:`process_bound` action is offered in
    ``ctx`` nor in any context a run can reach from it, so that every step
    offered from here on is offered to both processes alike or is the
    kernel's.  The contexts ahead are all those whose fields have only grown
    (:class:`Ctx`: INIT done or not, any superset of the pages added), which
    includes every one a run reaches; ``ctx`` itself is tried first."""
    bound = process_bound(scope)
    if not bound:
        return True
    free = [o for o in scope.offsets() if o not in ctx.added]
    if len(free) > ALIKE_FREE_PAGES:
        return False
    for init in (True,) if ctx.initialized else (False, True):
        for k in range(len(free) + 1):
            for more in combinations(free, k):
                c = ctx._replace(initialized=init, added=ctx.added | frozenset(more))
                if any(a.offers(scope, c) for a in bound):
                    return False
    return True


__all__ = ["BY_NAME", "REGISTRY", "UPDATES", "CheckerAction", "Ctx", "alike_from", "enabled", "enabled_in",
           "process_bound"]
