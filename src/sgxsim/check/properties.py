"""The properties a design is checked against: five safety properties (must
hold in every reachable state and on every transition) and four reachability
goals (a design that is safe but useless must show them).

Each property is evaluated on one transition of the search: the
:class:`View` of the state reached, the ghost state before and after, and the
events the step produced.  ``check`` returns ``None`` when the property is
fine on that transition, else a one-line reason; for a goal, a non-``None``
answer means the goal is reached.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from sgxsim.check.ghost import Ghost
from sgxsim.check.model import Event
from sgxsim.hw.faults import PF_SGX

# A TCS page counts as RW (vm_max_prot_bits(): the kernel maps TCS pages RW).
TCS_PERMS = "RW"


@dataclass(frozen=True, slots=True)
class PteView:
    """One present user PTE into the EPC: linear address ``va``; ``offset`` its
    offset in the enclave's ELRANGE (``None`` outside); ``perms`` the access
    it grants (``R``, plus ``W`` when PTE_RW, plus ``X`` when not NX);
    ``epc_valid`` whether the EPC page it maps is valid in the EPCM;
    ``epc_owned`` whether that page belongs to this enclave; ``epc_offset`` the
    EPCM's enclave linear address of that page minus the base."""

    va: int
    offset: int | None
    perms: str
    epc_valid: bool
    epc_owned: bool
    epc_offset: int | None
    # The process whose page table holds it (0: the parent, 1: the child).
    proc: int = 0


@dataclass(frozen=True, slots=True)
class VmaView:
    start: int
    end: int
    prot: str
    proc: int = 0


@dataclass(frozen=True, slots=True)
class View:
    """What the properties see of a machine: the PTEs into the EPC, the VMAs
    of the process, and the LSM's process-wide grants (``execmem``,
    ``execmod`` on the enclave file)."""

    ptes: tuple[PteView, ...] = ()
    vmas: tuple[VmaView, ...] = ()
    execmem: bool = False
    execmod: bool = False


def _fmt(off: int) -> str:
    return f"page {off:#x}"


class Property(ABC):
    name: str = ""
    kind: str = "safety"  # or "goal"

    @abstractmethod
    def check(self, view: View, before: Ghost, after: Ghost, events: tuple[Event, ...]) -> str | None:
        """The reason the property fails (safety) or the goal is reached, else None."""


class NoEscalation(Property):
    """``no-escalation``: no present PTE maps a page that was added with
    ADD_PAGES with a permission its SECINFO did not declare.  A TCS page
    counts as RW.  Pages added by EAUG are not constrained by this property.
    With two processes: the PTEs of both page tables."""

    name = "no-escalation"

    def check(self, view, before, after, events):
        for p in view.ptes:
            if p.offset is None:
                continue
            g = after.page(p.offset)
            if g is None or g.origin != "build":
                continue
            allowed = TCS_PERMS if g.sectype == "TCS" else g.secinfo
            extra = "".join(c for c in p.perms if c not in allowed)
            if extra:
                return (f"PTE at {p.va:#x} grants {p.perms} to {_fmt(p.offset)} added as "
                        f"{g.sectype} {g.secinfo or '-'} (extra {extra})")
        return None


class ExecOrigin(Property):
    """``exec-origin``: the enclave fetches an instruction from a page only if
    the page was added (ADD_PAGES) from a source mapping that was VM_EXEC at
    the time and has not been written since (by an enclave store or by
    EACCEPTCOPY) — unless the LSM granted the process ``execmod``.  A page
    added by EAUG has no source mapping, so a fetch from it violates the
    property without ``execmod``."""

    name = "exec-origin"

    def check(self, view, before, after, events):
        for ev in events:
            if ev.kind != "fetch" or not ev.ok:
                continue
            # execmod granted: fine (read only when there is a fetch: the
            # explorer's view reads each part when first asked).
            if view.execmod:
                return None
            g = before.page(ev.addr) or after.page(ev.addr)
            if g is None:
                return f"fetch from {_fmt(ev.addr)} that the checker never saw added"
            if g.origin != "build":
                return f"fetch from {_fmt(ev.addr)} added by EAUG (no source mapping)"
            if not g.source_exec:
                return f"fetch from {_fmt(ev.addr)} added from a source mapping without VM_EXEC"
            if g.written:
                return f"fetch from {_fmt(ev.addr)} written by the enclave since ADD"
        return None


class WXorX(Property):
    """``w-xor-x``: no enclave page is writable through one PTE and executable
    through the same or another PTE at the same time, unless the LSM granted
    the process ``execmem``.  With two processes the PTEs of both count (one
    W in the parent and one X in the child is a violation)."""

    name = "w-xor-x"

    def check(self, view, before, after, events):
        seen: dict[int, str] = {}
        for p in view.ptes:
            key = p.epc_offset if p.epc_offset is not None else p.offset
            if key is None:
                continue
            perms = seen.get(key, "") + p.perms
            seen[key] = perms
            if "W" in perms and "X" in perms:
                # Unless execmem is granted (read only now: see ExecOrigin).
                if view.execmem:
                    return None
                return f"{_fmt(key)} is writable and executable through PTEs at the same time"
        return None


