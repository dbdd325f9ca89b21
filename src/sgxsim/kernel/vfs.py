"""A small VFS: directories, regular files with contents, mounts (noexec),
character devices backed by a driver's file_operations, and struct file with
the reference counting the SGX driver's release() depends on."""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm.flags import (
    _O_TMPFILE,
    FASYNC,
    FMODE_CAN_READ,
    FMODE_CAN_WRITE,
    FMODE_LSEEK,
    FMODE_PATH,
    FMODE_PREAD,
    FMODE_PWRITE,
    FMODE_READ,
    FMODE_WRITE,
    O_ACCMODE,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECT,
    O_DIRECTORY,
    O_EXCL,
    O_NOCTTY,
    O_NOFOLLOW,
    O_PATH,
    O_TRUNC,
    PAGE_SHIFT,
    PAGE_SIZE,
    SETFL_MASK,
    VALID_OPEN_FLAGS,
)
from sgxsim.kernel.mm.vma import FileOperations

S_IFREG, S_IFDIR, S_IFCHR = 0o100000, 0o040000, 0o020000
S_IALLUGO = 0o7777
# include/linux/fs.h: the permissions a caller asks of inode_permission()
MAY_EXEC, MAY_WRITE, MAY_READ, MAY_APPEND = 0x1, 0x2, 0x4, 0x8
# ACC_MODE(): O_RDONLY asks MAY_READ, O_WRONLY MAY_WRITE, O_RDWR and 3 both
ACC_MODE = (MAY_READ, MAY_WRITE, MAY_READ | MAY_WRITE, MAY_READ | MAY_WRITE)
O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC
PATH_MAX, NAME_MAX = 4096, 255
SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = range(5)
SEEK_MAX = SEEK_HOLE
MAX_LFS_FILESIZE = (1 << 63) - 1  # the model's regular files: tmpfs's s_maxbytes
# include/linux/fs.h: MAX_RW_COUNT, the most one read or write moves
MAX_RW_COUNT = 0x7FFFFFFF & ~(PAGE_SIZE - 1)
UIO_MAXIOV = 1024


class Inode:
    """struct inode: a regular file's bytes and page cache, or a device."""

    __slots__ = ("ino", "mode", "data", "fops", "label", "pages", "private", "rdev", "i_size",
                 "reader", "nlink")

    def __init__(self, ino: int, mode: int, data: bytes = b"", fops: Any = None,
                 label: str = "unlabeled_t", private: bool = False, size: int | None = None):
        self.ino = ino
        self.mode = mode
        self.data = bytearray(data)
        # i_size when it exceeds the stored bytes: the rest reads as zeros and
        # costs nothing (a shmem object as large as its mapping, say).
        self.i_size = size
        self.fops = fops
        self.label = label
        self.pages: dict[int, int] = {}  # page cache: file page index -> RAM pfn
        self.private = private  # S_PRIVATE (kernel-internal, e.g. shmem of /dev/zero)
        self.rdev = 0
        self.reader: Any = None  # kernel.readerfs: pages produced on each fault
        self.nlink = 1  # names in the namespace (0: an O_TMPFILE file)

    @property
    def size(self) -> int:
        return max(len(self.data), self.i_size or 0)

    def is_reg(self) -> bool:
        return self.mode & 0o170000 == S_IFREG

    def is_dir(self) -> bool:
        return self.mode & 0o170000 == S_IFDIR

    def is_chr(self) -> bool:
        return self.mode & 0o170000 == S_IFCHR


