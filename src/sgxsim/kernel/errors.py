"""How the kernel says no: ``OSError(errno)`` for syscalls and ioctls,
:class:`Signal` for a fault the kernel turns into SIGSEGV/SIGBUS.

Both carry ``why``: the :class:`~sgxsim.trace.Decision` of the layer and rule
that decided, so a user can ask the model why the kernel refused.
"""

from __future__ import annotations

import errno as _errno
import os
import signal as _signal

from sgxsim.trace import Decision

# errno values the kernel uses internally and never returns to user space.
ERESTARTSYS = 512
ENOIOCTLCMD = 515

# si_code values (include/uapi/asm-generic/siginfo.h).
SI_KERNEL = 0x80  # sent by the kernel (force_sig()): no fault address
SEGV_MAPERR = 1
SEGV_ACCERR = 2
BUS_ADRALN = 1
BUS_ADRERR = 2


def errno_name(e: int) -> str:
    if e == ERESTARTSYS:
        return "ERESTARTSYS"
    if e == ENOIOCTLCMD:
        return "ENOIOCTLCMD"
    return _errno.errorcode.get(e, str(e))


class _Refusal:
    """What every refusal adds to its ``OSError`` class: ``str()`` ends with
    the layer, rule and detail that decided (``e.why``)."""

    def __str__(self) -> str:
        text = OSError.__str__(self)  # type: ignore[arg-type]
        why = getattr(self, "why", None)
        return f"{text} [{why}]" if why is not None else text


def _refusal_classes() -> dict[type, type]:
    # One subclass per class OSError(errno) picks (PermissionError for
    # EACCES, ...), named at module level so that refusals pickle.
    out = {}
    for base in {type(OSError(e, "")) for e in _errno.errorcode} | {OSError}:
        name = "Refused" + base.__name__
        cls = type(name, (_Refusal, base), {"__module__": __name__, "__qualname__": name})
        globals()[name] = out[base] = cls
    return out


_REFUSAL = _refusal_classes()
_REFUSAL_BY_ERRNO: dict[int, type] = {}  # errno -> its refusal class (a memo of _REFUSAL[...])


def refuse(err: int, layer: str, rule: str, detail: str = "") -> OSError:
    """Build the ``OSError`` a syscall raises, with its provenance.

    Usage: ``raise refuse(errno.EACCES, "sgx", "sgx_encl_may_map", "...")``.
    The exception is an instance of the class ``OSError(err)`` would be
    (``PermissionError`` for EACCES, ...); ``str()`` of it ends with
    ``[layer: rule: ERRNO: detail]``.
    """
    why = Decision(layer, rule, errno_name(err), detail)
    cls = _REFUSAL_BY_ERRNO.get(err)
    if cls is None:
        # The class OSError(err) picks depends on err alone: found once per errno.
        cls = _REFUSAL_BY_ERRNO[err] = _REFUSAL[type(OSError(err, ""))]
    exc = cls(err, os.strerror(err) if err < 512 else errno_name(err))
    exc.why = why  # type: ignore[attr-defined]
    return exc


def why_of(exc: BaseException) -> Decision | None:
    return getattr(exc, "why", None)


class Signal(Exception):
    """A synchronous signal delivered to the process (SIGSEGV, SIGBUS, ...).

    Its message is built when read (``str()``, ``args``): the vDSO reports
    most of the enclave's signals in struct sgx_enclave_run unread."""

    def __init__(self, signo: int, si_code: int, addr: int, why: Decision,
                 trapno: int = 14, error_code: int = 0):
        self.signo = signo
        self.si_code = si_code
        self.addr = addr
        self.why = why
        # What the CPU reported (si_trapno / the hardware error code); the
        # vDSO's exception fixup copies these into struct sgx_enclave_run.
        self.trapno = trapno
        self.error_code = error_code

    @property
    def args(self) -> tuple:  # type: ignore[override]
        return (str(self),)

    def __str__(self) -> str:
        signo = self.signo
        name = _signal.Signals(signo).name if signo in _signal.Signals._value2member_map_ else signo
        return f"{name} si_code={self.si_code} addr={self.addr:#x}: {self.why}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self):
        return type(self), (self.signo, self.si_code, self.addr, self.why, self.trapno, self.error_code)


class Oops(Signal):
    """The SIGKILL of make_task_dead() after a kernel oops (``Linux.oops``):
    the task dies inside the kernel.  Not a fault signal: no exception-table
    fixup (copy_from_user's EFAULT) and no vDSO fixup reports it; it reaches
    the caller as the end of the task."""


class TaskBlocked(Exception):
    """The call never returns: the task sleeps in the kernel for ever (D state,
    e.g. in mutex_lock() of a lock a dead task holds) or is stopped.

    Not an errno and not a signal: the real task would hang.  ``why`` is the
    :class:`~sgxsim.trace.Decision` naming the lock (or stop) and its holder;
    later calls of the task raise it again."""

    def __init__(self, pid: int, why: Decision):
        super().__init__(pid, why)
        self.pid = pid
        self.why = why

    def __str__(self) -> str:
        return f"pid {self.pid} blocked: {self.why}"
