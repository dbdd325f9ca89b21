"""After linux-6.0's oops in sgx_encl_eaug_page() (a NULL SECS, fixed in 6.5)
the state is what the real kernel is left with: the task that oopsed never
returns to user space and never finishes exiting (do_exit() -> exit_mmap()
waits for the mmap_lock its own oopsed fault read-holds), the enclave's
mutex stays held by the dead task, so every later path that takes it sleeps
for ever (TaskBlocked), and nothing reaches the half-added page (no EPC page,
no VA slot) -- which used to end in a bare AssertionError in ELDU."""

from __future__ import annotations

import errno
import signal

import pytest

from sgxsim.fuzz import make_case, run_case
from sgxsim.fuzz.repro import Machine, TaskBlocked, build_enclave, check_after_exit, check_machine
from sgxsim.hw import uapi
from sgxsim.kernel.errors import Oops
from sgxsim.kernel.linux import Linux

PROT_READ, PROT_WRITE = 1, 2
MAP_SHARED, MAP_FIXED = 0x01, 0x10
HOLE = 0x7FFFAFFEA000  # in the first enclave's ELRANGE, no page there


def _oops(children: int = 0, hole_mapped: bool = False):
    """The docs/fuzzing.md scenario: the first enclave's SECS is written out,
    then a fault makes 6.0 EAUG a page; ``children`` forked before it."""
    m = Machine(kernel="linux-6.0", epc_pages=16)
    boot = set(m.cpu.phys.frames)
    p = m.spawn()
    p.mmap(0x10000000, 0x8000, 0x3, 0x32, -1, 0)
    fd, base = build_enclave(p, 0x10000000, 1)
    p.mremap(0x7FFFAFFE3000, 0x25AE, 0x1000, 0x3, 0x10000)  # moves one enclave page to 0x10000
    build_enclave(p, 0x10000000, 4)
    if hole_mapped:
        p.mmap(HOLE, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0)
    kids = [p.fork() for _ in range(children)]
    with pytest.raises(Oops) as ei:
        p.fetch(0x10000)
    assert ei.value.signo == signal.SIGKILL
    encl = next(e for e in m.kernel.sgx.encls if e.base == base)
    return m, boot, p, kids, fd, encl


def test_the_oopsed_task_never_runs_again_and_is_never_reaped():
    m, boot, p, _, _, encl = _oops()
    k = m.kernel
    assert "NULL pointer dereference in sgx_encl_eaug_page" in k.oopses[0]
    assert not p.alive and p.blocked.rule == "exit_mmap"
    assert p in k.tasks  # D state in do_exit(): not reaped
    assert p.maps() and p.files  # exit_mmap() stopped before the VMAs, exit_files() never ran
    # exit_mmap() ran the mmu notifiers: the enclave no longer lists the mm.
    assert all(em.mm is not p.mm for em in encl.mm_list)
    assert encl.lock_held_by is not None and f"pid {p.pid}" in encl.lock_held_by
    # It makes no call any more: every one says why, none reaches the half-added page.
    for call in (lambda: p.mmap(0, 4096, 3, 0x22), lambda: p.fetch(0x10000),
                 lambda: p.peek(0x10000000, 8), p.exit):
        with pytest.raises(TaskBlocked) as ei:
            call()
        assert ei.value.why.rule == "exit_mmap"
    assert check_machine(m) == []
    assert check_after_exit(m, boot) == []


def test_an_oops_in_copy_from_user_kills_the_task_it_is_no_efault():
    """The same oops in the fault copy_from_user() takes (the ioctl's argument
    lies in the enclave): the task dies; no exception-table fixup turns the
    oops into EFAULT."""
    m = Machine(kernel="linux-6.0", epc_pages=16)
    p = m.spawn()
    p.mmap(0x10000000, 0x8000, 0x3, 0x32, -1, 0)
    build_enclave(p, 0x10000000, 1)
    p.mremap(0x7FFFAFFE3000, 0x25AE, 0x1000, 0x3, 0x10000)  # moves one enclave page to 0x10000
    build_enclave(p, 0x10000000, 4)
    fd = p.open("/dev/sgx_enclave", 2)
    with pytest.raises(Oops):
        p.ioctl(fd, uapi.SGX_IOC_ENCLAVE_CREATE, 0x10000)
    assert m.kernel.oopses and p.blocked.rule == "exit_mmap"


def _restrict(c, fd, encl):
    arg = uapi.SgxEnclaveRestrictPermissions(offset=0, length=0x1000, permissions=1).pack()
    return c.ioctl(fd, uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS, arg)


def _modify(c, fd, encl):
    arg = uapi.SgxEnclaveModifyTypes(offset=0, length=0x1000, page_type=4).pack()
    return c.ioctl(fd, uapi.SGX_IOC_ENCLAVE_MODIFY_TYPES, arg)


def _remove(c, fd, encl):
    arg = uapi.SgxEnclaveRemovePages(offset=0, length=0x1000).pack()
    return c.ioctl(fd, uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, arg)