class RegularFileOps(FileOperations):
    """generic_file_* for regular files: mmap installs the page-cache vm_ops;
    read and write go through the same page cache (a page already cached,
    mapped shared perhaps, is the file's current contents)."""

    direct_io = True  # ext4's and (since 6.6) tmpfs's regular files take O_DIRECT

    def __init__(self, kernel: Any):
        self.kernel = kernel

    def mmap(self, file: File, vma: Any) -> None:
        # generic_file_mmap(): vma->vm_ops = &generic_file_vm_ops
        vma.vm_ops = self.kernel.file_vm_ops

    def read_iter(self, file: File, pos: int, count: int) -> bytes:
        """filemap_read(): up to ``count`` bytes from ``pos``, none at or past EOF."""
        ino = file.inode
        end = min(pos + count, ino.size)
        out = bytearray()
        frames = self.kernel.cpu.phys.frames
        while pos < end:
            idx, off = pos >> PAGE_SHIFT, pos & (PAGE_SIZE - 1)
            take = min(end - pos, PAGE_SIZE - off)
            pfn = ino.pages.get(idx)
            if pfn is not None:
                out += frames[pfn][off:off + take]
            else:
                out += bytes(ino.data[pos:pos + take]).ljust(take, b"\0")
            pos += take
        return bytes(out)

    def write_iter(self, file: File, pos: int, data: bytes) -> int:
        """generic_perform_write(): into the cached page if there is one, else
        into the file's bytes; i_size grows to the end of the write."""
        ino = file.inode
        frames = self.kernel.cpu.phys.frames
        end, done = pos + len(data), 0
        while pos < end:
            idx, off = pos >> PAGE_SHIFT, pos & (PAGE_SIZE - 1)
            take = min(end - pos, PAGE_SIZE - off)
            pfn = ino.pages.get(idx)
            if pfn is not None:
                frames[pfn][off:off + take] = data[done:done + take]
            else:
                if len(ino.data) < pos:
                    ino.data.extend(bytes(pos - len(ino.data)))
                ino.data[pos:pos + take] = data[done:done + take]
            pos += take
            done += take
        if end > ino.size:
            ino.i_size = end
        return done

    def llseek(self, file: File, offset: int, whence: int) -> int:
        """generic_file_llseek(): SEEK_DATA/SEEK_HOLE see one extent up to EOF."""
        eof = file.inode.size
        if whence == SEEK_END:
            offset += eof
        elif whence == SEEK_CUR:
            if offset == 0:
                return file.f_pos
            offset += file.f_pos
        elif whence == SEEK_DATA:
            if offset < 0 or offset >= eof:  # compared unsigned
                raise refuse(errno.ENXIO, "vfs", "generic_file_llseek_size",
                             f"SEEK_DATA from {offset}: no data at or after it (size {eof})")
        elif whence == SEEK_HOLE:
            if offset < 0 or offset >= eof:
                raise refuse(errno.ENXIO, "vfs", "generic_file_llseek_size",
                              f"SEEK_HOLE from {offset}: at or past the end (size {eof})")
            offset = eof
        # vfs_setpos()
        if offset < 0 or offset > MAX_LFS_FILESIZE:
            raise refuse(errno.EINVAL, "vfs", "vfs_setpos", f"offset {offset} out of range")
        file.f_pos = offset
        return offset


class File:
    """struct file."""

    __slots__ = ("inode", "path", "f_mode", "f_flags", "f_op", "private_data", "refcount",
                 "mount", "f_pos")

    def __init__(self, inode: Inode, path: str, f_mode: int, f_flags: int, f_op: Any,
                 mount: Mount):
        self.inode = inode
        self.path = path
        self.f_mode = f_mode
        self.f_flags = f_flags
        self.f_op = f_op
        self.private_data: Any = None
        self.refcount = 1
        self.mount = mount
        self.f_pos = 0

    def __repr__(self) -> str:
        return f"File({self.path!r})"


class OpenFlags:
    """struct open_flags: what build_open_flags() made of open()'s arguments."""

    __slots__ = ("open_flag", "mode", "acc_mode")

    def __init__(self, open_flag: int, mode: int, acc_mode: int):
        self.open_flag = open_flag
        self.mode = mode
        self.acc_mode = acc_mode  # the MAY_* permissions the open asks for


class Mount:
    __slots__ = ("path", "noexec")

    def __init__(self, path: str, noexec: bool = False):
        self.path = path
        self.noexec = noexec


