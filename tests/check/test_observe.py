"""The View and the canonical keys read off the real CPU model (built with the
hw tests' Kit, the way a kernel drives the CPU)."""

from __future__ import annotations

from tests.hw.leafkit import RW, RX, Kit

from sgxsim.check.ghost import Ghost, PageGhost
from sgxsim.check.observe import epc_key, pt_key, pte_views
from sgxsim.check.properties import PROPERTIES, View
from sgxsim.hw.paging import PTE_NX


def built(skip_epc: int = 0, frames: int = 0) -> Kit:
    k = Kit()
    k.next_epc += skip_epc  # another allocation history
    for _ in range(frames):
        k.frame()
    k.ecreate()
    k.eadd(0, 0x200 | RX)
    k.eadd(0x1000, 0x200 | RW)
    k.map_ram(0x1000_0000)
    return k


def key(k: Kit):
    return epc_key(k.cpu.epc, k.secs_i, k.base), pt_key(k.pt, k.cpu.epc, k.base)


def test_fingerprint_ignores_which_epc_page_and_frame_were_used():
    assert key(built()) == key(built(skip_epc=3, frames=5))


def test_fingerprint_sees_permissions_contents_and_ptes():
    a, b = built(), built()
    b.cpu.epc.page(2)[0] = 1  # EPC page 2 holds enclave offset 0x1000
    assert key(a) != key(b)
    c = built()
    c.pt.clear((c.base + 0x1000) >> 12)
    assert key(a) != key(c)


def test_view_of_real_ptes_breaks_no_escalation_and_w_xor_x():
    k = built()  # the Kit maps every added page RWX
    v = pte_views(k.pt, k.cpu.epc, k.secs_i, k.base, k.size)
    assert [(p.offset, p.perms, p.epc_valid, p.epc_owned, p.epc_offset) for p in v] == \
        [(0, "RWX", True, True, 0), (0x1000, "RWX", True, True, 0x1000)]
    g = Ghost({0: PageGhost("build", "RX", "REG", True), 0x1000: PageGhost("build", "RW", "REG", False)})
    view = View(v)
    assert "extra W" in PROPERTIES["no-escalation"].check(view, g, g, ())
    assert PROPERTIES["w-xor-x"].check(view, g, g, ()) is not None
    assert PROPERTIES["no-stale-pte"].check(view, g, g, ()) is None


def test_view_within_secinfo_and_stale_pte_after_eremove():
    k = built()
    k.map(k.base, 1, rw=False, x=True)
    k.map(k.base + 0x1000, 2, rw=True, x=False)
    v = pte_views(k.pt, k.cpu.epc, k.secs_i, k.base, k.size)
    assert [p.perms for p in v] == ["RX", "RW"] and k.pt.get((k.base + 0x1000) >> 12) & PTE_NX
    g = Ghost({0: PageGhost("build", "RX", "REG", True), 0x1000: PageGhost("build", "RW", "REG", False)})
    assert PROPERTIES["no-escalation"].check(View(v), g, g, ()) is None
    assert k.cpu.eremove(k.cpu.epc.paddr(2)) == 0
    v = pte_views(k.pt, k.cpu.epc, k.secs_i, k.base, k.size)
    assert "invalid" in PROPERTIES["no-stale-pte"].check(View(v), g, g, ())


def test_memoised_views_are_the_constructors_values_and_cannot_change():
    """pte_view/vma_view share equal view objects: sound only because a view
    is a frozen value (nothing can change a shared one under another state)."""
    import dataclasses

    import pytest

    from sgxsim.check.observe import pte_view, vma_view
    from sgxsim.check.properties import PteView, VmaView

    a, b = vma_view(0x1000, 0x3000, "RW"), vma_view(0x1000, 0x3000, "RW")
    assert a is b and a == VmaView(0x1000, 0x3000, "RW")
    assert vma_view(0x1000, 0x3000, "R") == VmaView(0x1000, 0x3000, "R") != a
    p = pte_view(0x1000, 0, "RX", True, True, 0)
    assert p == PteView(0x1000, 0, "RX", True, True, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.prot = "RWX"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.perms = "RWX"  # type: ignore[misc]


def test_pte_views_perms_for_every_rw_nx_combination():
    from sgxsim.check.observe import pte_perms
    from sgxsim.hw.paging import PTE_PRESENT, PTE_RW

    assert [pte_perms(PTE_PRESENT | rw | nx) for rw in (0, PTE_RW) for nx in (0, PTE_NX)] == \
        ["RX", "R", "RWX", "RW"]


def test_page_key_tells_every_page_apart():
    from sgxsim.check.observe import page_key

    zero = bytearray(4096)
    tcs = bytearray(4096)
    tcs[16:20] = (1).to_bytes(4, "little")  # CSSA 1
    late = bytearray(4096)
    late[4095] = 1  # differs only past the kept head
    keys = [page_key(p) for p in (zero, tcs, late, bytes(late))]
    assert keys[0] != keys[1] != keys[2] and keys[0] != keys[2]
    assert keys[2] == keys[3]  # bytes or bytearray alike
    assert page_key(tcs) == bytes(tcs[:128])  # kept exactly, not hashed
    assert len(page_key(late)) == 8  # hashed: another length than a kept head
