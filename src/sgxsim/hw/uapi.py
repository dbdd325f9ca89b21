"""The SGX driver's user ABI: ``arch/x86/include/uapi/asm/sgx.h`` and the
ioctl number encoding of ``include/uapi/asm-generic/ioctl.h``.

The structures use the same :class:`~sgxsim.hw.structs.Struct` base as the
architectural ones, so an ioctl argument is packed and unpacked byte for byte
as the kernel's ``copy_from_user()``/``copy_to_user()`` would see it.
"""

from __future__ import annotations

from sgxsim.hw.structs import Struct

# include/uapi/asm-generic/ioctl.h
_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_DIRBITS = 2

_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS

_IOC_NONE = 0
_IOC_WRITE = 1
_IOC_READ = 2


def _IOC(direction: int, typ: int, nr: int, size: int) -> int:  # noqa: N802 - kernel name
    if not (0 <= size < (1 << _IOC_SIZEBITS)):
        raise ValueError(f"ioctl size {size} does not fit in {_IOC_SIZEBITS} bits")
    return (
        (direction << _IOC_DIRSHIFT)
        | (typ << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def _IO(typ: int, nr: int) -> int:  # noqa: N802
    return _IOC(_IOC_NONE, typ, nr, 0)


def _IOW(typ: int, nr: int, arg: type[Struct]) -> int:  # noqa: N802
    return _IOC(_IOC_WRITE, typ, nr, arg.SIZE)


def _IOR(typ: int, nr: int, arg: type[Struct]) -> int:  # noqa: N802
    return _IOC(_IOC_READ, typ, nr, arg.SIZE)


def _IOWR(typ: int, nr: int, arg: type[Struct]) -> int:  # noqa: N802
    return _IOC(_IOC_READ | _IOC_WRITE, typ, nr, arg.SIZE)


def _IOC_DIR(nr: int) -> int:  # noqa: N802
    return (nr >> _IOC_DIRSHIFT) & ((1 << _IOC_DIRBITS) - 1)


def _IOC_TYPE(nr: int) -> int:  # noqa: N802
    return (nr >> _IOC_TYPESHIFT) & ((1 << _IOC_TYPEBITS) - 1)


def _IOC_NR(nr: int) -> int:  # noqa: N802
    return (nr >> _IOC_NRSHIFT) & ((1 << _IOC_NRBITS) - 1)


def _IOC_SIZE(nr: int) -> int:  # noqa: N802
    return (nr >> _IOC_SIZESHIFT) & ((1 << _IOC_SIZEBITS) - 1)


# enum sgx_page_flags
SGX_PAGE_MEASURE = 0x01

SGX_MAGIC = 0xA4


class SgxEnclaveCreate(Struct):
    """struct sgx_enclave_create: @src, the address of the SECS page data."""

    SIZE = 8
    FIELDS = (("src", 0, 8, "u"),)


class SgxEnclaveAddPages(Struct):
    """struct sgx_enclave_add_pages; @count is written back."""

    SIZE = 48
    FIELDS = (
        ("src", 0, 8, "u"),
        ("offset", 8, 8, "u"),
        ("length", 16, 8, "u"),
        ("secinfo", 24, 8, "u"),
        ("flags", 32, 8, "u"),
        ("count", 40, 8, "u"),
    )


class SgxEnclaveInit(Struct):
    """struct sgx_enclave_init: @sigstruct, the address of the SIGSTRUCT."""

    SIZE = 8
    FIELDS = (("sigstruct", 0, 8, "u"),)


class SgxEnclaveProvision(Struct):
    """struct sgx_enclave_provision: @fd of /dev/sgx_provision."""

    SIZE = 8
    FIELDS = (("fd", 0, 8, "u"),)


class SgxEnclaveRestrictPermissions(Struct):
    """struct sgx_enclave_restrict_permissions; @result and @count are outputs."""

    SIZE = 40
    FIELDS = (
        ("offset", 0, 8, "u"),
        ("length", 8, 8, "u"),
        ("permissions", 16, 8, "u"),
        ("result", 24, 8, "u"),
        ("count", 32, 8, "u"),
    )


class SgxEnclaveModifyTypes(Struct):
    """struct sgx_enclave_modify_types; @result and @count are outputs."""

    SIZE = 40
    FIELDS = (
        ("offset", 0, 8, "u"),
        ("length", 8, 8, "u"),
        ("page_type", 16, 8, "u"),
        ("result", 24, 8, "u"),
        ("count", 32, 8, "u"),
    )


class SgxEnclaveRemovePages(Struct):
    """struct sgx_enclave_remove_pages; @count is an output."""

    SIZE = 24
    FIELDS = (
        ("offset", 0, 8, "u"),
        ("length", 8, 8, "u"),
        ("count", 16, 8, "u"),
    )


class SgxEnclaveRun(Struct):
    """struct sgx_enclave_run: the context of __vdso_sgx_enter_enclave()."""

    SIZE = 256
    FIELDS = (
        ("tcs", 0, 8, "u"),
        ("function", 8, 4, "u"),
        ("exception_vector", 12, 2, "u"),
        ("exception_error_code", 14, 2, "u"),
        ("exception_addr", 16, 8, "u"),
        ("user_handler", 24, 8, "u"),
        ("user_data", 32, 8, "u"),
        ("reserved", 40, 216, "b"),
    )


SGX_IOC_ENCLAVE_CREATE = _IOW(SGX_MAGIC, 0x00, SgxEnclaveCreate)
SGX_IOC_ENCLAVE_ADD_PAGES = _IOWR(SGX_MAGIC, 0x01, SgxEnclaveAddPages)
SGX_IOC_ENCLAVE_INIT = _IOW(SGX_MAGIC, 0x02, SgxEnclaveInit)
SGX_IOC_ENCLAVE_PROVISION = _IOW(SGX_MAGIC, 0x03, SgxEnclaveProvision)
SGX_IOC_VEPC_REMOVE_ALL = _IO(SGX_MAGIC, 0x04)
SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS = _IOWR(SGX_MAGIC, 0x05, SgxEnclaveRestrictPermissions)
SGX_IOC_ENCLAVE_MODIFY_TYPES = _IOWR(SGX_MAGIC, 0x06, SgxEnclaveModifyTypes)
SGX_IOC_ENCLAVE_REMOVE_PAGES = _IOWR(SGX_MAGIC, 0x07, SgxEnclaveRemovePages)

# The uapi structures by their C names, for tools and the header test.
UAPI_STRUCTS: dict[str, type[Struct]] = {
    "sgx_enclave_create": SgxEnclaveCreate,
    "sgx_enclave_add_pages": SgxEnclaveAddPages,
    "sgx_enclave_init": SgxEnclaveInit,
    "sgx_enclave_provision": SgxEnclaveProvision,
    "sgx_enclave_restrict_permissions": SgxEnclaveRestrictPermissions,
    "sgx_enclave_modify_types": SgxEnclaveModifyTypes,
    "sgx_enclave_remove_pages": SgxEnclaveRemovePages,
    "sgx_enclave_run": SgxEnclaveRun,
}

SGX_IOCTLS: dict[str, int] = {
    "SGX_IOC_ENCLAVE_CREATE": SGX_IOC_ENCLAVE_CREATE,
    "SGX_IOC_ENCLAVE_ADD_PAGES": SGX_IOC_ENCLAVE_ADD_PAGES,
    "SGX_IOC_ENCLAVE_INIT": SGX_IOC_ENCLAVE_INIT,
    "SGX_IOC_ENCLAVE_PROVISION": SGX_IOC_ENCLAVE_PROVISION,
    "SGX_IOC_VEPC_REMOVE_ALL": SGX_IOC_VEPC_REMOVE_ALL,
    "SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS": SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
    "SGX_IOC_ENCLAVE_MODIFY_TYPES": SGX_IOC_ENCLAVE_MODIFY_TYPES,
    "SGX_IOC_ENCLAVE_REMOVE_PAGES": SGX_IOC_ENCLAVE_REMOVE_PAGES,
}
