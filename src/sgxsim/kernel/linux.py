"""The generic Linux kernel of the model: the mm, the VFS, the LSM hook points,
tasks.  Kernels with the SGX driver and the designs subclass it."""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.hw.cpu import Cpu
from sgxsim.kernel.errors import ENOIOCTLCMD, ERESTARTSYS, refuse
from sgxsim.kernel.mm import (
    FaultMixin,
    FileVmOps,
    MmapMixin,
    MprotectMixin,
    MremapMixin,
    ShmemVmOps,
)
from sgxsim.kernel.mm.flags import (
    FMODE_CAN_ODIRECT,
    FMODE_CAN_READ,
    FMODE_CAN_WRITE,
    FMODE_LSEEK,
    FMODE_PATH,
    FMODE_READ,
    FMODE_WRITE,
)
from sgxsim.kernel.mm.mseal import MsealMixin
from sgxsim.kernel.mm.truncate import TruncateMixin
from sgxsim.kernel.registry import register
from sgxsim.kernel.security import Security, make_policy
from sgxsim.kernel.sys import SysMixin
from sgxsim.kernel.vfs import Vfs
from sgxsim.trace import Trace

# include/uapi/linux/major.h, include/linux/miscdevice.h, include/linux/kdev_t.h
MISC_MAJOR = 10
MISC_DYNAMIC_MINOR = 255
MINORMASK = (1 << 20) - 1


