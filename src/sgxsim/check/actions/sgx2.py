"""The SGX2 ioctls after INIT (SGX2 kernels): RESTRICT_PERMISSIONS,
MODIFY_TYPES and REMOVE_PAGES of one explored page.  The driver refuses
them before INIT and on SGX1 kernels without changing state, so they are
not offered there."""

from __future__ import annotations

import struct

from sgxsim.check.actions.abi import PAGE, SI_PERMS, TYPES
from sgxsim.check.actions.base import OFFSET, CheckerAction, errno_of
from sgxsim.check.model import Action, Event
from sgxsim.check.scope import PERMS
from sgxsim.hw import uapi
from sgxsim.hw.consts import PageType, SecinfoFlags, secinfo_flags


def sgx2_ioctl(model, st, a, cmd, *fields) -> int:
    """One SGX2 ioctl of step ``a``, issued by its process (the parent,
    or either with --child-ioctls)."""
    h = model.handle(st, a)
    arg = bytearray(struct.pack(f"<{len(fields)}Q", *fields))
    return errno_of(st, model.process(st, a).ioctl, h.fd, cmd, arg)


class Sgx2Ioctl(CheckerAction):
    ioctl = True

    def offers(self, scope, ctx):
        if not (ctx.initialized and ctx.sgx2):
            return []
        return [Action.make(self.name, offset=o, **kw) for o in scope.offsets() for kw in self.choices()]

    def choices(self) -> list[dict]:
        return [{}]


class Restrict(Sgx2Ioctl):
    """RESTRICT_PERMISSIONS of one page to R or RW; the enclave is then
    expected to EACCEPT that restriction (the handle's ``expect``)."""

    name = "restrict"
    keys = {"offset": OFFSET, "perms": PERMS}

    def choices(self):
        return [{"perms": p} for p in ("R", "RW")]

    def run(self, model, st, a, ev):
        off, perms = a.arg("offset"), a.arg("perms")
        e = sgx2_ioctl(model, st, a, uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, off, PAGE,
                       int(SI_PERMS[perms]), 0, 0)
        h = model.handle(st, a)
        if e == 0:
            h.expect[off] = secinfo_flags(PageType.PT_REG, SI_PERMS[perms], SecinfoFlags.PR)
        ev.append(Event("restrict", model.ghost_offset(h, off), e == 0, (perms,)))

    def update(self, edit, ev):
        g = edit.pages.get(ev.addr)
        if g is not None:
            edit.pages[ev.addr] = g._replace(restrict=f"pending:{ev.info[0]}")


class ModType(Sgx2Ioctl):
    """MODIFY_TYPES of one page to TCS or TRIM (expected EACCEPT: the new
    type, MODIFIED)."""

    name = "modtype"
    keys = {"offset": OFFSET, "type": ("TCS", "TRIM", "REG")}

    def choices(self):
        return [{"type": t} for t in ("TCS", "TRIM")]

    def run(self, model, st, a, ev):
        off, typ = a.arg("offset"), a.arg("type")
        e = sgx2_ioctl(model, st, a, uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, off, PAGE, int(TYPES[typ]), 0, 0)
        h = model.handle(st, a)
        if e == 0:
            h.expect[off] = secinfo_flags(TYPES[typ], 0, SecinfoFlags.MODIFIED)
        ev.append(Event("modtype", model.ghost_offset(h, off), e == 0, (typ,)))

    def update(self, edit, ev):
        g = edit.pages.get(ev.addr)
        if g is not None:
            edit.pages[ev.addr] = g._replace(sectype=ev.info[0], restrict="")


class Remove(Sgx2Ioctl):
    """REMOVE_PAGES of one page (a trimmed, accepted page)."""

    name = "remove"
    keys = {"offset": OFFSET}

    def run(self, model, st, a, ev):
        off = a.arg("offset")
        e = sgx2_ioctl(model, st, a, uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, off, PAGE, 0)
        h = model.handle(st, a)
        if e == 0:
            h.expect.pop(off, None)
        ev.append(Event("remove", model.ghost_offset(h, off), e == 0))

    def update(self, edit, ev):
        edit.pages.pop(ev.addr, None)
