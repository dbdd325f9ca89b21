"""A small VFS: directories, regular files with contents, mounts (noexec),
character devices backed by a driver's file_operations, and struct file with
the reference counting the SGX driver's release() depends on."""

from __future__ import annotations

import errno
from typing import Any

from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm.flags import (
    FMODE_READ,
    FMODE_WRITE,
    O_ACCMODE,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    PAGE_SIZE,
)
from sgxsim.kernel.mm.vma import FileOperations

S_IFREG, S_IFDIR, S_IFCHR = 0o100000, 0o040000, 0o020000


class Inode:
    """struct inode: a regular file's bytes and page cache, or a device."""

    __slots__ = ("ino", "mode", "data", "fops", "label", "pages", "private", "rdev", "i_size",
                 "reader")

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
    """generic_file_* for regular files: mmap installs the page-cache vm_ops."""

    def __init__(self, kernel: Any):
        self.kernel = kernel

    def mmap(self, file: File, vma: Any) -> None:
        # generic_file_mmap(): vma->vm_ops = &generic_file_vm_ops
        vma.vm_ops = self.kernel.file_vm_ops


class File:
    """struct file."""

    __slots__ = ("inode", "path", "f_mode", "f_flags", "f_op", "private_data", "refcount",
                 "mount")

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

    def __repr__(self) -> str:
        return f"File({self.path!r})"


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

    def mkdir(self, path: str, label: str = "unlabeled_t") -> Inode:
        if path not in self.inodes:
            if path != "/":
                self.mkdir(self._parent(path))
            self.inodes[path] = self._inode(S_IFDIR | 0o755, label=label)
        return self.inodes[path]

    def create_file(self, path: str, data: bytes = b"", mode: int = 0o644,
                    label: str = "unlabeled_t") -> Inode:
        self.mkdir(self._parent(path))
        ino = self._inode(S_IFREG | mode, data=data, label=label)
        self.inodes[path] = ino
        return ino

    def mknod_chr(self, path: str, fops: Any, mode: int = 0o666,
                  label: str = "device_t") -> Inode:
        """A character device node whose file operations are ``fops``."""
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
    def path_walk(self, path: str, rule: str) -> tuple[str, bool, bool]:
        """link_path_walk(): ``path`` without repeated slashes, "." and ".."
        (".." of the root is the root), and how its last component ended: a
        name followed by a slash, or a dot component (both name a directory).
        Every component before the last must be a directory that exists."""
        if not isinstance(path, str) or not path.startswith("/"):
            raise refuse(errno.ENOENT, "vfs", rule, f"{path!r}: not an absolute path")
        comps = [c for c in path.split("/") if c]
        walked: list[str] = []
        for c in comps[:-1]:
            if c == "..":
                if walked:
                    walked.pop()
            elif c != ".":
                walked.append(c)
                ino = self.inodes.get("/" + "/".join(walked))
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
    def open(self, path: str, flags: int, mode: int = 0o644) -> File:
        """do_filp_open(): resolve, create, check the access mode, call f_op->open."""
        path, slash, _ = self.path_walk(path, "path_openat")
        acc = flags & O_ACCMODE
        if acc == 3:
            raise refuse(errno.EINVAL, "vfs", "build_open_flags", "O_ACCMODE 3")
        if flags & O_CREAT and slash:
            raise refuse(errno.EISDIR, "vfs", "open_last_lookups",
                         f"{path}/: O_CREAT of a name that ends in a slash")
        ino = self.inodes.get(path)
        if ino is None:
            if not flags & O_CREAT:
                raise refuse(errno.ENOENT, "vfs", "path_openat", f"{path}: no such file")
            parent = self.inodes.get(self._parent(path))
            if parent is None or not parent.is_dir():
                raise refuse(errno.ENOENT, "vfs", "path_openat", "parent directory missing")
            ino = self.create_file(path, mode=mode & 0o777)
        elif flags & O_CREAT and flags & O_EXCL:
            raise refuse(errno.EEXIST, "vfs", "may_o_create", f"{path} exists")
        elif flags & O_CREAT and ino.is_dir():
            raise refuse(errno.EISDIR, "vfs", "do_open", f"{path} is a directory (O_CREAT)")
        if (flags & O_DIRECTORY or slash) and not ino.is_dir():
            raise refuse(errno.ENOTDIR, "vfs", "path_openat", f"{path} is not a directory")
        if ino.is_dir() and acc != O_RDONLY:
            raise refuse(errno.EISDIR, "vfs", "may_open", f"{path} is a directory")
        f_mode = (FMODE_READ if acc in (O_RDONLY, O_RDWR) else 0) | (
            FMODE_WRITE if acc in (O_WRONLY, O_RDWR) else 0)
        fops = ino.fops if ino.fops is not None else (
            self.reg_ops if ino.is_reg() else FileOperations())
        f = File(ino, path, f_mode, flags, fops, self.mount_of(path))
        if ino.is_reg() and flags & O_TRUNC and f_mode & FMODE_WRITE:
            ino.data = bytearray()
            ino.i_size = None
        if fops.open is not None:
            fops.open(ino, f)
        return f

    @staticmethod
    def page_count(inode: Inode) -> int:
        return (inode.size + PAGE_SIZE - 1) // PAGE_SIZE
