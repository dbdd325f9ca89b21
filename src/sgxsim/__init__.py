"""sgxsim: an executable model of Intel SGX enclave memory on Linux."""

from sgxsim.kernel.errors import Signal
from sgxsim.kernel.mm.flags import (
    ADDR_NO_RANDOMIZE,
    MAP_ANON,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_HUGETLB,
    MAP_LOCKED,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_STACK,
    MREMAP_DONTUNMAP,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    O_ACCMODE,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_EXCL,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    PER_LINUX,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    READ_IMPLIES_EXEC,
)
from sgxsim.machine import Machine

__version__ = "0.1.0"

__all__ = [name for name in dir() if name.isupper()] + ["Machine", "Signal"]