def new_encode_dev(major: int, minor: int) -> int:
    """new_encode_dev(): the dev_t that stat() reports (glibc's major()/minor()
    decode it)."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


@register("linux")
class Linux(MmapMixin, MprotectMixin, MremapMixin, FaultMixin, MsealMixin, TruncateMixin,
            SysMixin):
    """Linux without SGX support (the base of every kernel and design)."""

    name = "linux"
    # The release whose mm user space sees: it decides which mm interfaces
    # exist (MDWE 6.3, mseal 6.10, multi-VMA mremap moves 6.17).  The generic
    # kernel is this machine's, 6.18, the differential test's reference; the
    # rest of the mm follows 6.18 whatever the release (docs/linux-6.12.md).
    mm_release: tuple[int, int] = (6, 18)

    def mm_version(self) -> str:
        return ".".join(map(str, self.mm_release))

    def __init__(self, cpu: Cpu, *, policy: Any = "none", trace: Trace | None = None):
        self.cpu = cpu
        self.trace = trace if trace is not None else cpu.trace
        self.security = Security(make_policy(policy))
        self.vfs = Vfs(self)
        self.file_vm_ops = FileVmOps(self)
        self.shmem_vm_ops = ShmemVmOps(self)
        self.page_refs: dict[int, int] = {}  # anonymous frames and their mappers
        self.zero_pfn = cpu.phys.alloc_frame()
        self.tasks: list[Any] = []
        self.misc_minors: set[int] = set()  # the dynamic misc minors handed out
        self.current: Any = None
        self.next_pid = 1
        self._last_fault_why = ""
        self.oopses: list[str] = []  # the kernel log's BUG reports
        # What the oopsing paths held when they died: never given back (an
        # oops does not unwind), so it stays in use for the machine's life.
        self.oops_held: list[Any] = []
        self.boot()

    def boot(self) -> None:
        """Start-up: the filesystem layout.  Subclasses register drivers."""
        for d in ("/dev", "/tmp", "/home/user"):
            self.vfs.mkdir(d)

    # -- services drivers use ---------------------------------------------------------------
    def misc_register(self, path: str, fops: Any, label: str = "device_t") -> None:
        """misc_register() of a MISC_DYNAMIC_MINOR device: a character device
        node backed by ``fops``, numbered MISC_MAJOR and the next free minor."""
        minor = self.misc_minor_alloc()
        ino = self.vfs.mknod_chr(path, fops, label=label)
        ino.rdev = new_encode_dev(MISC_MAJOR, minor)

    def misc_deregister(self, path: str) -> None:
        """misc_deregister(): the node goes (devtmpfs removes it) and its
        minor is free for the next misc_register()."""
        ino = self.vfs.inodes.pop(path)
        ino.nlink = 0
        dev = ino.rdev
        self.misc_minors.discard((dev & 0xFF) | ((dev >> 12) & ~0xFF))  # MINOR(new_decode_dev())

    def misc_minor_alloc(self) -> int:
        """misc_minor_alloc(): the lowest free minor above MISC_DYNAMIC_MINOR
        (an IDA up to MINORMASK; /proc/misc on this 6.18 machine shows 256 on)."""
        taken = self.misc_minors
        minor = MISC_DYNAMIC_MINOR + 1
        while minor in taken:
            minor += 1
        if minor > MINORMASK:
            raise refuse(errno.EBUSY, "kernel", "misc_register", "no free misc minor")
        taken.add(minor)
        return minor

    # -- files: what the file operations allow (fs/open.c, fs/read_write.c) ------------------
    def dentry_open_fmode(self, file: Any) -> None:
        """do_dentry_open() after ->open: FMODE_CAN_READ/WRITE only with a
        read/write operation, FMODE_LSEEK dropped without ->llseek (since
        6.0: the SGX files have none), FMODE_CAN_ODIRECT with the mapping's
        direct_IO (since 5.19)."""
        fops = file.f_op
        if file.f_mode & FMODE_READ and fops.read_iter is not None:
            file.f_mode |= FMODE_CAN_READ
        if file.f_mode & FMODE_WRITE and fops.write_iter is not None:
            file.f_mode |= FMODE_CAN_WRITE
        if file.f_mode & FMODE_LSEEK and fops.llseek is None:
            file.f_mode &= ~FMODE_LSEEK
        if fops.direct_io:
            file.f_mode |= FMODE_CAN_ODIRECT

    def file_can_odirect(self, file: Any) -> bool:
        """Whether O_DIRECT is allowed (do_dentry_open(), setfl()): FMODE_CAN_ODIRECT."""
        return bool(file.f_mode & FMODE_CAN_ODIRECT)

    def vfs_llseek(self, file: Any, offset: int, whence: int) -> int:
        """vfs_llseek(): a file without FMODE_LSEEK (do_dentry_open() drops
        it without ->llseek: the SGX files) cannot seek."""
        if not file.f_mode & FMODE_LSEEK:
            raise refuse(errno.ESPIPE, "vfs", "vfs_llseek",
                         f"{file.path}: not seekable (no llseek in its file operations)")
        return file.f_op.llseek(file, offset, whence)

    def signal_pending(self, task: Any) -> bool:
        return bool(task.pending_signals)

    def fget(self, task: Any, fd: int) -> Any:
        """fget(), fdget(): the file behind ``fd`` (an unsigned int), or None;
        an O_PATH file is none (fget_raw() would find it)."""
        f = task.files.get(fd)
        return None if f is None or f.f_mode & FMODE_PATH else f

    def fput(self, file: Any) -> None:
        """fput(): the last reference runs f_op->release."""
        file.refcount -= 1
        if file.refcount == 0:
            if file.f_op.release is not None:
                file.f_op.release(file.inode, file)
            if file.inode.private or not file.inode.nlink:  # no name keeps it: iput_final()
                self.evict_inode(file.inode)

    def evict_inode(self, inode: Any) -> None:
        # iput_final() -> evict() -> shmem_evict_inode(): the object of a shared
        # anonymous mapping has no name (shmem_kernel_file_setup()), so its
        # last file reference is its last reference: truncate the page cache.
        for pfn in inode.pages.values():
            self.cpu.phys.free_frame(pfn)
        inode.pages.clear()

    def mmget_not_zero(self, mm: Any) -> bool:
        return mm.users > 0

    def mm_cpumask(self, mm: Any) -> set[int]:
        return {lp.id for lp in self.cpu.lps if lp.cr3 is mm.pgtable}

    def send_ipis(self, cpus: set[int]) -> None:
        self.cpu.ipi(cpus)

    def mmu_notifier_register(self, obj: Any, mm: Any) -> None:
        mm.notifiers.append(obj)

    def mmu_notifier_unregister(self, obj: Any, mm: Any) -> None:
        if obj in mm.notifiers:
            mm.notifiers.remove(obj)

    def all_page_tables(self) -> list[Any]:
        """The page tables a CPU may still walk: not those of a task asleep
        for ever in do_exit() (make_task_dead()), which never loads its CR3
        again; its exit_mmap() stopped after the mmu notifiers, so the
        driver no longer zaps its PTEs."""
        return [t.mm.pgtable for t in self.tasks
                if t.mm is not None and (t.blocked is None or t.blocked.rule != "exit_mmap")]

    def warn(self, msg: str) -> None:
        self.trace.note("kernel", "WARN", "warn", msg)

    def oops(self, msg: str, held: tuple[Any, ...] = (), *, mmap_locked: bool = False) -> None:
        """page_fault_oops() / oops_end(): a kernel bug hit in the current
        task's context; the log keeps it and make_task_dead() ends the task
        (raised as :class:`~sgxsim.kernel.errors.Oops`, a SIGKILL that no
        fixup turns into an errno or a vDSO report).  An oops does not
        unwind: ``held`` (an EPC page the dying path allocated) is never given
        back, and neither is a lock it held.  ``mmap_locked``: the path held
        its mm's mmap_lock for read (every page fault does); then the task
        never finishes exiting (:meth:`make_task_dead`)."""
        import signal

        from sgxsim.kernel.errors import Oops
        from sgxsim.trace import Decision

        self.oopses.append(msg)
        self.oops_held.extend(held)
        why = Decision("kernel", "oops", "SIGKILL", msg)
        self.trace.refuse(why)  # the call ends with the task: what its caller gets
        task = self.current
        if task is not None and task.alive:
            self.make_task_dead(task, mmap_locked)
        raise Oops(signal.SIGKILL, 0, 0, why)

    def make_task_dead(self, task: Any, mmap_locked: bool) -> None:
        """make_task_dead() -> do_exit() of a task that oopsed.  It never
        returns to user space.  do_exit() runs exit_mm() before exit_files();
        exit_mm() -> mmput() -> exit_mmap() first runs mmu_notifier_release()
        (the SGX driver drops the mm from the enclave's mm_list), then takes
        mmap_write_lock(), which the oopsed fault's read hold (never released)
        makes wait for ever: the task sleeps in D state, unreaped, with its
        VMAs, page tables and open files."""
        from sgxsim.trace import Decision

        if not mmap_locked:
            task.do_exit()
            return
        mm = task.mm
        mm.users -= 1  # mmput()
        if mm.users:
            # Another user keeps the mm: exit_mmap() does not run here and
            # do_exit() goes on (the model's tasks never share an mm).
            task.do_exit(mm_put=False)
            return
        for n in list(mm.notifiers):  # exit_mmap(): mmu_notifier_release()
            n.release(mm)
        self.block_task(task, Decision(
            "mm", "exit_mmap", "blocked",
            f"pid {task.pid} oopsed: do_exit() waits for ever in mmap_write_lock(), the mmap_lock "
            "the oopsed fault read-held is never released; the task keeps its VMAs and files"))

    def block_task(self, task: Any, why: Any, raise_: bool = False) -> None:
        """The task sleeps for ever (TASK_UNINTERRUPTIBLE on a lock no one
        will release): it never runs user code again and is never reaped; it
        keeps its mm and files.  With ``raise_``, the caller's call ends here
        (:class:`~sgxsim.kernel.errors.TaskBlocked`): it never returns."""
        from sgxsim.kernel.errors import TaskBlocked

        self.trace.add(why)
        task.alive = False
        task.blocked = why
        if task.lp.cr3 is task.mm.pgtable:
            task.lp.cr3 = None  # off the CPU
        if raise_:
            raise TaskBlocked(task.pid, why)

    # -- syscall boundary ------------------------------------------------------------------
    @staticmethod
    def syscall_errno(e: OSError) -> OSError:
        """Kernel-internal errnos never reach user space."""
        if e.errno == ERESTARTSYS:
            out = refuse(errno.EINTR, "kernel", "signal", "ERESTARTSYS: interrupted by a signal")
        elif e.errno == ENOIOCTLCMD:
            out = refuse(errno.ENOTTY, "kernel", "vfs_ioctl", "ENOIOCTLCMD: unknown ioctl")
        else:
            return e
        out.inner = getattr(e, "why", None)  # type: ignore[attr-defined]
        return out
