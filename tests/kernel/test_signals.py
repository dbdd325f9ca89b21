"""Process.kill(): kill(2)'s checks (ESRCH for a process that is gone, EINVAL
for an invalid signal, signal 0 sends nothing), dispositions (sigaction), and
delivery on the way back to user space: a pending signal interrupts the
driver's loops once (EINTR), then is delivered -- a handler runs, an ignored
one is dropped, a default action terminates or stops the process."""

from __future__ import annotations

import errno
import signal
import struct

import pytest

import sgxsim
from sgxsim.hw import uapi
from sgxsim.hw.consts import Attribute, PageType, SecinfoFlags, secinfo_flags
from sgxsim.hw.structs import Secinfo, Secs
from sgxsim.kernel.errors import Signal, TaskBlocked

BASE, BUF = 0x7F0000000000, 0x10000000


def _enclave(size=4 * 4096):
    m = sgxsim.Machine(kernel="linux-6.0", epc_pages=64)
    p = m.spawn()
    fd = p.open("/dev/sgx_enclave", sgxsim.O_RDWR)
    p.mmap(BUF, 3 * 4096, sgxsim.PROT_READ | sgxsim.PROT_WRITE,
           sgxsim.MAP_PRIVATE | sgxsim.MAP_ANONYMOUS | sgxsim.MAP_FIXED)
    p.poke(BUF, Secs(size=size, base=BASE, ssa_frame_size=1, attributes=Attribute.MODE64BIT,
                     xfrm=3).pack())
    p.ioctl(fd, uapi.SGX_IOC_ENCLAVE_CREATE, bytearray(struct.pack("<Q", BUF)))
    p.poke(BUF + 4096, Secinfo(flags=secinfo_flags(PageType.PT_REG,
                                                   SecinfoFlags.R | SecinfoFlags.W)).pack())
    return m, p, fd


def _add(p, fd, offset):
    a = uapi.SgxEnclaveAddPages(src=BUF + 8192, offset=offset, length=4096, secinfo=BUF + 4096)
    b = bytearray(a.pack())
    try:
        p.ioctl(fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, b)
        err = 0
    except OSError as e:
        err = e.errno
    return err, uapi.SgxEnclaveAddPages.unpack(b).count


def test_a_caught_signal_interrupts_one_call_and_is_delivered():
    """/tmp/audit6/repro11: the signal used to stay pending for ever, every
    later ADD_PAGES failing with EINTR."""
    m, p, fd = _enclave()
    caught = []
    assert p.sigaction(signal.SIGUSR1, caught.append) is signal.SIG_DFL
    p.kill(signal.SIGUSR1)
    assert _add(p, fd, 0) == (errno.EINTR, 0)  # seen by the loop, then delivered
    assert caught == [signal.SIGUSR1] and not p.pending_signals
    assert _add(p, fd, 0) == (0, 4096)
    assert _add(p, fd, 4096) == (0, 4096)
    assert caught == [signal.SIGUSR1]


def test_a_default_fatal_signal_ends_the_process_on_its_way_back():
    m, p, fd = _enclave()
    p.kill(signal.SIGUSR1)  # SIG_DFL: terminate
    with pytest.raises(Signal) as ei:
        _add(p, fd, 0)
    assert ei.value.signo == signal.SIGUSR1 and ei.value.why.rule == "get_signal"
    assert not p.alive and p not in m.kernel.tasks
    assert not m.kernel.sgx.encls  # its files were closed: the enclave is released
    with pytest.raises(OSError) as e2:
        p.kill(signal.SIGTERM)  # gone: ESRCH, before the signal is looked at
    assert e2.value.errno == errno.ESRCH
    with pytest.raises(OSError) as e3:
        p.kill(12345)
    assert e3.value.errno == errno.ESRCH


@pytest.mark.parametrize("sig", [signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG, signal.SIGCONT])
def test_a_signal_whose_default_is_ignore_is_never_pending(sig):
    m, p, fd = _enclave()
    p.kill(sig)
    assert not p.pending_signals
    assert _add(p, fd, 0) == (0, 4096)


def test_an_ignored_signal_is_dropped_and_so_is_a_pending_one_on_sig_ign():
    m, p, fd = _enclave()
    p.sigaction(signal.SIGTERM, signal.SIG_IGN)
    p.kill(signal.SIGTERM)
    assert not p.pending_signals and _add(p, fd, 0) == (0, 4096)
    p.sigaction(signal.SIGTERM, signal.SIG_DFL)
    p.kill(signal.SIGTERM)
    assert p.pending_signals == {signal.SIGTERM}
    assert p.sigaction(signal.SIGTERM, signal.SIG_IGN) is signal.SIG_DFL  # do_sigaction() discards it
    assert not p.pending_signals and p.alive


@pytest.mark.parametrize("sig, err", [(0, None), (-1, errno.EINVAL), (65, errno.EINVAL),
                                      (12345, errno.EINVAL), (64, None)])
def test_kill_checks_the_signal_number(sig, err):
    m, p, fd = _enclave()
    if sig == 64:
        p.sigaction(64, lambda s: None)  # SIGRTMAX caught: pending until delivered
    if err is None:
        p.kill(sig)
    else:
        with pytest.raises(OSError) as ei:
            p.kill(sig)
        assert ei.value.errno == err and ei.value.why.rule == "check_kill_permission"
    assert p.pending_signals == ({64} if sig == 64 else set())
    assert _add(p, fd, 0) == ((errno.EINTR, 0) if sig == 64 else (0, 4096))


def test_kill_reads_sig_as_a_c_int():
    # kill(pid_t, int sig): the register's low 32 bits, signed (2**32 is
    # signal 0, 2**32 - 1 is -1: EINVAL); what no register holds is a TypeError.
    m, p, fd = _enclave()
    p.kill(1 << 32)
    assert not p.pending_signals and p.alive
    with pytest.raises(OSError) as ei:
        p.kill((1 << 32) - 1)
    assert ei.value.errno == errno.EINVAL and "signal -1 " in str(ei.value)
    with pytest.raises(TypeError, match="'sig'"):
        p.kill("9")
    assert p.alive and not p.pending_signals


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP, 0, 65])
def test_sigaction_refuses_what_cannot_be_caught(sig):
    m, p, fd = _enclave()
    with pytest.raises(OSError) as ei:
        p.sigaction(sig, signal.SIG_IGN)
    assert ei.value.errno == errno.EINVAL


def test_a_stop_signal_stops_until_sigcont_and_sigkill_ends_a_stopped_task():
    m, p, fd = _enclave()
    p.kill(signal.SIGTSTP)
    assert _add(p, fd, 0) == (errno.EINTR, 0)  # interrupted, then stopped
    with pytest.raises(TaskBlocked) as ei:
        _add(p, fd, 0)
    assert ei.value.why.rule == "do_signal_stop"
    p.kill(signal.SIGCONT)
    assert p.alive and _add(p, fd, 0) == (0, 4096)
    p.kill(signal.SIGSTOP)
    assert _add(p, fd, 4096) == (errno.EINTR, 0)
    p.kill(signal.SIGKILL)
    assert p not in m.kernel.tasks and not m.kernel.sgx.encls


def test_fork_inherits_handlers_not_pending_signals():
    m, p, fd = _enclave()
    caught = []
    p.sigaction(signal.SIGUSR2, caught.append)
    p.kill(signal.SIGUSR2)
    c = p.fork()
    assert not c.pending_signals and c.sighand == {signal.SIGUSR2: caught.append}
