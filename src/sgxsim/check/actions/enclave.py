"""Entering the enclave (after INIT): one operation of the checker's runtime
(check/runtime.py) through the vDSO — EENTER, one access or ENCLU leaf,
EEXIT; a fault the kernel does not fix is skipped by the runtime's handler.
``load``/``store``/``fetch`` of a page; on SGX2 ``eaccept``,
``eacceptcopy`` and ``emodpe``.  Also the ghost update of ``aug``: a page
the kernel EAUGed on the fault of one of these accesses."""

from __future__ import annotations

from sgxsim.check import runtime
from sgxsim.check.actions.abi import EAUG_SECINFO, SCRATCH, SI_PERMS
from sgxsim.check.actions.base import OFFSET, CheckerAction
from sgxsim.check.ghost import PageGhost
from sgxsim.check.model import Action, Event
from sgxsim.check.scope import PERMS
from sgxsim.hw.consts import PageType, secinfo_flags


class EnclaveOp(CheckerAction):
    """One runtime operation on one explored page, from any process."""

    keys = {"offset": OFFSET}
    per_process = True
    sgx2_only = False

    def offers(self, scope, ctx):
        if not ctx.initialized or (self.sgx2_only and not ctx.sgx2):
            return []
        return [Action.make(self.name, offset=o, **kw) for o in scope.offsets() for kw in self.choices(ctx)]

    def choices(self, ctx) -> list[dict]:
        """The arguments besides ``offset`` of the steps offered in ``ctx``."""
        return [{}]

    def enter(self, model, st, a, ev, *, flags=0, src=0, info=()) -> Event:
        """The operation through the vDSO; the event records whether it
        completed, or the #PF error code the vDSO reported."""
        h = model.handle(st, a)
        off = a.arg("offset")
        out = runtime.run(model.process(st, a), st.library, h.base + model.rt, self.name, h.base + off,
                          flags=flags, src=src, scratch=SCRATCH)
        at = model.ghost_offset(h, off)
        if not out.exited:
            e = Event(self.name, at, False, (out.error_code,) if out.vector == runtime.VEC_PF else ())
        else:
            e = Event(self.name, at, out.result == 0, info if out.result == 0 else ())
        ev.append(e)
        return e

    def run(self, model, st, a, ev):
        self.enter(model, st, a, ev)


class Load(EnclaveOp):
    name = "load"


class Store(EnclaveOp):
    name = "store"

    def update(self, edit, ev):
        g = edit.pages.get(ev.addr)
        if g is not None:
            edit.pages[ev.addr] = g._replace(written=True)
            if g.origin == "build":
                edit.wrote_build_data = True


class Fetch(EnclaveOp):
    name = "fetch"

    def update(self, edit, ev):
        g = edit.pages.get(ev.addr)
        if g is not None and g.origin == "build":
            edit.ran_build_code = True


class Eaccept(EnclaveOp):
    """EACCEPT of what the program asked the kernel for (the handle's
    ``expect``), or of a page it expects to be EAUGed: REG RW PENDING."""

    name = "eaccept"
    sgx2_only = True

    def run(self, model, st, a, ev):
        h = model.handle(st, a)
        off = a.arg("offset")
        if self.enter(model, st, a, ev, flags=h.expect.get(off, EAUG_SECINFO)).ok:
            h.expect.pop(off, None)

    def update(self, edit, ev):
        g = edit.pages.get(ev.addr)
        if g is not None and g.restrict.startswith("pending:"):
            edit.pages[ev.addr] = g._replace(restrict="accepted:" + g.restrict.split(":", 1)[1])


class EacceptCopy(EnclaveOp):
    """EACCEPTCOPY (REG RWX) from the explored page ``src``: the search
    offers every page the program added at build time (so no page is
    special), and while there is none, no ``src``: the runtime's SECINFO
    page."""

    name = "eacceptcopy"
    keys = {"offset": OFFSET, "src": OFFSET}
    # Without src (no page added at build time, or a scenario written before
    # src): the first build-time explored page, else the SECINFO page.
    optional_keys = frozenset({"src"})
    sgx2_only = True

    def choices(self, ctx):
        # Every build-time page (one removed after INIT stays a source: the
        # handle keeps it); while there is none, no src.
        return [{"src": s} for s in sorted(ctx.added)] or [{}]

    def run(self, model, st, a, ev):
        h = model.handle(st, a)
        off = a.arg("src")
        if off is None:
            off = min(h.added) if h.added else model.layout.page(runtime.DATA)
        src = h.base + off
        self.enter(model, st, a, ev, flags=secinfo_flags(PageType.PT_REG, SI_PERMS["RWX"]), src=src)

    def update(self, edit, ev):
        g = edit.pages.get(ev.addr)
        if g is not None:
            edit.pages[ev.addr] = g._replace(written=True)


class Emodpe(EnclaveOp):
    """EMODPE of one page to RX or RWX."""

    name = "emodpe"
    keys = {"offset": OFFSET, "perms": PERMS}
    sgx2_only = True

    def choices(self, ctx):
        return [{"perms": p} for p in ("RX", "RWX")]

    def run(self, model, st, a, ev):
        perms = a.arg("perms")
        self.enter(model, st, a, ev, flags=secinfo_flags(PageType.PT_REG, SI_PERMS[perms]), info=(perms,))

    def update(self, edit, ev):
        g = edit.pages.get(ev.addr)
        if g is not None:
            edit.pages[ev.addr] = g._replace(restrict="")


def update_aug(edit, ev: Event) -> None:
    """``aug``: the driver EAUGed the page on an access's fault (SGX2): its
    history starts with no SECINFO and no source."""
    edit.pages[ev.addr] = PageGhost("aug", "", "REG", False)