class NoStalePte(Property):
    """``no-stale-pte``: every present PTE into the EPC maps a valid EPC page of
    the same enclave whose EPCM linear address is the PTE's address (with
    two processes, of either page table; with two enclaves, a PTE in one
    enclave's ELRANGE maps a page of that enclave)."""

    name = "no-stale-pte"

    def check(self, view, before, after, events):
        for p in view.ptes:
            if not p.epc_valid:
                return f"PTE at {p.va:#x} maps an invalid EPC page"
            if not p.epc_owned:
                return f"PTE at {p.va:#x} maps an EPC page of another enclave"
            if p.offset is None or p.epc_offset != p.offset:
                return f"PTE at {p.va:#x} maps the EPC page of enclave offset {p.epc_offset}"
        return None


class MprotectHonest(Property):
    """``mprotect-honest``: when mprotect returns 0, the whole range is covered
    by VMAs with exactly the requested protection (the VMAs of the process
    that called it)."""

    name = "mprotect-honest"

    def check(self, view, before, after, events):
        for ev in events:
            if ev.kind != "mprotect" or not ev.ok:
                continue
            start, (end, prot), who = ev.addr, ev.info[:2], ev.info[2:]
            # With two processes: the VMAs of the one that called mprotect.
            proc = 1 if who == ("child",) else 0
            at = start
            for v in sorted(view.vmas, key=lambda v: v.start):
                if v.proc != proc or v.end <= at or v.start > at:
                    continue
                if v.prot != prot:
                    return f"mprotect({start:#x}, {end:#x}, {prot}) returned 0 but VMA " \
                           f"[{v.start:#x}, {v.end:#x}) is {v.prot or '-'}"
                at = v.end
                if at >= end:
                    break
            if at < end:
                return f"mprotect({start:#x}, {end:#x}, {prot}) returned 0 but {at:#x} is not mapped"
        return None


class RunCode(Property):
    """``run-code`` (goal): the enclave has executed code from a build-time page
    and written a build-time data page."""

    name = "run-code"
    kind = "goal"

    def check(self, view, before, after, events):
        if after.ran_build_code and after.wrote_build_data:
            return "the enclave fetched from and stored to build-time pages"
        return None


class DynamicHeap(Property):
    """``dynamic-heap`` (goal): the enclave wrote a page that was not added at
    build time (an EAUG page)."""

    name = "dynamic-heap"
    kind = "goal"

    def check(self, view, before, after, events):
        for ev in events:
            if ev.kind == "store" and ev.ok:
                g = after.page(ev.addr)
                if g is not None and g.origin == "aug":
                    return f"store to EAUG {_fmt(ev.addr)}"
        return None


class DynamicCode(Property):
    """``dynamic-code`` (goal): the enclave executed a page that was not added at
    build time (an EAUG page)."""

    name = "dynamic-code"
    kind = "goal"

    def check(self, view, before, after, events):
        for ev in events:
            if ev.kind == "fetch" and ev.ok:
                g = after.page(ev.addr)
                if g is not None and g.origin == "aug":
                    return f"fetch from EAUG {_fmt(ev.addr)}"
        return None


class Restrict(Property):
    """``restrict`` (goal): after RESTRICT_PERMISSIONS of a page to read-only
    and the enclave's EACCEPT of it, an enclave store to the page faults with
    the SGX bit (PF_SGX) in the page-fault error code."""

    name = "restrict"
    kind = "goal"

    def check(self, view, before, after, events):
        for ev in events:
            if ev.kind != "store" or ev.ok or not ev.info:
                continue
            g = before.page(ev.addr)
            if g is None or not g.restrict.startswith("accepted:"):
                continue
            if "W" not in g.restrict.split(":", 1)[1] and ev.info[0] & PF_SGX:
                return f"store to restricted {_fmt(ev.addr)} faulted with error code {ev.info[0]:#x}"
        return None


PROPERTIES: dict[str, Property] = {
    p.name: p for p in (NoEscalation(), ExecOrigin(), WXorX(), NoStalePte(), MprotectHonest(),
                        RunCode(), DynamicHeap(), DynamicCode(), Restrict())
}
SAFETY = [n for n, p in PROPERTIES.items() if p.kind == "safety"]
GOALS = [n for n, p in PROPERTIES.items() if p.kind == "goal"]


def register_property(prop):
    """Decorator (or call) adding a :class:`Property` subclass or instance to
    :data:`PROPERTIES` under its ``name``, so ``sgxsim check --property NAME``
    decides it (``--property-file``, entry point group ``sgxsim.properties``)."""
    p = prop() if isinstance(prop, type) else prop
    if not isinstance(p, Property):
        raise TypeError(f"register_property takes a Property subclass or instance, not {prop!r}")
    if not p.name or not all(c.isalnum() or c in "-_" for c in p.name):
        raise ValueError(f"a property needs a name of letters, digits, '-' and '_', not {p.name!r}")
    if p.kind not in ("safety", "goal"):
        raise ValueError(f"property {p.name}: kind must be 'safety' or 'goal', not {p.kind!r}")
    old = PROPERTIES.get(p.name)
    if old is not None and type(old).__qualname__ != type(p).__qualname__:
        raise ValueError(f"a property named {p.name!r} exists already ({type(old).__name__})")
    PROPERTIES[p.name] = p
    for names, kind in ((SAFETY, "safety"), (GOALS, "goal")):
        if p.kind == kind and p.name not in names:
            names.append(p.name)
    return prop


def unregister_property(name: str) -> None:
    """Forget the property ``name`` (a file whose registrations were refused)."""
    PROPERTIES.pop(name, None)
    for names in (SAFETY, GOALS):
        if name in names:
            names.remove(name)
