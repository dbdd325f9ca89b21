"""A task and its syscall surface, with Python's os/mmap/fcntl names.

Every syscall runs with ``kernel.current`` set to the task, raises
``OSError(errno)`` (with ``.why``) on failure, and converts the kernel's
internal ERESTARTSYS/ENOIOCTLCMD at the boundary as Linux does.
"""

from __future__ import annotations

import errno
import operator
import os
import signal as _signal
from dataclasses import dataclass
from typing import Any

from sgxsim.hw.faults import GeneralProtection, PageFault
from sgxsim.hw.paging import PTE_ACCESSED, PTE_DIRTY, PTE_PRESENT, PTE_RW, PTE_SPECIAL, pte_pfn
from sgxsim.kernel.errors import Signal, TaskBlocked, refuse
from sgxsim.kernel.mm.flags import (
    FMODE_PATH,
    MAP_ANONYMOUS,
    MAP_HUGETLB,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    TASK_SIZE,
    VM_DONTCOPY,
    VM_GROWSDOWN,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
)
from sgxsim.kernel.mm.vma import MmStruct, Vma
from sgxsim.kernel.sys import mmf_init_flags
from sgxsim.trace import Decision

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
_NSIG = 64  # signals 1.._NSIG are valid (valid_signal())
# The default actions (kernel/signal.c: sig_kernel_ignore(), sig_kernel_stop());
# every other signal's default terminates the process (with a core for some).
_SIG_DFL_IGNORE = frozenset((_signal.SIGCONT, _signal.SIGCHLD, _signal.SIGWINCH, _signal.SIGURG))
_SIG_DFL_STOP = frozenset((_signal.SIGSTOP, _signal.SIGTSTP, _signal.SIGTTIN, _signal.SIGTTOU))
_SIG_KERNEL_ONLY = frozenset((_signal.SIGKILL, _signal.SIGSTOP))  # no handler, never ignored
SI_USER = 0
STACK_TOP = 0x7FFF_FFFF_F000
STACK_SIZE = 132 * 1024
MMAP_BASE = STACK_TOP - (1 << 30) - 0x1000_0000  # below the stack and its gap


def _s32(v: int) -> int:
    v &= U32
    return v - (1 << 32) if v & 0x80000000 else v


def _syscall_uint(value: Any, name: str, bits: int = 32) -> int:
    """An unsigned syscall argument as the kernel reads it: the SYSCALL_DEFINE
    wrapper casts the 64-bit register to the parameter's C type, so an
    ``unsigned int`` (a descriptor) keeps the register's low 32 bits: -1 is
    0xffffffff, 2**40 is 0 (an int wider than a register keeps its low bits
    too).  What no register can hold (a float, a str, None) is a TypeError
    naming the argument, raised before the call as ``os`` does."""
    if type(value) is not int:
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"argument {name!r} must be an int, not {type(value).__name__}") from None
    return value & ((1 << bits) - 1)


def _count_arg(value: Any, name: str) -> int:
    """A byte count of the Python API (peek's ``n``): an int, else a
    TypeError naming the argument, as :func:`_syscall_uint` says it."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"argument {name!r} must be an int, not {type(value).__name__}") from None


def _bytes_arg(value: Any, name: str) -> bytes:
    """A buffer of the Python API (poke's ``data``): bytes-like (or an
    iterable of byte values, as bytes() takes), never an int (bytes(5) is
    five zero bytes) or a str (it has no bytes without an encoding)."""
    if not isinstance(value, (int, str)):
        try:
            return bytes(value)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"argument {name!r} must be a bytes-like object, not {type(value).__name__}")


def _path_arg(path: Any) -> str:
    """The path argument, with ``os.open``'s types (str, bytes, os.PathLike)."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"argument 'path' must be str, bytes or os.PathLike, "
                        f"not {type(path).__name__}") from None
    return os.fsdecode(path)


@dataclass(frozen=True)
class MapEntry:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    path: str

    def __str__(self) -> str:
        return (f"{self.start:08x}-{self.end:08x} {self.perms} {self.offset:08x} {self.dev} "
                f"{self.inode:<10d} {self.path}").rstrip()


@dataclass(frozen=True)
class Stat:
    """The fields of struct stat the model keeps."""

    st_mode: int
    st_ino: int
    st_rdev: int
    st_size: int


