"""Provenance: which layer and which rule decided.

Every refusal in the model (an errno, a signal, a CPU fault, an SGX return
code) carries a :class:`Decision`, and a :class:`Trace` owned by the
``Machine`` can record the decisions of every layer as a request flows down,
so that ``sgxsim run`` and the checker can show who said what.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision of one layer: ``layer`` is ``hw``, ``mm``, ``lsm``,
    ``sgx``, ``vdso``, ...; ``rule`` names the modelled function or SDM leaf
    (``sgx_encl_may_map``, ``SDM: EMODPR``); ``outcome`` is what it decided
    (``EACCES``, ``#PF``, ``SGX_NOT_TRACKED``, ``allow``)."""

    layer: str
    rule: str
    outcome: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.layer}: {self.rule}: {self.outcome}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True, slots=True)
class Refusal(Decision):
    """A decision that reached the caller and made its operation fail: the
    errno a syscall or ioctl returned, the signal the kernel delivered (or
    the vDSO reported in struct sgx_enclave_run), the error code an ENCLU
    leaf returned to the enclave.  A failure one layer reported and another
    handled stays a plain :class:`Decision`: an ENCLS code the driver
    retried (EWB's SGX_NOT_TRACKED, EINIT's SGX_UNMASKED_EVENT), a fault
    handler's EBUSY before the retried access, a fault copy_from_user()
    turned into EFAULT."""


def failure_outcome(outcome: str) -> bool:
    """Whether ``outcome`` reads as a failure (an errno, a signal, a CPU
    exception, an SGX error code), whoever handled it; whether it refused
    an operation is :class:`Refusal`'s."""
    return outcome.isupper() and (outcome.startswith(("E", "SIG", "#"))
                                  or (outcome.startswith("SGX_") and outcome != "SGX_SUCCESS"))


@dataclass(slots=True)
class Trace:
    """An append-only log of decisions; disabled by default so that hot
    paths pay one attribute test."""

    enabled: bool = False
    records: list[Decision] = field(default_factory=list)

    def note(self, layer: str, rule: str, outcome: str, detail: str = "") -> Decision:
        d = Decision(layer, rule, outcome, detail)
        if self.enabled:
            self.records.append(d)
        return d

    def refuse_note(self, layer: str, rule: str, outcome: str, detail: str = "") -> None:
        """A refusal made and seen at once: an ENCLU leaf's error code,
        returned to the enclave that ran the leaf."""
        if self.enabled:
            self.records.append(Refusal(layer, rule, outcome, detail))

    def add(self, decision: Decision) -> None:
        if self.enabled:
            self.records.append(decision)

    def refuse(self, decision: Decision) -> None:
        """``decision`` reached the caller (see :class:`Refusal`): it is
        recorded as a refusal, in the place of the same decision noted on
        the way (a fault's signal, before the vDSO reported it), or last."""
        if not self.enabled:
            return
        r = Refusal(decision.layer, decision.rule, decision.outcome, decision.detail)
        recs = self.records
        for i in range(len(recs) - 1, -1, -1):
            d = recs[i]
            if (d.layer, d.rule, d.outcome, d.detail) == (r.layer, r.rule, r.outcome, r.detail):
                recs[i] = r
                return
        recs.append(r)

    def take(self) -> list[Decision]:
        out = self.records
        if not out:
            return []  # the empty log stays (a machine snapshot sees it unchanged)
        self.records = []
        return out
