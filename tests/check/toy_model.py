"""A deliberately tiny stand-in model used ONLY to test the explorer, the
scenario files and the CLI plumbing (the real designs run the real Machine).

Two enclave pages; per page: the VMA protection, the SECINFO it was added with,
its EPCM permissions and whether a PTE is present.  ``checked`` says whether
mprotect is limited by the SECINFO (as ``sgx_encl_may_map``) or not (as
``no-hook``).
"""

from __future__ import annotations

from sgxsim.check.model import Action, Event, Step
from sgxsim.check.properties import PteView, View, VmaView
from sgxsim.hw.faults import PF_PROT, PF_SGX, PF_USER, PF_WRITE
from sgxsim.trace import Decision

PAGE = 4096
BASE = 0x10000


class ToyModel:
    def __init__(self, design: str = "toy-no-hook", checked: bool = False, pages: int = 2):
        self.design, self.checked, self.pages = design, checked, pages

    def scope(self):
        # What a scenario file may record (docs/scenarios.md).
        return {"pages": self.pages}

    def initial(self):
        # per page: [vma_prot or None, secinfo or None, epcm or None, pte_present]
        return tuple((None, None, None, False) for _ in range(self.pages))

    def actions(self, state):
        out = []
        for i in range(self.pages):
            if state[i][1] is None:
                out.append(Action.make("add_pages", offset=i * PAGE, source="image", type="REG", perms="R"))
                out.append(Action.make("add_pages", offset=i * PAGE, source="image", type="REG", perms="RX"))
                out.append(Action.make("add_pages", offset=i * PAGE, source="anon", type="REG", perms="RW"))
            for prot in ("R", "RW", "RX", "RWX"):
                out.append(Action.make("mprotect", offset=i * PAGE, length=PAGE, prot=prot))
            out.append(Action.make("fetch", offset=i * PAGE))
            out.append(Action.make("store", offset=i * PAGE))
        return out

    def fingerprint(self, state):
        return state

    def step(self, state, action, trace=False):
        pages = list(state)
        dec: list[Decision] = []
        events = []
        off = action.arg("offset")
        i = off // PAGE
        vma, sec, epcm, pte = pages[i]
        if action.name == "add_pages":
            perms = action.arg("perms")
            pages[i] = ("R" if vma is None else vma, perms, perms, False)
            events.append(Event("add", off, True, ("REG", perms, action.arg("source") == "image")))
            dec.append(Decision("sgx", "sgx_encl_add_page", "allow"))
        elif action.name == "mprotect":
            prot = action.arg("prot")
            if self.checked and sec is not None and any(c not in sec for c in prot):
                dec.append(Decision("sgx", "sgx_encl_may_map", "EACCES"))
                events.append(Event("mprotect", BASE + off, False, (BASE + off + PAGE, prot)))
            else:
                pages[i] = (prot, sec, epcm, False)
                dec.append(Decision("mm", "mprotect_fixup", "allow"))
                events.append(Event("mprotect", BASE + off, True, (BASE + off + PAGE, prot)))
        else:
            need = "X" if action.name == "fetch" else "W"
            if sec is None or vma is None or need not in vma:
                events.append(Event(action.name, off, False, (PF_USER | (PF_WRITE if need == "W" else 0),)))
                dec.append(Decision("hw", "paging", "#PF"))
            elif self.checked and any(c not in sec for c in vma):
                # the fault path refuses a VMA beyond the page's maximum (SIGBUS)
                events.append(Event(action.name, off, False))
                dec.append(Decision("sgx", "sgx_vma_fault", "SIGBUS"))
            elif need not in epcm:
                code = PF_SGX | PF_PROT | PF_USER | (PF_WRITE if need == "W" else 0)
                events.append(Event(action.name, off, False, (code,)))
                dec.append(Decision("hw", "EPCM", "#PF"))
            else:
                pages[i] = (vma, sec, epcm, True)
                events.append(Event(action.name, off, True))
                dec.append(Decision("hw", "access", "allow"))
        new = tuple(pages)
        ptes = tuple(PteView(BASE + j * PAGE, j * PAGE, p[0], True, True, j * PAGE)
                     for j, p in enumerate(new) if p[3])
        vmas = tuple(VmaView(BASE + j * PAGE, BASE + (j + 1) * PAGE, p[0])
                     for j, p in enumerate(new) if p[0] is not None)
        return Step(new, tuple(events), View(ptes, vmas), dec if trace else [])