class UserArg:
    """An ioctl argument as the driver sees it: a user pointer
    (``copy_from_user``/``copy_to_user`` with EFAULT) or, for an argument
    passed as a Python buffer, that buffer (``fcntl.ioctl`` style)."""

    def __init__(self, kernel: Any, task: Any, addr: int = 0, buf: bytearray | None = None):
        self.kernel, self.task, self.addr, self.buf = kernel, task, addr, buf

    def copy_from(self, n: int) -> bytes:
        if self.buf is not None:
            if len(self.buf) < n:
                raise refuse(errno.EFAULT, "mm", "copy_from_user", "argument buffer too short")
            return bytes(self.buf[:n])
        return self.kernel.copy_from_user(self.task, self.addr, n)

    def copy_to(self, data: bytes) -> None:
        if self.buf is not None:
            if len(self.buf) < len(data):
                raise refuse(errno.EFAULT, "mm", "copy_to_user", "argument buffer too short")
            self.buf[: len(data)] = data
            return
        self.kernel.copy_to_user(self.task, self.addr, data)


class Process:
    """A single-threaded process (task + mm + file table) on one LP."""

    def __init__(self, kernel: Any, lp: Any, label: str = "user_t", mm: MmStruct | None = None):
        self.kernel = kernel
        self.lp = lp
        self.pid = kernel.next_pid
        kernel.next_pid += 1
        self.label = label
        self.persona = 0
        self.rlimit_nofile = self.RLIMIT_NOFILE  # (soft, hard)
        self.pending_signals: set[int] = set()
        # sigaction(): signo -> SIG_IGN or a handler; a signal not here is SIG_DFL.
        self.sighand: dict[int, Any] = {}
        self.files: dict[int, Any] = {}
        self.alive = True
        # Why a task that is not alive still exists: it sleeps for ever in
        # the kernel (after an oops, on a lock a dead task holds) or is stopped.
        self.blocked: Any = None
        self.blocked_holds: list[Any] = []  # files the sleeping call holds references to
        if mm is None:
            mm = MmStruct(MMAP_BASE)
            stack = Vma(mm, STACK_TOP - STACK_SIZE, STACK_TOP,
                        VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_GROWSDOWN,
                        (STACK_TOP - STACK_SIZE) >> PAGE_SHIFT)
            mm.insert(stack)
            mm.start_stack = STACK_TOP - 0x1000
        self.mm = mm
        kernel.tasks.append(self)

    # -- plumbing -------------------------------------------------------------------------
    def _enter(self) -> Any:
        if not self.alive:
            if self.blocked is not None:  # it cannot make a call: it sleeps in the kernel
                raise TaskBlocked(self.pid, self.blocked)
            raise refuse(errno.ESRCH, "kernel", "syscall", "the process has exited")
        k = self.kernel
        k.current = self
        self.lp.cr3 = self.mm.pgtable
        return k

    def switch_to(self) -> Any:
        """Run this task on its LP (kernel ``current``, CR3), as a context
        switch does before the task executes user instructions; returns the kernel."""
        return self._enter()

    def _call(self, fn: Any, *args: Any) -> Any:
        k = self._enter()
        try:
            ret = fn(*args)
        except OSError as e:
            err = k.syscall_errno(e)
            if self.pending_signals:
                self.exit_to_user_mode()  # a fatal signal ends the task before the errno is seen
            raise err from None
        if self.pending_signals:
            self.exit_to_user_mode()
        return ret

    # -- memory syscalls -------------------------------------------------------------------
    def mmap(self, addr: int, length: int, prot: int, flags: int, fd: int = -1,
             offset: int = 0) -> int:
        """mmap(2): returns the address or raises OSError."""
        addr, length, offset = addr & U64, length & U64, offset & U64
        prot, flags = _s32(prot) & U32, _s32(flags) & U32
        # unsigned long in sys_mmap() (an int without the helper's call: same value)
        fd = fd & U64 if type(fd) is int else _syscall_uint(fd, "fd", 64)

        def sys_mmap() -> int:
            k = self.kernel
            # arch/x86/kernel/sys_x86_64.c: sys_mmap()
            if offset & ~PAGE_MASK & U64:
                raise refuse(errno.EINVAL, "mm", "sys_mmap", "offset not page aligned")
            file = None
            if not flags & MAP_ANONYMOUS:
                file = k.fget(self, fd & U32)  # fget() takes an unsigned int
                if file is None:
                    raise refuse(errno.EBADF, "mm", "ksys_mmap_pgoff", f"fd {fd & U32} not open")
                if flags & MAP_HUGETLB:
                    raise refuse(errno.EINVAL, "mm", "ksys_mmap_pgoff", "MAP_HUGETLB on a file")
            return k.vm_mmap_pgoff(file, addr, length, prot, flags, offset >> PAGE_SHIFT)

        return self._call(sys_mmap)

    def munmap(self, addr: int, length: int) -> None:
        self._call(self.kernel.do_vmi_munmap, addr & U64, length & U64)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        self._call(self.kernel.do_mprotect_pkey, addr & U64, length & U64, _s32(prot) & U32)

    def mremap(self, old_addr: int, old_size: int, new_size: int, flags: int = 0,
               new_addr: int = 0) -> int:
        return self._call(self.kernel.do_mremap, old_addr & U64, old_size & U64, new_size & U64,
                          _s32(flags) & U32, new_addr & U64)

    def mseal(self, addr: int, length: int, flags: int = 0) -> None:
        """mseal(2) (Linux 6.10): seal the VMAs of the range against change."""
        self._call(self.kernel.do_mseal, addr & U64, length & U64, flags & U64)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0,
              arg5: int = 0) -> int:
        """prctl(2): the options the model has (PR_SET_MDWE, PR_GET_MDWE)."""
        return self._call(self.kernel.sys_prctl, _s32(option), arg2 & U64, arg3 & U64,
                          arg4 & U64, arg5 & U64)

    def personality(self, persona: int) -> int:
        """personality(2): sets the persona unless it is 0xffffffff; returns the old one."""
        self._enter()
        old = self.persona
        if persona & U32 != U32:
            self.persona = persona & U32
        if self.pending_signals:
            self.exit_to_user_mode()
        return old

    @property
    def task_personality(self) -> int:
        return self.persona

    # -- files --------------------------------------------------------------------------------
    # RLIMIT_NOFILE as a login session sets it (soft, hard): descriptors are
    # below the soft limit.  fs.nr_open's default bounds the hard one.
    RLIMIT_NOFILE = (1024, 4096)
    NR_OPEN = 1 << 20

    def prlimit_nofile(self, soft: int, hard: int) -> tuple[int, int]:
        """prlimit(2) of RLIMIT_NOFILE; returns the old limits.  Privilege is
        not modelled (raising the hard limit is allowed, as for root)."""
        # struct rlimit64's fields are u64 (RLIM_INFINITY, -1, is the largest)
        soft_, hard_ = _syscall_uint(soft, "soft", 64), _syscall_uint(hard, "hard", 64)

        def sys_prlimit() -> tuple[int, int]:
            # do_prlimit()
            if soft_ > hard_:
                raise refuse(errno.EINVAL, "kernel", "do_prlimit", f"soft {soft_} above hard {hard_}")
            if hard_ > self.NR_OPEN:
                raise refuse(errno.EPERM, "kernel", "do_prlimit",
                             f"RLIMIT_NOFILE {hard_} above fs.nr_open ({self.NR_OPEN})")
            old, self.rlimit_nofile = self.rlimit_nofile, (soft_, hard_)
            return old

        return self._call(sys_prlimit)

    def _unused_fd(self) -> int:
        """alloc_fd(): the lowest descriptor not in use, below RLIMIT_NOFILE."""
        fd = 0
        while fd in self.files:
            fd += 1
        if fd >= self.rlimit_nofile[0]:
            raise refuse(errno.EMFILE, "vfs", "alloc_fd",
                         f"every descriptor below RLIMIT_NOFILE ({self.rlimit_nofile[0]}) is in use")
        return fd

    def open(self, path: str, flags: int = 0, mode: int = 0o644) -> int:
        """open(2) (int flags, umode_t mode), in do_sys_openat2()'s order:
        the flags, the name, a descriptor, then the path walk."""
        name = _path_arg(path)
        flags, mode = _syscall_uint(flags, "flags"), _syscall_uint(mode, "mode", 16)

        def sys_open() -> int:
            vfs = self.kernel.vfs
            op = vfs.build_open_flags(*vfs.build_open_how(flags, mode))
            fname = vfs.getname(name)
            fd = self._unused_fd()  # get_unused_fd_flags()
            self.files[fd] = vfs.do_filp_open(fname, op)
            return fd

        return self._call(sys_open)

    def close(self, fd: int) -> None:
        """close(2) (unsigned int fd)."""
        fd = _syscall_uint(fd, "fd")

        def sys_close() -> None:
            f = self.files.pop(fd, None)
            if f is None:
                raise refuse(errno.EBADF, "vfs", "close_fd", f"fd {fd} not open")
            self.kernel.fput(f)

        self._call(sys_close)

    def dup(self, oldfd: int, newfd: int | None = None) -> int:
        """dup(2), or dup2(2) when ``newfd`` is given (both unsigned int):
        another descriptor for the same struct file (get_file()); dup2 first
        closes ``newfd``."""
        oldfd = _syscall_uint(oldfd, "oldfd")
        if newfd is not None:
            newfd = _syscall_uint(newfd, "newfd")

        def sys_dup() -> int:
            if newfd is None:  # dup(): fget_raw(), then get_unused_fd_flags()
                f = self.files.get(oldfd)
                if f is None:
                    raise refuse(errno.EBADF, "vfs", "dup", f"fd {oldfd} not open")
                fd = self._unused_fd()
            elif newfd == oldfd:  # dup2()'s corner case: only oldfd is checked
                if oldfd not in self.files:
                    raise refuse(errno.EBADF, "vfs", "dup2", f"fd {oldfd} not open")
                return newfd
            else:
                if newfd >= self.rlimit_nofile[0]:  # ksys_dup3()
                    raise refuse(errno.EBADF, "vfs", "ksys_dup3",
                                 f"fd {newfd} not below RLIMIT_NOFILE ({self.rlimit_nofile[0]})")
                f = self.files.get(oldfd)
                if f is None:
                    raise refuse(errno.EBADF, "vfs", "ksys_dup3", f"fd {oldfd} not open")
                fd = newfd
                old = self.files.pop(fd, None)  # do_dup2(): the old file closed
                if old is not None:
                    self.kernel.fput(old)
            f.refcount += 1
            self.files[fd] = f
            return fd

        return self._call(sys_dup)

    def stat(self, path: str | None = None, fd: int | None = None) -> Stat:
        """stat(2) of ``path``, or fstat(2) of ``fd`` (unsigned int)."""
        if fd is not None:
            fd = _syscall_uint(fd, "fd")
        else:
            path = _path_arg(path)

        def sys_stat() -> Stat:
            if fd is not None:
                f = self.files.get(fd)  # vfs_fstat(): fdget_raw(), O_PATH files too
                if f is None:
                    raise refuse(errno.EBADF, "vfs", "vfs_fstat", f"fd {fd} not open")
                ino = f.inode
            else:
                vfs = self.kernel.vfs
                norm, slash, _ = vfs.path_walk(vfs.getname(path), "vfs_statx")
                ino = vfs.lookup(norm, "vfs_statx")
                if ino is None:
                    raise refuse(errno.ENOENT, "vfs", "vfs_statx", f"{path}: no such file")
                if slash and not ino.is_dir():
                    raise refuse(errno.ENOTDIR, "vfs", "vfs_statx", f"{path}: not a directory")
            return Stat(ino.mode, ino.ino, ino.rdev, ino.size)

        return self._call(sys_stat)

    def ioctl(self, fd: int, request: int, arg: Any = 0) -> int | bytes:
        """ioctl(2) (unsigned int fd, unsigned int request), with
        ``fcntl.ioctl``'s argument types: an int user address (returns the
        ioctl's result), a writable buffer (copied in and back; returns the
        result) or a read-only one such as ``bytes`` (copied in; returns the
        buffer's final contents)."""
        # (the common case, two ints, without the helper's call: same values)
        fd = fd & U32 if type(fd) is int else _syscall_uint(fd, "fd")
        request = request & U32 if type(request) is int else _syscall_uint(request, "request")

        def sys_ioctl() -> int:
            f = self.files.get(fd)
            if f is None or f.f_mode & FMODE_PATH:  # fdget(): not an O_PATH file
                raise refuse(errno.EBADF, "vfs", "ioctl", f"fd {fd} not open")
            if f.f_op.unlocked_ioctl is None:
                raise refuse(errno.ENOTTY, "vfs", "vfs_ioctl", "no unlocked_ioctl")
            return f.f_op.unlocked_ioctl(f, request, uarg)

        # fcntl.ioctl(): an int is passed as is; a writable buffer is copied in
        # and back; a read-only one (bytes, a read-only memoryview) is copied
        # into a temporary whose final contents are returned instead.
        copy_back = None
        if not isinstance(arg, int):
            try:
                view = memoryview(arg).cast("B")
            except TypeError:
                raise TypeError(f"ioctl argument must be an int or a bytes-like object, "
                                f"not {type(arg).__name__}") from None
            if view.readonly:
                copy_back = bytearray(view)
                uarg = UserArg(self.kernel, self, buf=copy_back)
            else:
                uarg = UserArg(self.kernel, self, buf=view)  # type: ignore[arg-type]
        else:
            uarg = UserArg(self.kernel, self, addr=arg & U64)
        ret = self._call(sys_ioctl)
        return bytes(copy_back) if copy_back is not None else ret

    def file(self, fd: int) -> Any:
        """The struct file behind ``fd`` (for tools and tests; like /proc/PID/fd)."""
        fd = fd & U32 if type(fd) is int else _syscall_uint(fd, "fd")  # the checker's hot path
        f = self.files.get(fd)
        if f is None:
            raise refuse(errno.EBADF, "vfs", "fget", f"fd {fd} not open")
        return f

    # -- user memory -----------------------------------------------------------------------------
    def peek(self, addr: int, n: int) -> bytes:
        """A user-mode read (SIGSEGV/SIGBUS raised as Signal)."""
        # _enter() without its CR3 load, done below: the hottest path.
        if type(addr) is not int or type(n) is not int:  # (checked before the access)
            addr, n = _syscall_uint(addr, "addr", 64), _count_arg(n, "n")
        k = self.kernel if self.alive else self._enter()  # _enter() refuses a dead task
        k.current = self
        addr &= U64
        if 0 < n <= PAGE_SIZE - (addr & (PAGE_SIZE - 1)):
            # The common case, one page: user_access() with its first try inline.
            lp = self.lp
            lp.cr3 = self.mm.pgtable
            try:
                return k.cpu.load(lp, addr, n)
            except (PageFault, GeneralProtection) as fault:
                return k.user_fault(self, fault, k.cpu.load, addr, n)
        out = bytearray()
        while n > 0:
            take = min(n, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            out += k.user_access(self, k.cpu.load, addr, take)
            addr += take
            n -= take
        return bytes(out)

    def poke(self, addr: int, data: bytes) -> None:
        """A user-mode write (SIGSEGV/SIGBUS raised as Signal)."""
        if type(addr) is not int:
            addr = _syscall_uint(addr, "addr", 64)
        if type(data) is not bytes:  # (checked before the access)
            data = _bytes_arg(data, "data")
        k = self.kernel if self.alive else self._enter()  # as in peek()
        k.current = self
        addr &= U64
        if (addr & (PAGE_SIZE - 1)) + len(data) <= PAGE_SIZE:
            # The common case, one page: user_access() with its first try inline.
            lp = self.lp
            lp.cr3 = self.mm.pgtable
            try:
                k.cpu.store(lp, addr, data)
            except (PageFault, GeneralProtection) as fault:
                k.user_fault(self, fault, k.cpu.store, addr, data)
            return
        mv = memoryview(data)
        while mv:
            take = min(len(mv), PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            k.user_access(self, k.cpu.store, addr, bytes(mv[:take]))
            addr += take
            mv = mv[take:]

    def fetch(self, addr: int) -> bytes:
        """An instruction fetch of one byte."""
        if type(addr) is not int:
            addr = _syscall_uint(addr, "addr", 64)
        k = self.kernel if self.alive else self._enter()  # as in peek()
        k.current = self
        return k.user_access(self, k.cpu.fetch, addr & U64)

    def maps(self) -> list[MapEntry]:
        """/proc/PID/maps."""
        out = []
        for v in self.mm.vmas:
            f = v.vm_file
            if f is not None:
                path = f.path
                off = v.vm_pgoff << PAGE_SHIFT
                ino = f.inode.ino
                dev = "00:01"
            else:
                path = "[stack]" if v.vm_start <= self.mm.start_stack < v.vm_end else ""
                off, ino, dev = 0, 0, "00:00"
            out.append(MapEntry(v.vm_start, v.vm_end, v.perms(), off, dev, ino, path))
        return out

    # -- signals, fork, exit -----------------------------------------------------------------
    def kill(self, sig: int) -> None:
        """kill(2) of this process by a sender the model does not name
        (permission is not modelled).  Signal 0 only checks that the process
        exists.  A signal its disposition ignores is discarded at once;
        otherwise it is pending, as if it arrived just as the process's next
        system call began: the driver's loops see it (EINTR), and it is
        delivered when that call returns (:meth:`exit_to_user_mode`)."""
        n = _syscall_uint(sig, "sig")  # int sig: the register's low 32 bits, signed
        n -= (n & 1 << 31) << 1
        if n != sig:  # an in-range value stays as given (a signal.Signals, say)
            sig = n
        # kill_pid_info_type(): a process that is gone is ESRCH before any check.
        if not self.alive and self.blocked is None:
            raise refuse(errno.ESRCH, "kernel", "kill_pid_info", f"pid {self.pid} has exited")
        if not 0 <= sig <= _NSIG:  # check_kill_permission(): valid_signal()
            raise refuse(errno.EINVAL, "kernel", "check_kill_permission",
                         f"signal {sig} is not a valid signal (1..{_NSIG}, or 0)")
        if not sig:  # group_send_sig_info(): signal 0 sends nothing
            return
        stopped = self.blocked is not None and self.blocked.rule == "do_signal_stop"
        if sig == _signal.SIGKILL and stopped:
            # SIGKILL wakes a stopped task, which dies on the spot.
            self.alive, self.blocked = True, None
            self.pending_signals.clear()
            self.do_exit()
            return
        if sig == _signal.SIGCONT:  # prepare_signal(): SIGCONT resumes a stopped task
            self.pending_signals -= _SIG_DFL_STOP
            if stopped:
                self.blocked, self.alive = None, True
        elif sig in _SIG_DFL_STOP:  # ... and a stop signal cancels a pending SIGCONT
            self.pending_signals.discard(_signal.SIGCONT)
        if self._sig_ignored(sig):  # sig_ignored(): dropped, never pending
            return
        self.pending_signals.add(sig)

    def _sig_ignored(self, sig: int) -> bool:
        # sig_handler_ignored(): SIG_IGN, or SIG_DFL whose default is to ignore
        handler = self.sighand.get(sig, _signal.SIG_DFL)
        return handler is _signal.SIG_IGN or (handler is _signal.SIG_DFL and sig in _SIG_DFL_IGNORE)

    def sigaction(self, sig: int, handler: Any) -> Any:
        """rt_sigaction(2), the handler only: ``signal.SIG_DFL``,
        ``signal.SIG_IGN`` or a callable ``handler(signo)`` that runs when the
        signal is delivered (without SA_RESTART: the interrupted call gives
        EINTR).  Returns the old disposition."""

        def sys_rt_sigaction() -> Any:
            # do_sigaction(): SIGKILL and SIGSTOP keep their default.
            if not 1 <= sig <= _NSIG or sig in _SIG_KERNEL_ONLY:
                raise refuse(errno.EINVAL, "kernel", "do_sigaction",
                             f"signal {sig} cannot be caught or ignored" if 1 <= sig <= _NSIG
                             else f"signal {sig} is not a valid signal")
            if handler is not _signal.SIG_DFL and handler is not _signal.SIG_IGN \
                    and not callable(handler):
                raise TypeError(f"a handler is SIG_DFL, SIG_IGN or a callable, not {handler!r}")
            old = self.sighand.get(sig, _signal.SIG_DFL)
            if handler is _signal.SIG_DFL:
                self.sighand.pop(sig, None)
            else:
                self.sighand[sig] = handler
            if self._sig_ignored(sig):  # do_sigaction(): a pending one is discarded
                self.pending_signals.discard(sig)
            return old

        return self._call(sys_rt_sigaction)

    def exit_to_user_mode(self) -> None:
        """arch_do_signal_or_restart() -> get_signal() on the way back to user
        space: the pending signals, lowest number first.  An ignored one is
        dropped, a handler runs, a default stop stops the task (until
        SIGCONT), any other default action ends the process (do_group_exit()),
        raised as a :class:`Signal`."""
        while self.pending_signals and self.alive:
            sig = min(self.pending_signals)
            self.pending_signals.discard(sig)
            handler = self.sighand.get(sig, _signal.SIG_DFL)
            if handler is _signal.SIG_IGN:
                continue
            if handler is not _signal.SIG_DFL:
                handler(sig)  # handle_signal(): the user handler runs, then sigreturn
                continue
            if sig in _SIG_DFL_IGNORE:
                continue
            name = _signal.Signals(sig).name if sig in _signal.Signals._value2member_map_ else str(sig)
            if sig in _SIG_DFL_STOP:
                # do_signal_stop(): the task stops; the model's next call
                # of it finds it stopped until kill(SIGCONT).
                self.alive = False
                self.blocked = Decision("kernel", "do_signal_stop", "stopped",
                                        f"pid {self.pid} stopped by {name}; SIGCONT resumes it")
                self.kernel.trace.add(self.blocked)
                return
            why = Decision("kernel", "get_signal", name,
                           f"pid {self.pid} killed by {name} (default action) on its way to user space")
            self.kernel.trace.refuse(why)  # get_signal(): the call ends with the task
            self.pending_signals.clear()
            self.do_exit()  # do_group_exit()
            raise Signal(sig, SI_USER, 0, why)

    def fork(self) -> Process:
        """fork(2): copy the mm (private pages COW), the file table."""
        k = self._enter()
        lp = k.cpu.lps[len(k.tasks) % len(k.cpu.lps)]
        mm = MmStruct(self.mm.mmap_base)
        mm.start_stack = self.mm.start_stack
        mm.flags = mmf_init_flags(self.mm.flags)  # mm_init(): MDWE is inherited
        child = Process(k, lp, self.label, mm=mm)
        child.persona = self.persona  # copy_process(): the personality is inherited
        child.rlimit_nofile = self.rlimit_nofile  # copy_signal(): so are the rlimits
        child.sighand = dict(self.sighand)  # copy_sighand(); pending signals are not inherited
        for fd, f in self.files.items():
            f.refcount += 1
            child.files[fd] = f
        src_pt, dst_pt = self.mm.pgtable, mm.pgtable
        for v in self.mm.vmas:
            if v.vm_flags & VM_DONTCOPY:
                continue
            nv = v.clone()
            nv.vm_mm = mm
            if nv.vm_file is not None:
                nv.vm_file.refcount += 1
            mm.insert(nv)
            if nv.vm_ops is not None and nv.vm_ops.open is not None:
                nv.vm_ops.open(nv)
            # copy_page_range() after vm_ops->open (dup_mmap()); a VM_PFNMAP
            # VMA's PTEs are copied too (vma_needs_copy()): no page behind
            # them to reference (copy_present_ptes()).
            for vpn in src_pt.populated(v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT):
                pte = src_pt.ptes[vpn]
                if not v.vm_flags & VM_SHARED and pte & PTE_PRESENT:
                    pte &= ~PTE_RW
                    src_pt.ptes[vpn] = pte
                if not pte & PTE_SPECIAL:
                    k.get_frame(pte_pfn(pte))
                if pte & PTE_PRESENT:
                    # __copy_present_ptes(): the child's copy is old, and
                    # clean in a shared mapping (the parent keeps both bits).
                    pte &= ~(PTE_ACCESSED | PTE_DIRTY) if v.vm_flags & VM_SHARED else ~PTE_ACCESSED
                dst_pt.set(vpn, pte)
        return child

    def exit(self) -> None:
        """exit(2): unmap everything (->close, fput), close files, mm exit."""
        self._enter()
        self.do_exit()

    def do_exit(self, mm_put: bool = True) -> None:
        """do_exit(): the mm's VMAs unmapped, the files closed, the mm's
        count dropped and its mmu notifiers released; the task is reaped.
        ``mm_put=False``: the mm's count was already dropped (it stays)."""
        k = self.kernel
        k.current = self
        mm = self.mm
        if mm_put:
            for v in list(mm.vmas):
                k.zap_page_range(v, v.vm_start, v.vm_end)
                k.remove_vma(mm, v)
        for fd in list(self.files):
            k.fput(self.files.pop(fd))
        if mm_put:
            mm.users -= 1
            for n in list(mm.notifiers):
                n.release(mm)
        if self.lp.cr3 is mm.pgtable:
            self.lp.cr3 = None
        self.alive = False
        self.blocked = None
        self.pending_signals.clear()
        if self in k.tasks:
            k.tasks.remove(self)

    def __repr__(self) -> str:
        return f"Process(pid={self.pid})"


__all__ = ["MapEntry", "Process", "Stat", "UserArg", "TASK_SIZE"]
