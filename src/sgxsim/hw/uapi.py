"""The SGX uapi of ``arch/x86/include/uapi/asm/sgx.h``: ioctl argument
structures, ``struct sgx_enclave_run`` and the ioctl request numbers."""

from __future__ import annotations

from sgxsim.hw.structs import Struct

# include/uapi/asm-generic/ioctl.h
_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
IOC_NONE, IOC_WRITE, IOC_READ = 0, 1, 2


def _IOC(direction: int, typ: int, nr: int, size: int) -> int:  # noqa: N802
    return (
        (direction << _IOC_DIRSHIFT)
        | (typ << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def _IO(typ: int, nr: int) -> int:  # noqa: N802
    return _IOC(IOC_NONE, typ, nr, 0)


def _IOW(typ: int, nr: int, size: int) -> int:  # noqa: N802
    return _IOC(IOC_WRITE, typ, nr, size)


def _IOWR(typ: int, nr: int, size: int) -> int:  # noqa: N802
    return _IOC(IOC_READ | IOC_WRITE, typ, nr, size)


def ioc_dir(cmd: int) -> int:
    return (cmd >> _IOC_DIRSHIFT) & 0x3


def ioc_size(cmd: int) -> int:
    return (cmd >> _IOC_SIZESHIFT) & ((1 << _IOC_SIZEBITS) - 1)


def ioc_nr(cmd: int) -> int:
    return (cmd >> _IOC_NRSHIFT) & 0xFF


def ioc_type(cmd: int) -> int:
    return (cmd >> _IOC_TYPESHIFT) & 0xFF


SGX_MAGIC = 0xA4
SGX_PAGE_MEASURE = 0x01


class SgxEnclaveCreate(Struct):
    """struct sgx_enclave_create."""

    SIZE = 8
    FIELDS = (("src", 0, 8, "u"),)


class SgxEnclaveAddPages(Struct):
    """struct sgx_enclave_add_pages."""

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
    """struct sgx_enclave_init."""

    SIZE = 8
    FIELDS = (("sigstruct", 0, 8, "u"),)


class SgxEnclaveProvision(Struct):
    """struct sgx_enclave_provision."""

    SIZE = 8
    FIELDS = (("fd", 0, 8, "u"),)


class SgxEnclaveRestrictPermissions(Struct):
    """struct sgx_enclave_restrict_permissions."""

    SIZE = 40
    FIELDS = (
        ("offset", 0, 8, "u"),
        ("length", 8, 8, "u"),
        ("permissions", 16, 8, "u"),
        ("result", 24, 8, "u"),
        ("count", 32, 8, "u"),
    )


class SgxEnclaveModifyTypes(Struct):
    """struct sgx_enclave_modify_types."""

    SIZE = 40
    FIELDS = (
        ("offset", 0, 8, "u"),
        ("length", 8, 8, "u"),
        ("page_type", 16, 8, "u"),
        ("result", 24, 8, "u"),
        ("count", 32, 8, "u"),
    )


class SgxEnclaveRemovePages(Struct):
    """struct sgx_enclave_remove_pages."""

    SIZE = 24
    FIELDS = (("offset", 0, 8, "u"), ("length", 8, 8, "u"), ("count", 16, 8, "u"))


class SgxEnclaveRun(Struct):
    """struct sgx_enclave_run, the vDSO's in/out block (256 bytes)."""

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


SGX_IOC_ENCLAVE_CREATE = _IOW(SGX_MAGIC, 0x00, SgxEnclaveCreate.SIZE)
SGX_IOC_ENCLAVE_ADD_PAGES = _IOWR(SGX_MAGIC, 0x01, SgxEnclaveAddPages.SIZE)
SGX_IOC_ENCLAVE_INIT = _IOW(SGX_MAGIC, 0x02, SgxEnclaveInit.SIZE)
SGX_IOC_ENCLAVE_PROVISION = _IOW(SGX_MAGIC, 0x03, SgxEnclaveProvision.SIZE)
SGX_IOC_VEPC_REMOVE_ALL = _IO(SGX_MAGIC, 0x04)
SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS = _IOWR(SGX_MAGIC, 0x05, SgxEnclaveRestrictPermissions.SIZE)
SGX_IOC_ENCLAVE_MODIFY_TYPES = _IOWR(SGX_MAGIC, 0x06, SgxEnclaveModifyTypes.SIZE)
SGX_IOC_ENCLAVE_REMOVE_PAGES = _IOWR(SGX_MAGIC, 0x07, SgxEnclaveRemovePages.SIZE)

# The uapi structures, by C name, for tools and the header test.
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

IOCTLS: dict[str, int] = {
    "SGX_IOC_ENCLAVE_CREATE": SGX_IOC_ENCLAVE_CREATE,
    "SGX_IOC_ENCLAVE_ADD_PAGES": SGX_IOC_ENCLAVE_ADD_PAGES,
    "SGX_IOC_ENCLAVE_INIT": SGX_IOC_ENCLAVE_INIT,
    "SGX_IOC_ENCLAVE_PROVISION": SGX_IOC_ENCLAVE_PROVISION,
    "SGX_IOC_VEPC_REMOVE_ALL": SGX_IOC_VEPC_REMOVE_ALL,
    "SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS": SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS,
    "SGX_IOC_ENCLAVE_MODIFY_TYPES": SGX_IOC_ENCLAVE_MODIFY_TYPES,
    "SGX_IOC_ENCLAVE_REMOVE_PAGES": SGX_IOC_ENCLAVE_REMOVE_PAGES,
}
