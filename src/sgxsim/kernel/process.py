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
    AT_FDCWD,
    FMODE_PATH,
    FMODE_PREAD,
    FMODE_PWRITE,
    MAP_ANONYMOUS,
    MAP_HUGETLB,
    O_LARGEFILE,
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
from sgxsim.kernel.vfs import SEEK_MAX
from sgxsim.trace import Decision

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
F_GETFL, F_SETFL = 3, 4
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


def _s64(v: int) -> int:
    v &= U64
    return v - (1 << 64) if v >> 63 else v


def _path_arg(path: Any, fn: str) -> str:
    """The path argument, with ``os.open``'s types (str, bytes, os.PathLike).
    A C string ends at its first NUL, so a Python string with a NUL inside
    names no file a program could pass: ValueError before the call, with
    ``os``'s messages (not the prefix a C caller would mean, silently)."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"argument 'path' must be str, bytes or os.PathLike, "
                        f"not {type(path).__name__}") from None
    if isinstance(path, str):
        if "\0" in path:
            raise ValueError("embedded null byte")
    elif b"\0" in path:
        raise ValueError(f"{fn}: embedded null character in path")
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
        # current->fs: umask and working directory, init_fs's (0022, the root)
        # for a new process, a copy of its parent's for a fork child
        self.fs_umask = 0o022
        self.fs_pwd = "/"
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
        """mmap(2): returns the address or raises OSError.  Every argument is
        an unsigned long (x86-64 sys_mmap()): all 64 bits of the register
        count, so an unknown flag above bit 31 is seen (EOPNOTSUPP under
        MAP_SHARED_VALIDATE) and prot ``PROT_EXEC | 1 << 32`` is not PROT_EXEC."""
        # SYSCALL_DEFINE6(mmap): unsigned long addr, len, prot, flags, fd, off
        # (an int without the helper's call: same value)
        addr = addr & U64 if type(addr) is int else _syscall_uint(addr, "addr", 64)
        length = length & U64 if type(length) is int else _syscall_uint(length, "length", 64)
        prot = prot & U64 if type(prot) is int else _syscall_uint(prot, "prot", 64)
        flags = flags & U64 if type(flags) is int else _syscall_uint(flags, "flags", 64)
        fd = fd & U64 if type(fd) is int else _syscall_uint(fd, "fd", 64)
        offset = offset & U64 if type(offset) is int else _syscall_uint(offset, "offset", 64)

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
        """munmap(2) (unsigned long addr, size_t len)."""
        addr = addr & U64 if type(addr) is int else _syscall_uint(addr, "addr", 64)
        length = length & U64 if type(length) is int else _syscall_uint(length, "length", 64)
        self._call(self.kernel.do_vmi_munmap, addr, length)

    def mprotect(self, addr: int, length: int, prot: int) -> None:
        """mprotect(2) (unsigned long start, size_t len, unsigned long prot):
        a prot bit above bit 31 is an unknown bit (EINVAL), not dropped."""
        addr = addr & U64 if type(addr) is int else _syscall_uint(addr, "addr", 64)
        length = length & U64 if type(length) is int else _syscall_uint(length, "length", 64)
        prot = prot & U64 if type(prot) is int else _syscall_uint(prot, "prot", 64)
        self._call(self.kernel.do_mprotect_pkey, addr, length, prot)

    def mremap(self, old_addr: int, old_size: int, new_size: int, flags: int = 0,
               new_addr: int = 0) -> int:
        """mremap(2): five unsigned longs; a flag bit above bit 31 is an
        unknown flag (EINVAL)."""
        old_addr, old_size, new_size, flags, new_addr = (
            _syscall_uint(v, name, 64) for v, name in (
                (old_addr, "old_addr"), (old_size, "old_size"), (new_size, "new_size"),
                (flags, "flags"), (new_addr, "new_addr")))
        return self._call(self.kernel.do_mremap, old_addr, old_size, new_size, flags, new_addr)

    def mseal(self, addr: int, length: int, flags: int = 0) -> None:
        """mseal(2) (Linux 6.10): seal the VMAs of the range against change
        (unsigned long start, size_t len, unsigned long flags)."""
        self._call(self.kernel.do_mseal, _syscall_uint(addr, "addr", 64),
                   _syscall_uint(length, "length", 64), _syscall_uint(flags, "flags", 64))

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

    def umask(self, mask: int) -> int:
        """umask(2) (int mask): sets the file mode creation mask to
        ``mask & 0o777`` and returns the old one.  open() with O_CREAT or
        O_TMPFILE clears its bits from the new file's mode."""
        mask = _syscall_uint(mask, "mask")  # int: the register's low 32 bits

        def sys_umask() -> int:
            # SYSCALL_DEFINE1(umask): only the permission bits are kept (S_IRWXUGO)
            old, self.fs_umask = self.fs_umask, mask & 0o777
            return old

        return self._call(sys_umask)

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

    def open(self, path: str, flags: int = 0, mode: int = 0o644, *,
             dir_fd: int | None = None) -> int:
        """open(2) (int flags, umode_t mode), or openat(2) with ``dir_fd``
        (int dfd; None is AT_FDCWD, as in ``os.open``), in
        do_sys_openat2()'s order: the flags, the name, a descriptor, then
        the path walk, whose path_init() starts a relative name at the
        working directory or at ``dir_fd``'s directory."""
        name = _path_arg(path, "open")
        flags, mode = _syscall_uint(flags, "flags"), _syscall_uint(mode, "mode", 16)
        dfd = AT_FDCWD if dir_fd is None else _s32(_syscall_uint(dir_fd, "dir_fd"))

        def sys_open() -> int:
            vfs = self.kernel.vfs
            # open()/openat(): force_o_largefile() on x86-64, before
            # build_open_how() (which drops it again for O_PATH)
            op = vfs.build_open_flags(*vfs.build_open_how(flags | O_LARGEFILE, mode))
            fname = vfs.getname(name)
            fd = self._unused_fd()  # get_unused_fd_flags()
            start = self._path_init(dfd, fname)
            self.files[fd] = vfs.do_filp_open(fname, op, start)
            return fd

        return self._call(sys_open)

    def _path_init(self, dfd: int, name: str) -> str:
        """path_init(): where the walk of ``name`` starts: the root for an
        absolute name, else the working directory (AT_FDCWD) or the
        directory open as ``dfd`` (fdget_raw(): an O_PATH one too)."""
        if name.startswith("/"):
            return "/"
        if dfd == AT_FDCWD:
            return self.fs_pwd
        f = self.files.get(dfd & U32)  # fdget_raw() takes it as unsigned int
        if f is None:
            raise refuse(errno.EBADF, "vfs", "path_init", f"dirfd {dfd} not open")
        if not f.inode.is_dir():
            raise refuse(errno.ENOTDIR, "vfs", "path_init",
                         f"dirfd {dfd} is {f.path}, not a directory")
        return f.path

    def chdir(self, path: str) -> None:
        """chdir(2): the working directory becomes ``path`` (a relative one
        from the present one), which must be a directory (LOOKUP_DIRECTORY);
        no permission is modelled (MAY_EXEC | MAY_CHDIR is granted)."""
        name = _path_arg(path, "chdir")

        def sys_chdir() -> None:
            # ksys_chdir() -> user_path_at() -> path_lookupat(), then set_fs_pwd()
            vfs = self.kernel.vfs
            fname = vfs.getname(name)
            norm, _, _ = vfs.path_walk(fname, "path_lookupat", self._path_init(AT_FDCWD, fname))
            ino = vfs.lookup(norm, "path_lookupat")
            if ino is None:
                raise refuse(errno.ENOENT, "vfs", "path_lookupat", f"{fname}: no such directory")
            if not ino.is_dir():
                raise refuse(errno.ENOTDIR, "vfs", "path_lookupat", f"{fname}: not a directory")
            self.fs_pwd = norm

        self._call(sys_chdir)

    def getcwd(self) -> str:
        """getcwd(2), as ``os.getcwd``: the working directory's absolute name."""
        return self._call(lambda: self.fs_pwd)

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

    # -- read, write, lseek, fcntl ---------------------------------------------------------
    def _fdget(self, fd: int, rule: str) -> Any:
        """fdget()/fdget_pos(): the open file behind ``fd``, not an O_PATH one."""
        f = self.files.get(fd)
        if f is None or f.f_mode & FMODE_PATH:
            raise refuse(errno.EBADF, "vfs", rule, f"fd {fd} not open" if f is None
                         else f"fd {fd} is an O_PATH file")
        return f

    def _read_to(self, data: bytes, addr: int | None) -> bytes | int:
        # the bytes themselves for a caller's buffer (os.read), else copy_to_user()
        if addr is None:
            return data
        self.kernel.copy_to_user(self, addr, data)
        return len(data)

    def _user_src(self, data: Any, n: int | None) -> tuple[Any, int]:
        """write()'s source: a bytes-like object, or (with ``n``) a user
        address that copy_from_user() reads when the write gets that far."""
        if isinstance(data, int):
            if n is None:
                raise TypeError("a user address needs a count n")
            addr = data & U64
            k = self.kernel

            def copy(count: int) -> bytes:
                return k.copy_from_user(self, addr, count)
            copy.addr = addr  # type: ignore[attr-defined]
            return copy, _syscall_uint(n, "n", 64)
        try:
            view = memoryview(data).cast("B")
        except TypeError:
            raise TypeError(f"a bytes-like object is required, not {type(data).__name__}") from None
        return view, len(view) if n is None else min(len(view), _syscall_uint(n, "n", 64))

    def read(self, fd: int, n: int, addr: int | None = None) -> bytes | int:
        """read(2) (unsigned int fd, size_t count): returns the bytes read,
        as ``os.read`` does, or with ``addr`` (a user address) copies them
        there and returns the count.  The SGX files have no read operation:
        EBADF if not opened for reading, else EINVAL."""
        fd, count = _syscall_uint(fd, "fd"), _syscall_uint(n, "n", 64)
        addr = None if addr is None else _syscall_uint(addr, "addr", 64)

        def ksys_read() -> bytes | int:
            f = self._fdget(fd, "ksys_read")  # fdget_pos()
            data = self.kernel.vfs.vfs_read(f, count, f.f_pos, addr)
            out = self._read_to(data, addr)
            f.f_pos += len(data)
            return out

        return self._call(ksys_read)

    def write(self, fd: int, data: Any, n: int | None = None) -> int:
        """write(2) (unsigned int fd, size_t count) of a bytes-like object
        (``os.write``), or of ``n`` bytes at the user address ``data``.  The
        SGX files have no write operation: EBADF if not opened for writing,
        else EINVAL."""
        fd = _syscall_uint(fd, "fd")
        src, count = self._user_src(data, n)

        def ksys_write() -> int:
            f = self._fdget(fd, "ksys_write")  # fdget_pos()
            done, f.f_pos = self.kernel.vfs.vfs_write(f, count, f.f_pos, src)
            return done

        return self._call(ksys_write)

    def pread(self, fd: int, n: int, offset: int, addr: int | None = None) -> bytes | int:
        """pread64(2) (loff_t pos): as :meth:`read` at ``offset``, the file
        position untouched.  A negative offset is EINVAL before the fd is
        looked at; a file without FMODE_PREAD is ESPIPE (the SGX files have
        it: theirs is vfs_read()'s refusal)."""
        fd, count, pos = _syscall_uint(fd, "fd"), _syscall_uint(n, "n", 64), _s64(offset)
        addr = None if addr is None else _syscall_uint(addr, "addr", 64)

        def ksys_pread64() -> bytes | int:
            if pos < 0:
                raise refuse(errno.EINVAL, "vfs", "ksys_pread64", f"negative position {pos}")
            f = self._fdget(fd, "ksys_pread64")
            if not f.f_mode & FMODE_PREAD:
                raise refuse(errno.ESPIPE, "vfs", "ksys_pread64", f"{f.path}: no FMODE_PREAD")
            return self._read_to(self.kernel.vfs.vfs_read(f, count, pos, addr), addr)

        return self._call(ksys_pread64)

    def pwrite(self, fd: int, data: Any, offset: int, n: int | None = None) -> int:
        """pwrite64(2): as :meth:`write` at ``offset``, in ksys_pwrite64()'s order."""
        fd, pos = _syscall_uint(fd, "fd"), _s64(offset)
        src, count = self._user_src(data, n)

        def ksys_pwrite64() -> int:
            if pos < 0:
                raise refuse(errno.EINVAL, "vfs", "ksys_pwrite64", f"negative position {pos}")
            f = self._fdget(fd, "ksys_pwrite64")
            if not f.f_mode & FMODE_PWRITE:
                raise refuse(errno.ESPIPE, "vfs", "ksys_pwrite64", f"{f.path}: no FMODE_PWRITE")
            return self.kernel.vfs.vfs_write(f, count, pos, src)[0]

        return self._call(ksys_pwrite64)

    def _iovecs(self, iov: Any, vlen: int | None, write: bool) -> Any:
        """The vector: writable buffers (``os.readv``) or bytes-like ones
        (``os.writev``), or a user address of ``vlen`` struct iovec, read by
        import_iovec() when the call gets that far."""
        if isinstance(iov, int):
            if vlen is None:
                raise TypeError("a user address of iovecs needs vlen")
            return (iov & U64, _syscall_uint(vlen, "vlen", 64))
        views = []
        for b in iov:
            try:
                v = memoryview(b).cast("B")
            except TypeError:
                raise TypeError(f"a bytes-like object is required, not {type(b).__name__}") from None
            if not write and v.readonly:
                raise TypeError("readv() needs writable buffers")
            views.append(v)
        return views

    def _import_iovec(self, iov: Any) -> list[tuple[Any, int]]:
        """import_iovec(): (buffer or user address, length) per segment."""
        if not isinstance(iov, tuple):
            return [(v, len(v)) for v in iov]
        addr, vlen = iov
        raw = self.kernel.copy_from_user(self, addr, 16 * vlen) if vlen else b""
        segs, total = [], 0
        for i in range(vlen):
            base, length = int.from_bytes(raw[16 * i:16 * i + 8], "little"), \
                int.from_bytes(raw[16 * i + 8:16 * i + 16], "little")
            if length >> 63:  # iovec_from_user(): a negative ssize_t
                raise refuse(errno.EINVAL, "vfs", "iovec_from_user", f"iovec {i}: length {length:#x}")
            if not self.kernel.vfs.access_ok(base, length):
                raise refuse(errno.EFAULT, "vfs", "import_iovec", f"iovec {i}: {base:#x}+{length:#x}")
            length = min(length, 0x7FFFF000 - total)  # MAX_RW_COUNT over the vector
            total += length
            segs.append((base, length))
        return segs

    def _vfs_readv(self, f: Any, iov: Any, pos: int) -> int:
        vfs = self.kernel.vfs
        vlen = iov[1] if isinstance(iov, tuple) else len(iov)
        vfs.vfs_iov_check(f, False, vlen)
        segs = self._import_iovec(iov)
        total = sum(n for _, n in segs)
        if not total:
            return 0
        vfs.rw_verify_area(f, pos, total, "vfs_readv")
        data = f.f_op.read_iter(f, pos, total)
        done = 0
        for dst, n in segs:
            part = data[done:done + n]
            if isinstance(dst, int):
                self.kernel.copy_to_user(self, dst, part)
            else:
                dst[:len(part)] = part
            done += len(part)
            if done >= len(data):
                break
        return len(data)

    def _vfs_writev(self, f: Any, iov: Any, pos: int) -> tuple[int, int]:
        vfs = self.kernel.vfs
        vlen = iov[1] if isinstance(iov, tuple) else len(iov)
        vfs.vfs_iov_check(f, True, vlen)
        segs = self._import_iovec(iov)
        total = sum(n for _, n in segs)
        if not total:
            return 0, pos
        vfs.rw_verify_area(f, pos, total, "vfs_writev")
        data = b"".join(self.kernel.copy_from_user(self, s, n) if isinstance(s, int) else bytes(s[:n])
                        for s, n in segs)
        return vfs.write_at(f, pos, data)

    def readv(self, fd: int, iov: Any, vlen: int | None = None) -> int:
        """readv(2): fills the writable buffers ``iov`` in order (``os.readv``)
        or the ``vlen`` struct iovec at user address ``iov``; returns the count."""
        fd, v = _syscall_uint(fd, "fd"), self._iovecs(iov, vlen, False)

        def do_readv() -> int:
            f = self._fdget(fd, "do_readv")  # fdget_pos()
            done = self._vfs_readv(f, v, f.f_pos)
            f.f_pos += done
            return done

        return self._call(do_readv)

    def writev(self, fd: int, iov: Any, vlen: int | None = None) -> int:
        """writev(2): the buffers ``iov`` in order (``os.writev``), or the
        ``vlen`` struct iovec at user address ``iov``; returns the count."""
        fd, v = _syscall_uint(fd, "fd"), self._iovecs(iov, vlen, True)

        def do_writev() -> int:
            f = self._fdget(fd, "do_writev")  # fdget_pos()
            done, f.f_pos = self._vfs_writev(f, v, f.f_pos)
            return done

        return self._call(do_writev)

    def preadv(self, fd: int, iov: Any, offset: int, vlen: int | None = None) -> int:
        """preadv(2): :meth:`readv` at ``offset`` (do_preadv(): a negative
        offset is EINVAL first, no FMODE_PREAD ESPIPE)."""
        fd, v, pos = _syscall_uint(fd, "fd"), self._iovecs(iov, vlen, False), _s64(offset)

        def do_preadv() -> int:
            if pos < 0:
                raise refuse(errno.EINVAL, "vfs", "do_preadv", f"negative position {pos}")
            f = self._fdget(fd, "do_preadv")
            if not f.f_mode & FMODE_PREAD:
                raise refuse(errno.ESPIPE, "vfs", "do_preadv", f"{f.path}: no FMODE_PREAD")
            return self._vfs_readv(f, v, pos)

        return self._call(do_preadv)

    def pwritev(self, fd: int, iov: Any, offset: int, vlen: int | None = None) -> int:
        """pwritev(2): :meth:`writev` at ``offset``, in do_pwritev()'s order."""
        fd, v, pos = _syscall_uint(fd, "fd"), self._iovecs(iov, vlen, True), _s64(offset)

        def do_pwritev() -> int:
            if pos < 0:
                raise refuse(errno.EINVAL, "vfs", "do_pwritev", f"negative position {pos}")
            f = self._fdget(fd, "do_pwritev")
            if not f.f_mode & FMODE_PWRITE:
                raise refuse(errno.ESPIPE, "vfs", "do_pwritev", f"{f.path}: no FMODE_PWRITE")
            return self._vfs_writev(f, v, pos)[0]

        return self._call(do_pwritev)

    def lseek(self, fd: int, offset: int, whence: int) -> int:
        """lseek(2) (unsigned int fd, off_t offset, unsigned int whence): the
        new position.  ksys_lseek(): the fd, then whence above SEEK_HOLE is
        EINVAL, then vfs_llseek(): the SGX files have no llseek, so
        ESPIPE (since 6.0 do_dentry_open() leaves them without FMODE_LSEEK;
        5.11 fell back to no_llseek())."""
        fd, off, whence = _syscall_uint(fd, "fd"), _s64(offset), _syscall_uint(whence, "whence")

        def ksys_lseek() -> int:
            f = self._fdget(fd, "ksys_lseek")  # fdget_pos()
            if whence > SEEK_MAX:
                raise refuse(errno.EINVAL, "vfs", "ksys_lseek", f"whence {whence} above SEEK_MAX")
            return self.kernel.vfs_llseek(f, off, whence)

        return self._call(ksys_lseek)

    def fcntl(self, fd: int, cmd: int, arg: int = 0) -> int:
        """fcntl(2) (unsigned int fd, unsigned int cmd, unsigned long arg),
        the commands the model has: F_GETFL (the open's access mode and
        status flags as the file holds them: O_LARGEFILE added by open() on
        x86-64, O_CREAT/O_EXCL/O_NOCTTY/O_TRUNC and O_CLOEXEC dropped) and
        F_SETFL (only O_APPEND, O_NONBLOCK, O_DIRECT, O_NOATIME change:
        setfl()).  Other commands are a ValueError (not modelled)."""
        fd, cmd = _syscall_uint(fd, "fd"), _syscall_uint(cmd, "cmd")
        argi = _s32(_syscall_uint(arg, "arg", 64))  # do_fcntl(): int argi = (int)arg
        if cmd not in (F_GETFL, F_SETFL):
            raise ValueError(f"fcntl command {cmd} is not modelled (F_GETFL and F_SETFL are)")

        def sys_fcntl() -> int:
            f = self.files.get(fd)  # fdget_raw(): O_PATH files too
            if f is None:
                raise refuse(errno.EBADF, "vfs", "fcntl", f"fd {fd} not open")
            if f.f_mode & FMODE_PATH and cmd != F_GETFL:  # check_fcntl_cmd()
                raise refuse(errno.EBADF, "vfs", "check_fcntl_cmd",
                             f"fd {fd} is an O_PATH file: command {cmd} not allowed")
            # do_fcntl()
            if cmd == F_GETFL:
                return f.f_flags
            return self.kernel.vfs.setfl(f, argi & U32)

        return self._call(sys_fcntl)

    def stat(self, path: str | None = None, fd: int | None = None) -> Stat:
        """stat(2) of ``path``, or fstat(2) of ``fd`` (unsigned int)."""
        if fd is not None:
            fd = _syscall_uint(fd, "fd")
        else:
            path = _path_arg(path, "stat")

        def sys_stat() -> Stat:
            if fd is not None:
                f = self.files.get(fd)  # vfs_fstat(): fdget_raw(), O_PATH files too
                if f is None:
                    raise refuse(errno.EBADF, "vfs", "vfs_fstat", f"fd {fd} not open")
                ino = f.inode
            else:
                vfs = self.kernel.vfs
                fname = vfs.getname(path)
                norm, slash, _ = vfs.path_walk(fname, "vfs_statx", self._path_init(AT_FDCWD, fname))
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
        # copy_fs(): a copy of the fs_struct, umask and working directory
        child.fs_umask, child.fs_pwd = self.fs_umask, self.fs_pwd
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