class Vfs:
    """The namespace: absolute paths to inodes, and mounts by prefix."""

    def __init__(self, kernel: Any):
        self.kernel = kernel
        self.inodes: dict[str, Inode] = {}
        self.mounts: dict[str, Mount] = {"/": Mount("/")}
        self.next_ino = 2
        self.reg_ops = RegularFileOps(kernel)
        self.mkdir("/")

    def _inode(self, mode: int, **kw: Any) -> Inode:
        ino = Inode(self.next_ino, mode, **kw)
        self.next_ino += 1
        return ino

    @staticmethod
    def _parent(path: str) -> str:
        return path.rsplit("/", 1)[0] or "/"

    @staticmethod
    def _setup_name(path: str) -> None:
        # A name in the namespace is a C string: one with a NUL inside could
        # never be looked up (getname() ends the name there).
        if "\0" in path:
            raise ValueError(f"embedded null byte in {path!r}")

    def mkdir(self, path: str, label: str = "unlabeled_t") -> Inode:
        if path not in self.inodes:
            self._setup_name(path)
            if path != "/":
                self.mkdir(self._parent(path))
            self.inodes[path] = self._inode(S_IFDIR | 0o755, label=label)
        return self.inodes[path]

    def create_file(self, path: str, data: bytes = b"", mode: int = 0o644,
                    label: str = "unlabeled_t") -> Inode:
        self._setup_name(path)
        self.mkdir(self._parent(path))
        ino = self._inode(S_IFREG | mode, data=data, label=label)
        self.inodes[path] = ino
        return ino

    def mknod_chr(self, path: str, fops: Any, mode: int = 0o666,
                  label: str = "device_t") -> Inode:
        """A character device node whose file operations are ``fops``."""
        self._setup_name(path)
        self.mkdir(self._parent(path))
        ino = self._inode(S_IFCHR | mode, fops=fops, label=label)
        self.inodes[path] = ino
        return ino

    def mount(self, path: str, noexec: bool = False) -> Mount:
        self.mkdir(path)
        m = self.mounts[path] = Mount(path, noexec)
        return m

    def mount_of(self, path: str) -> Mount:
        best = self.mounts["/"]
        for mp, m in self.mounts.items():
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best.path):
                best = m
        return best

    def label(self, path: str, label: str) -> None:
        self.inodes[path].label = label

    # -- path walk ------------------------------------------------------------------------
    def current_pwd(self) -> str:
        """current->fs->pwd: the working directory of the calling task (a
        kernel thread's is init's, the root)."""
        current = self.kernel.current
        return current.fs_pwd if current is not None else "/"

    def path_walk(self, path: str, rule: str, start: str | None = None) -> tuple[str, bool, bool]:
        """link_path_walk(): ``path`` without repeated slashes, "." and ".."
        (".." of the root is the root), and how its last component ended: a
        name followed by a slash, or a dot component (both name a directory).
        Every component before the last must be a directory that exists.  A
        relative name starts at ``start`` (path_init(): a dirfd's directory),
        by default the caller's working directory (AT_FDCWD)."""
        if not isinstance(path, str):
            raise refuse(errno.ENOENT, "vfs", rule, f"{path!r}: not a path")
        if not path.startswith("/"):
            # path_init(): the start directory is an existing directory, so
            # walking from it is walking its absolute name (the model has no
            # symlinks, renames or removals to make the two differ).
            path = (start if start is not None else self.current_pwd()).rstrip("/") + "/" + path
        comps = [c for c in path.split("/") if c]
        walked: list[str] = []
        for c in comps[:-1]:
            if c == "..":
                if walked:
                    walked.pop()
            elif c != ".":
                walked.append(c)
                ino = self.lookup("/" + "/".join(walked), rule)
                if ino is None:
                    raise refuse(errno.ENOENT, "vfs", rule, f"{path}: no directory {'/'.join(walked)}")
                if not ino.is_dir():  # may_lookup() of a component that is no directory
                    raise refuse(errno.ENOTDIR, "vfs", rule,
                                 f"{path}: /{'/'.join(walked)} is not a directory")
        last = comps[-1] if comps else ""
        dots = last in (".", "..")
        if last == "..":
            if walked:
                walked.pop()
        elif last and not dots:
            walked.append(last)
        slash = bool(last) and not dots and path.endswith("/")
        return "/" + "/".join(walked), slash, dots

    # -- open ---------------------------------------------------------------------------
    @staticmethod
    def build_open_how(flags: int, mode: int) -> tuple[int, int]:
        """build_open_how(): open() and openat() drop the flags they do not
        know, O_PATH drops all but a few, and a mode without a create flag."""
        flags &= VALID_OPEN_FLAGS
        if flags & O_PATH:
            flags &= O_PATH_FLAGS
        mode &= S_IALLUGO
        if not flags & (O_CREAT | _O_TMPFILE):
            mode = 0
        return flags, mode

    @staticmethod
    def build_open_flags(flags: int, mode: int) -> OpenFlags:
        """build_open_flags(): refuse impossible combinations; the permission
        the open asks for (ACC_MODE(), O_TRUNC asking MAY_WRITE too)."""
        acc_mode = ACC_MODE[flags & O_ACCMODE]
        flags &= ~O_CLOEXEC
        if flags & ~VALID_OPEN_FLAGS:  # openat2() passes its flags unfiltered
            raise refuse(errno.EINVAL, "vfs", "build_open_flags", f"unknown flags {flags:#o}")
        if flags & (O_CREAT | _O_TMPFILE):
            if mode & ~S_IALLUGO:
                raise refuse(errno.EINVAL, "vfs", "build_open_flags", f"mode {mode:#o}")
        elif mode:
            raise refuse(errno.EINVAL, "vfs", "build_open_flags",
                         f"mode {mode:#o} without O_CREAT or O_TMPFILE")
        if flags & (O_DIRECTORY | O_CREAT) == O_DIRECTORY | O_CREAT:
            raise refuse(errno.EINVAL, "vfs", "build_open_flags", "O_CREAT with O_DIRECTORY")
        if flags & _O_TMPFILE:
            if not flags & O_DIRECTORY:
                raise refuse(errno.EINVAL, "vfs", "build_open_flags",
                             "O_TMPFILE without O_DIRECTORY")
            if not acc_mode & MAY_WRITE:
                raise refuse(errno.EINVAL, "vfs", "build_open_flags",
                             "O_TMPFILE without write access")
        if flags & O_PATH:
            if flags & ~O_PATH_FLAGS:
                raise refuse(errno.EINVAL, "vfs", "build_open_flags",
                             f"O_PATH with {flags & ~O_PATH_FLAGS:#o}")
            acc_mode = 0
        if flags & O_TRUNC:
            acc_mode |= MAY_WRITE
        if flags & O_APPEND:
            acc_mode |= MAY_APPEND
        return OpenFlags(flags, mode | S_IFREG if flags & (O_CREAT | _O_TMPFILE) else 0, acc_mode)

    @staticmethod
    def getname(path: str) -> str:
        """getname(): the name copied in from user memory; an empty one is
        ENOENT, one that fills PATH_MAX bytes without ending ENAMETOOLONG.
        ``path`` stands for the bytes at the user pointer: the name ends at
        the first NUL, as strncpy_from_user() stops there (the Python API
        refuses such a str before the call, as ``os`` does)."""
        path = path.split("\0", 1)[0]  # strncpy_from_user()
        n = len(path.encode("utf-8", "surrogateescape"))
        if n == 0:
            raise refuse(errno.ENOENT, "vfs", "getname", "empty path")
        if n >= PATH_MAX:
            raise refuse(errno.ENAMETOOLONG, "vfs", "getname", f"path of {n} bytes (PATH_MAX {PATH_MAX})")
        return path

    def vfs_prepare_mode(self, mode: int) -> int:
        """vfs_prepare_mode() of a regular file (O_CREAT, O_TMPFILE):
        mode_strip_sgid() strips nothing here (no owners or groups are
        modelled: the caller is treated as root, CAP_FSETID), then
        mode_strip_umask() clears the caller's umask bits (no filesystem of
        the model has POSIX ACLs, which would defer that to
        posix_acl_create(): with no default ACL, the same result)."""
        current = self.kernel.current
        umask = current.fs_umask if current is not None else 0o022  # init_fs's
        return mode & ~umask

    def lookup(self, path: str, rule: str) -> Inode | None:
        """The inode named ``path`` (its directory already walked), or None;
        a name the filesystem cannot hold is ENAMETOOLONG (simple_lookup(),
        ext4_lookup(): longer than NAME_MAX)."""
        ino = self.inodes.get(path)
        if ino is None and len(path.rsplit("/", 1)[-1].encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise refuse(errno.ENAMETOOLONG, "vfs", rule, f"{path}: a name longer than NAME_MAX")
        return ino

    def open(self, path: str, flags: int, mode: int = 0o644) -> File:
        """filp_open(): the flags checked, then the file opened."""
        return self.do_filp_open(self.getname(path), self.build_open_flags(
            *self.build_open_how(flags, mode)))

    def do_filp_open(self, path: str, op: OpenFlags, start: str | None = None) -> File:
        """path_openat(): resolve (a relative name from ``start``, by default
        the working directory), create, check the access asked, open."""
        flags = op.open_flag
        path, slash, _ = self.path_walk(path, "path_openat", start)
        if flags & _O_TMPFILE:
            return self.do_tmpfile(path, op)
        if flags & O_PATH:
            return self.do_o_path(path, slash, flags)
        if flags & O_CREAT and slash:
            raise refuse(errno.EISDIR, "vfs", "open_last_lookups",
                         f"{path}/: O_CREAT of a name that ends in a slash")
        acc_mode = op.acc_mode
        ino = self.lookup(path, "lookup_open")
        created = False
        if ino is None:
            if not flags & O_CREAT:
                raise refuse(errno.ENOENT, "vfs", "path_openat", f"{path}: no such file")
            parent = self.inodes.get(self._parent(path))
            if parent is None or not parent.is_dir():
                raise refuse(errno.ENOENT, "vfs", "path_openat", "parent directory missing")
            # lookup_open() -> vfs_prepare_mode(); the type is S_IFREG
            ino = self.create_file(path, mode=self.vfs_prepare_mode(op.mode) & S_IALLUGO)
            created = True
            acc_mode = 0  # do_open(): a file just created is not checked again
        elif flags & O_CREAT and flags & O_EXCL:
            raise refuse(errno.EEXIST, "vfs", "may_o_create", f"{path} exists")
        elif flags & O_CREAT and ino.is_dir():
            raise refuse(errno.EISDIR, "vfs", "do_open", f"{path} is a directory (O_CREAT)")
        if (flags & O_DIRECTORY or slash) and not ino.is_dir():
            raise refuse(errno.ENOTDIR, "vfs", "path_openat", f"{path} is not a directory")
        # may_open(): a directory is never opened for writing (O_TRUNC asks
        # that too).  The model has no owners or DAC permission bits, so
        # inode_permission() grants the rest of acc_mode.
        if ino.is_dir() and acc_mode & MAY_WRITE:
            raise refuse(errno.EISDIR, "vfs", "may_open", f"{path} is a directory")
        f = self.vfs_open(ino, path, flags)
        if ino.is_reg() and flags & O_TRUNC and not created:
            # do_open() -> handle_truncate() -> do_truncate(0): whatever
            # f_mode the file got; the page cache goes too, and every mapping
            # of the file loses its pages (a later access is SIGBUS)
            self.kernel.truncate_setsize(ino, 0)
        return f

    def vfs_open(self, ino: Inode, path: str, flags: int) -> File:
        """do_dentry_open(): f_mode from the access mode (OPEN_FMODE(): 3,
        which asked for reading and writing, gets neither), then f_op->open;
        then what the file operations allow (the kernel's dentry_open_fmode():
        the SGX files have no read, write or llseek) and O_DIRECT refused
        without direct_IO."""
        f_mode = (flags + 1) & O_ACCMODE  # FMODE_READ is 1, FMODE_WRITE 2
        fops = ino.fops if ino.fops is not None else (
            self.reg_ops if ino.is_reg() else FileOperations())
        # normally all three; ->open() may clear them (nonseekable_open())
        f_mode |= FMODE_LSEEK | FMODE_PREAD | FMODE_PWRITE
        f = File(ino, path, f_mode, flags, fops, self.mount_of(path))
        if fops.open is not None:
            fops.open(ino, f)
        k = self.kernel
        k.dentry_open_fmode(f)
        f.f_flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC)
        if f.f_flags & O_DIRECT and not k.file_can_odirect(f):
            # the file is open (->open ran): path_openat()'s fput() releases it
            self.kernel.fput(f)
            raise refuse(errno.EINVAL, "vfs", "do_dentry_open",
                         f"{path}: O_DIRECT on a file whose mapping has no direct_IO")
        return f

    # -- read, write, lseek, fcntl (fs/read_write.c, fs/fcntl.c) -----------------------------
    @staticmethod
    def access_ok(addr: int | None, count: int) -> bool:
        """access_ok(): the user range ends below TASK_SIZE_MAX (a buffer of
        the caller's, ``addr`` None, always is)."""
        if addr is None:
            return True
        from sgxsim.kernel.mm.flags import TASK_SIZE
        return addr + count <= TASK_SIZE

    @staticmethod
    def rw_verify_area(file: File, pos: int | None, count: int, rule: str) -> None:
        """rw_verify_area(): a position (none for a stream) and count whose
        sum stays a valid loff_t; the model has no locks or LSM file hook here."""
        if pos is not None:
            if pos < 0:
                raise refuse(errno.EINVAL, "vfs", "rw_verify_area", f"{rule}: negative position {pos}")
            if pos + count > MAX_LFS_FILESIZE:
                raise refuse(errno.EINVAL, "vfs", "rw_verify_area",
                             f"{rule}: position {pos} + count {count} overflows loff_t")

    def vfs_read(self, file: File, count: int, pos: int, addr: int | None) -> bytes:
        """vfs_read(): opened for reading (EBADF), a read operation (EINVAL:
        the SGX files have none), the buffer (EFAULT), the range."""
        if not file.f_mode & FMODE_READ:
            raise refuse(errno.EBADF, "vfs", "vfs_read", f"{file.path} not opened for reading")
        if not file.f_mode & FMODE_CAN_READ:
            raise refuse(errno.EINVAL, "vfs", "vfs_read",
                         f"{file.path}: the file operations have no read or read_iter")
        if not self.access_ok(addr, count):
            raise refuse(errno.EFAULT, "vfs", "vfs_read", f"buffer {addr:#x}+{count:#x} not user memory")
        self.rw_verify_area(file, pos, count, "vfs_read")
        return file.f_op.read_iter(file, pos, min(count, MAX_RW_COUNT))

    def vfs_write(self, file: File, count: int, pos: int, data: Any) -> tuple[int, int]:
        """vfs_write(): opened for writing (EBADF), a write operation (EINVAL:
        the SGX files have none), the buffer (EFAULT), the range.  ``data``
        is the caller's bytes, or a callable copying ``n`` bytes from user
        memory.  Returns the count and the position after it."""
        if not file.f_mode & FMODE_WRITE:
            raise refuse(errno.EBADF, "vfs", "vfs_write", f"{file.path} not opened for writing")
        if not file.f_mode & FMODE_CAN_WRITE:
            raise refuse(errno.EINVAL, "vfs", "vfs_write",
                         f"{file.path}: the file operations have no write or write_iter")
        if callable(data) and not self.access_ok(data.addr, count):  # type: ignore[attr-defined]
            raise refuse(errno.EFAULT, "vfs", "vfs_write",
                         f"buffer {data.addr:#x}+{count:#x} not user memory")  # type: ignore[attr-defined]
        self.rw_verify_area(file, pos, count, "vfs_write")
        count = min(count, MAX_RW_COUNT)
        if not count:
            return 0, pos
        buf = data(count) if callable(data) else bytes(data[:count])
        return self.write_at(file, pos, buf)

    @staticmethod
    def write_at(file: File, pos: int, buf: bytes) -> tuple[int, int]:
        """->write_iter(): an O_APPEND file writes at its end
        (generic_write_checks(): IOCB_APPEND); returns the count and the
        position after it."""
        if file.f_flags & O_APPEND:
            pos = file.inode.size
        done = file.f_op.write_iter(file, pos, buf)
        return done, pos + done

    def vfs_iov_check(self, file: File, write: bool, vlen: int) -> None:
        """vfs_readv()/vfs_writev() before the vector: the same mode and
        operation checks as vfs_read()/vfs_write(), then import_iovec()'s
        UIO_MAXIOV."""
        rule = "vfs_writev" if write else "vfs_readv"
        need, can = (FMODE_WRITE, FMODE_CAN_WRITE) if write else (FMODE_READ, FMODE_CAN_READ)
        if not file.f_mode & need:
            raise refuse(errno.EBADF, "vfs", rule,
                         f"{file.path} not opened for {'writing' if write else 'reading'}")
        if not file.f_mode & can:
            raise refuse(errno.EINVAL, "vfs", rule, f"{file.path}: the file operations have no "
                         f"{'write or write_iter' if write else 'read or read_iter'}")
        if vlen > UIO_MAXIOV:
            raise refuse(errno.EINVAL, "vfs", "import_iovec", f"{vlen} iovecs (UIO_MAXIOV {UIO_MAXIOV})")

    def setfl(self, file: File, arg: int) -> int:
        """setfl(): F_SETFL changes only SETFL_MASK's flags; O_DIRECT needs
        FMODE_CAN_ODIRECT.  The model has no append-only inodes and no owners
        (O_NOATIME is granted, as to the owner), and no file has ->fasync or
        ->check_flags, so FASYNC stays as it was."""
        if arg & O_DIRECT and not self.kernel.file_can_odirect(file):
            raise refuse(errno.EINVAL, "vfs", "setfl",
                         f"{file.path}: O_DIRECT on a file whose mapping has no direct_IO")
        if file.f_op.check_flags is not None:
            file.f_op.check_flags(arg)
        if (arg ^ file.f_flags) & FASYNC and file.f_op.fasync is not None:
            file.f_op.fasync(file, bool(arg & FASYNC))
        file.f_flags = (arg & SETFL_MASK) | (file.f_flags & ~SETFL_MASK)
        return 0

    def do_o_path(self, path: str, slash: bool, flags: int) -> File:
        """do_o_path(): the lookup only; do_dentry_open() gives an O_PATH file
        FMODE_PATH and empty file operations (no f_op->open, nothing to map
        or ioctl)."""
        ino = self.lookup(path, "path_lookupat")
        if ino is None:
            raise refuse(errno.ENOENT, "vfs", "path_lookupat", f"{path}: no such file")
        if (flags & O_DIRECTORY or slash) and not ino.is_dir():
            raise refuse(errno.ENOTDIR, "vfs", "path_lookupat", f"{path} is not a directory")
        return File(ino, path, FMODE_PATH, flags, FileOperations(), self.mount_of(path))

    def do_tmpfile(self, path: str, op: OpenFlags) -> File:
        """do_tmpfile(): ``path`` must be a directory; vfs_tmpfile() makes a
        regular file with no name in it (every model directory is on a
        filesystem with ->tmpfile, as tmpfs and ext4 are)."""
        dir_ = self.lookup(path, "path_lookupat")
        if dir_ is None:
            raise refuse(errno.ENOENT, "vfs", "do_tmpfile", f"{path}: no such directory")
        if not dir_.is_dir():
            raise refuse(errno.ENOTDIR, "vfs", "do_tmpfile", f"{path} is not a directory")
        ino = self._inode(S_IFREG | self.vfs_prepare_mode(op.mode) & S_IALLUGO)  # vfs_tmpfile()
        ino.nlink = 0
        # d_path() of the unnamed dentry: "#<ino> (deleted)" in the directory
        name = f"{path.rstrip('/')}/#{ino.ino} (deleted)"
        return self.vfs_open(ino, name, op.open_flag)

    @staticmethod
    def page_count(inode: Inode) -> int:
        return (inode.size + PAGE_SIZE - 1) // PAGE_SIZE
