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

    def add(self, decision: Decision) -> None:
        if self.enabled:
            self.records.append(decision)

    def take(self) -> list[Decision]:
        out = self.records
        if not out:
            return []  # the empty log stays (a machine snapshot sees it unchanged)
        self.records = []
        return out