# What another process (forked before the oops, so it maps the enclave and
# holds its file) does afterwards, and where the real kernel puts it to sleep.
LOCKED_PATHS = [
    ("fault on the half-added page", lambda c, fd, e: c.fetch(0x10000), "sgx_vma_fault"),
    ("fault on a resident page", lambda c, fd, e: c.peek(e.base, 8), "sgx_vma_fault"),
    ("fault that would EAUG", lambda c, fd, e: c.peek(HOLE, 8), "sgx_encl_eaug_page"),
    ("mmap of the enclave", lambda c, fd, e: c.mmap(e.base, 0x1000, PROT_READ,
                                                   MAP_SHARED | MAP_FIXED, fd, 0),
     "sgx_encl_may_map"),
    ("mprotect of an enclave VMA", lambda c, fd, e: c.mprotect(e.base, 0x1000, PROT_READ),
     "sgx_encl_may_map"),
    ("RESTRICT_PERMISSIONS", _restrict, "sgx_enclave_restrict_permissions"),
    ("MODIFY_TYPES", _modify, "sgx_enclave_modify_types"),
    ("REMOVE_PAGES", _remove, "sgx_encl_remove_pages"),
]


@pytest.mark.parametrize("what, call, rule", LOCKED_PATHS, ids=[r[0] for r in LOCKED_PATHS])
def test_every_path_that_takes_the_dead_tasks_encl_lock_sleeps_for_ever(what, call, rule):
    m, boot, p, (c, other), fd, encl = _oops(children=2, hole_mapped=True)
    assert c.alive
    with pytest.raises(TaskBlocked) as ei:
        call(c, fd, encl)
    why = ei.value.why
    assert (why.layer, why.rule, why.outcome) == ("sgx", rule, "blocked")
    assert "encl->lock" in why.detail and f"pid {p.pid}" in why.detail
    assert not c.alive and c in m.kernel.tasks
    with pytest.raises(TaskBlocked):  # it stays asleep
        c.mmap(0, 4096, 3, 0x22)
    # Paths that do not take that lock still work for the others.
    assert other.mmap(0, 4096, 3, 0x22) > 0
    fd2 = other.open("/dev/sgx_enclave", 2)  # another enclave: its own lock
    with pytest.raises(OSError) as e2:
        other.ioctl(fd2, 0xDEAD, 0)
    assert e2.value.errno == errno.ENOTTY
    assert check_machine(m) == []
    other.exit()
    # The sleepers keep their mm and files, hence the enclaves: counted, not leaked.
    assert check_after_exit(m, boot) == []


def test_an_ioctl_asleep_in_the_lock_keeps_the_enclave_busy():
    """sgx_ioctl()'s SGX_ENCL_IOCTL bit stays set while its task sleeps in
    the ioctl: another process's ioctl on the enclave is -EBUSY, before any
    lock."""
    m, boot, p, (c, other), fd, encl = _oops(children=2)
    with pytest.raises(TaskBlocked):
        _restrict(c, fd, encl)
    with pytest.raises(OSError) as ei:
        _restrict(other, fd, encl)
    assert ei.value.errno == errno.EBUSY and ei.value.why.rule == "sgx_ioctl"
    assert other.alive


def test_the_reclaimer_never_meets_the_held_lock():
    """The oopsed enclave's SECS was written out, so none of its pages is
    resident: the reclaimer (which takes encl->lock) has nothing of it to
    take, and every path that could load one sleeps on the lock first."""
    m, boot, p, (c,), fd, encl = _oops(children=1)
    drv = m.kernel.sgx
    assert encl.secs_child_cnt == 0 and encl.secs.epc_page is None
    assert not any(pg.epc_page is not None for pg in encl.page_array.values())
    drv.sgx_reclaim_pages()
    drv.ksgxd()
    assert check_machine(m) == []
    c.exit()
    assert check_after_exit(m, boot) == []


def test_an_oops_leaks_only_what_the_dead_task_holds():
    m, boot, p, _, _, encl = _oops()
    drv = m.kernel.sgx
    assert check_after_exit(m, boot) == []
    drv.sgx_nr_free_pages -= 1  # a page miscounted, as a model bug would
    bad = check_after_exit(m, boot)
    assert bad and bad[0].startswith("EPC pages in use:") and "1 leaked by an oops" in bad[0]


def test_fuzzer_seed_0_case_306_oopses_and_finds_nothing(monkeypatch):
    """`sgxsim fuzz --seconds 20 --kernel linux-6.0` found a bare AssertionError
    after this oops (case 306 of seed 0; case 288 oopses too)."""
    oopses = []
    orig = Linux.oops

    def spy(self, *a, **kw):
        oopses.append(a[0])
        return orig(self, *a, **kw)

    monkeypatch.setattr(Linux, "oops", spy)
    out = run_case(make_case(0, 306, ["linux-6.0"]))
    assert oopses and "sgx_encl_eaug_page" in oopses[0]
    assert out.finding is None, out.finding
