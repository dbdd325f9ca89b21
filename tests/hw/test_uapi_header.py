"""The Python uapi definitions against the system's <asm/sgx.h>, compiled
with gcc: every sizeof, every offsetof, every ioctl number."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sgxsim.hw import uapi

HEADER_HELP = (
    "the uapi header test needs gcc and <asm/sgx.h> "
    "(Debian/Ubuntu: apt-get install gcc linux-libc-dev; `make test` installs the header as root)"
)


def _c_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <asm/sgx.h>",
        "int main(void) {",
    ]
    for cname, cls in uapi.UAPI_STRUCTS.items():
        lines.append(f'  printf("sizeof {cname} %zu\\n", sizeof(struct {cname}));')
        for field, _off, _size, _kind in cls.FIELDS:
            lines.append(
                f'  printf("offsetof {cname}.{field} %zu\\n", offsetof(struct {cname}, {field}));'
            )
            lines.append(
                f'  printf("fieldsize {cname}.{field} %zu\\n", '
                f"sizeof(((struct {cname} *)0)->{field}));"
            )
    for name in uapi.SGX_IOCTLS:
        lines.append(f'  printf("ioctl {name} %lu\\n", (unsigned long){name});')
    lines.append('  printf("const SGX_MAGIC %d\\n", SGX_MAGIC);')
    lines.append('  printf("const SGX_PAGE_MEASURE %d\\n", (int)SGX_PAGE_MEASURE);')
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail(f"gcc not found: {HEADER_HELP}")
    d: Path = tmp_path_factory.mktemp("uapi")
    src = d / "layout.c"
    src.write_text(_c_program())
    exe = d / "layout"
    cc = subprocess.run([gcc, "-o", str(exe), str(src)], capture_output=True, text=True)
    if cc.returncode != 0:
        pytest.fail(f"compiling against <asm/sgx.h> failed: {HEADER_HELP}\n{cc.stderr}")
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        kind, name, value = line.split()
        result[f"{kind} {name}"] = int(value)
    return result


@pytest.mark.parametrize("cname", sorted(uapi.UAPI_STRUCTS))
def test_struct_layout_matches_header(c_layout: dict[str, int], cname: str) -> None:
    cls = uapi.UAPI_STRUCTS[cname]
    assert cls.SIZE == c_layout[f"sizeof {cname}"]
    for field, off, size, _kind in cls.FIELDS:
        assert off == c_layout[f"offsetof {cname}.{field}"], field
        assert size == c_layout[f"fieldsize {cname}.{field}"], field


def test_ioctl_numbers_match_header(c_layout: dict[str, int]) -> None:
    for name, number in uapi.SGX_IOCTLS.items():
        assert number == c_layout[f"ioctl {name}"], name
    assert uapi.SGX_MAGIC == c_layout["const SGX_MAGIC"]
    assert uapi.SGX_PAGE_MEASURE == c_layout["const SGX_PAGE_MEASURE"]


def test_ioctl_numbers_known_values() -> None:
    # Independent of the header: the values as printed by a C program on x86-64.
    assert uapi.SGX_IOC_ENCLAVE_CREATE == 0x4008A400
    assert uapi.SGX_IOC_ENCLAVE_ADD_PAGES == 0xC030A401
    assert uapi.SGX_IOC_ENCLAVE_INIT == 0x4008A402
    assert uapi.SGX_IOC_VEPC_REMOVE_ALL == 0xA404


def test_ioc_decoding_round_trip() -> None:
    n = uapi.SGX_IOC_ENCLAVE_RESTRICT_PERMISSIONS
    assert uapi._IOC_DIR(n) == uapi._IOC_READ | uapi._IOC_WRITE
    assert uapi._IOC_TYPE(n) == uapi.SGX_MAGIC
    assert uapi._IOC_NR(n) == 0x05
    assert uapi._IOC_SIZE(n) == uapi.SgxEnclaveRestrictPermissions.SIZE
    with pytest.raises(ValueError):
        uapi._IOC(uapi._IOC_WRITE, uapi.SGX_MAGIC, 0, 1 << 14)


def test_enclave_run_round_trip() -> None:
    run = uapi.SgxEnclaveRun(tcs=0x7000, function=2, exception_vector=14,
                             exception_error_code=0x8007, exception_addr=0x1234)
    raw = run.pack()
    assert len(raw) == 256
    assert uapi.SgxEnclaveRun.unpack(raw) == run
