"""The canonical check belongs to every linear address the CPU walks: an
ENCLU memory operand (EENTER's TCS) that is not canonical is #GP(0) before
paging, not a not-present #PF; and canonical sums wrap at 64 bits."""

from __future__ import annotations

import pytest
from tests.hw.leafkit import Kit

from sgxsim.hw.access import READ
from sgxsim.hw.faults import GeneralProtection
from sgxsim.hw.paging import canonical

NONCANONICAL = (1 << 47, 0x0000_8000_0000_1000, 0xFFFF_0000_0000_0000)


@pytest.mark.parametrize("la", NONCANONICAL)
def test_eenter_of_a_noncanonical_tcs_is_gp(la):
    k = Kit().standard()
    with pytest.raises(GeneralProtection) as ei:
        k.cpu.eenter(k.lp, la, 0x5000)
    assert "canonical" in str(ei.value)


@pytest.mark.parametrize("la", NONCANONICAL)
def test_the_walk_itself_checks_first(la):
    k = Kit().standard()
    with pytest.raises(GeneralProtection):
        k.cpu.walk(k.lp, la, READ)


def test_canonical_is_of_a_register_value():
    assert canonical(0) and canonical((1 << 47) - 1) and canonical(0xFFFF_8000_0000_0000)
    assert canonical(0xFFFF_FFFF_FFFF_F000)
    assert not canonical(1 << 47) and not canonical(0xFFFF_0000_0000_0000)
    # No 64-bit register holds these: not canonical (a sum is wrapped by
    # whoever forms it, as EENTER does for FS/GS bases and OENTRY).
    assert not canonical(-0x1000) and not canonical((1 << 64) + 0x1000)


BAD_VALUES = (-0x1000, (1 << 64) + 0x1000)


@pytest.mark.parametrize("la", BAD_VALUES)
def test_a_load_at_a_value_no_register_holds_is_gp(la):
    k = Kit().standard()
    with pytest.raises(GeneralProtection, match="canonical"):
        k.cpu.load(k.lp, la, 8)


@pytest.mark.parametrize("aep", BAD_VALUES)
def test_eenter_with_such_an_aep_is_gp_before_the_tcs_is_taken(aep):
    k = Kit().standard()
    with pytest.raises(GeneralProtection, match="AEP not canonical"):
        k.cpu.eenter(k.lp, k.base, aep)
    assert k.lp.enclave is None
    k.enter()  # the TCS is not busy: a good EENTER goes in
    assert k.lp.enclave is not None


@pytest.mark.parametrize("target", BAD_VALUES)
def test_eexit_to_such_a_target_is_gp_through_aex(target):
    k = Kit().standard()
    k.enter()
    with pytest.raises(GeneralProtection, match="target not canonical"):
        k.cpu.eexit(k.lp, target)
    # Raised in enclave mode: delivered through an AEX (enclave mode left,
    # RIP at the AEP), never a RIP no register could hold.
    assert k.lp.enclave is None and k.lp.regs["rip"] == 0x5000
