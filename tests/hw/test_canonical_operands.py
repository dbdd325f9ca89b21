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


def test_canonical_is_of_the_64_bit_value():
    assert canonical(0) and canonical((1 << 47) - 1) and canonical(0xFFFF_8000_0000_0000)
    assert not canonical(1 << 47) and not canonical(0xFFFF_0000_0000_0000)
    # A base plus an offset that carries out of bit 63 is the wrapped address.
    assert canonical(0xFFFF_FFFF_FFFF_F000 + 0x2000)
    assert not canonical(0x7FFF_FFFF_F000 + 0x2000)
