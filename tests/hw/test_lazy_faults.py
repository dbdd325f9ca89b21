"""A fault's (and a signal's) message is built when read: what ``why``,
``str()``, ``repr()`` and ``args`` show is what the eager construction
showed, in every form ``why`` is given, and faults and signals pickle."""

from __future__ import annotations

import pickle
import signal

import pytest

from sgxsim.hw.faults import CpuException, GeneralProtection, HwFault, InvalidOpcode, PageFault
from sgxsim.kernel.errors import SI_KERNEL, Signal
from sgxsim.trace import Decision


def _eager(fault: HwFault, why: Decision) -> None:
    """What the fault showed when its __init__ built the message."""
    assert fault.why == why
    assert str(fault) == str(why)
    assert fault.args == (str(why),)
    assert repr(fault) == f"{type(fault).__name__}({str(why)!r})"
    again = pickle.loads(pickle.dumps(fault))
    assert type(again) is type(fault) and again.why == why and str(again) == str(why)
    assert {k: getattr(again, k) for k in ("vector", "mnemonic")} == \
        {k: getattr(fault, k) for k in ("vector", "mnemonic")}


@pytest.mark.parametrize("make, why", [
    (lambda: PageFault(0x7000_1234, 0x8007, ("SDM: EPCM access check", "EPCM denies write")),
     Decision("hw", "SDM: EPCM access check", "#PF(0x70001234, 0x8007)", "EPCM denies write")),
    (lambda: PageFault(0x1000, 6, "plain"), Decision("hw", "cpu", "#PF(0x1000, 0x6)", "plain")),
    (lambda: PageFault(0x1000, 6), Decision("hw", "cpu", "#PF(0x1000, 0x6)", "")),
    (lambda: PageFault(0x1000, 6, Decision("hw", "x", "y", "z")), Decision("hw", "x", "y", "z")),
    (lambda: GeneralProtection(("SDM: EENTER", "TCS busy")),
     Decision("hw", "SDM: EENTER", "#GP(0)", "TCS busy")),
    (lambda: GeneralProtection("WRMSR"), Decision("hw", "cpu", "#GP(0)", "WRMSR")),
    (lambda: InvalidOpcode(Decision("hw", "decode", "#UD", "no instruction")),
     Decision("hw", "decode", "#UD", "no instruction")),
    (lambda: CpuException(3, "int3"), Decision("hw", "cpu", "#BP", "int3")),
    (lambda: CpuException(99, ("emulator", "odd")), Decision("hw", "emulator", "#99", "odd")),
    # The #PF an AEX reports: the address cleared below the page, the decision the same.
    (lambda: PageFault(0x7000_1000, 0x8007, PageFault(0x7000_1234, 0x8007, ("r", "d"))),
     Decision("hw", "r", "#PF(0x70001234, 0x8007)", "d")),
])
def test_lazy_message_is_the_eager_one(make, why):
    _eager(make(), why)
    fault = make()
    with pytest.raises(type(fault), match=r"^hw: "):
        raise fault
    pickled = pickle.loads(pickle.dumps(make()))  # before anyone read the message
    assert str(pickled) == str(why)


def test_pagefault_fields_and_why_set():
    pf = PageFault(0x2000, 0x8005, ("SDM: EPCM access check", "EPCM.PENDING=1"))
    assert (pf.addr, pf.error_code, pf.vector, pf.sgx) == (0x2000, 0x8005, 14, True)
    pf.why = Decision("hw", "other", "#PF", "set")
    assert str(pf) == "hw: other: #PF: set"


def test_signal_message_is_the_eager_one():
    why = Decision("mm", "access_error", "SIGSEGV", "SGX-induced #PF: the EPCM denied the access")
    sig = Signal(signal.SIGSEGV, 2, 0x7000_0000, why, trapno=14, error_code=0x8005)
    text = f"SIGSEGV si_code=2 addr=0x70000000: {why}"
    assert str(sig) == text and sig.args == (text,) and repr(sig) == f"Signal({text!r})"
    again = pickle.loads(pickle.dumps(sig))
    assert (again.signo, again.si_code, again.addr, again.why, again.trapno, again.error_code) == \
        (sig.signo, sig.si_code, sig.addr, sig.why, sig.trapno, sig.error_code)
    odd = Signal(200, SI_KERNEL, 0, why)
    assert str(odd).startswith("200 si_code=128 addr=0x0: ")
