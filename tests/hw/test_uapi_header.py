"""The uapi definitions against the system's <asm/sgx.h>, compiled with gcc."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from sgxsim.hw import uapi

SGX_PAGE_MEASURE_C = "SGX_PAGE_MEASURE"


def _c_program() -> str:
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <asm/sgx.h>",
        "int main(void) {",
    ]
    for cname, cls in uapi.UAPI_STRUCTS.items():
        lines.append(f'  printf("size {cname} %zu\\n", sizeof(struct {cname}));')
        for field, _off, _size, _kind in cls.FIELDS:
            member = f"((struct {cname} *)0)->{field}"
            offset = f"offsetof(struct {cname}, {field})"
            lines.append(f'  printf("off {cname}.{field} %zu\\n", {offset});')
            lines.append(f'  printf("fsize {cname}.{field} %zu\\n", sizeof({member}));')
    for name in uapi.IOCTLS:
        lines.append(f'  printf("ioctl {name} %lu\\n", (unsigned long){name});')
    lines.append('  printf("const SGX_MAGIC %d\\n", SGX_MAGIC);')
    lines.append(f'  printf("const SGX_PAGE_MEASURE %d\\n", {SGX_PAGE_MEASURE_C});')
    lines.append("  return 0;\n}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_facts(tmp_path_factory) -> dict[str, int]:
    gcc = shutil.which("gcc")
    assert gcc, "gcc is required for the uapi header test (make test installs nothing for it)"
    d = tmp_path_factory.mktemp("uapi")
    src, exe = d / "uapi.c", d / "uapi"
    src.write_text(_c_program())
    cc = subprocess.run([gcc, "-o", str(exe), str(src)], capture_output=True, text=True)
    assert cc.returncode == 0, (
        "could not compile against <asm/sgx.h> (install Debian's linux-libc-dev; "
        f".ci/run and make test do so when root):\n{cc.stderr}"
    )
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    facts = {}
    for line in out.splitlines():
        kind, name, value = line.split()
        facts[f"{kind} {name}"] = int(value)
    return facts


@pytest.mark.parametrize("cname", sorted(uapi.UAPI_STRUCTS))
def test_struct_layout_matches_header(c_facts, cname):
    cls = uapi.UAPI_STRUCTS[cname]
    assert c_facts[f"size {cname}"] == cls.SIZE
    for field, off, size, _ in cls.FIELDS:
        assert c_facts[f"off {cname}.{field}"] == off, field
        assert c_facts[f"fsize {cname}.{field}"] == size, field


@pytest.mark.parametrize("name", sorted(uapi.IOCTLS))
def test_ioctl_numbers_match_header(c_facts, name):
    assert c_facts[f"ioctl {name}"] == uapi.IOCTLS[name]


def test_constants_match_header(c_facts):
    assert c_facts["const SGX_MAGIC"] == uapi.SGX_MAGIC
    assert c_facts["const SGX_PAGE_MEASURE"] == uapi.SGX_PAGE_MEASURE


def test_ioctl_decoding_round_trips():
    cmd = uapi.SGX_IOC_ENCLAVE_ADD_PAGES
    assert uapi.ioc_type(cmd) == uapi.SGX_MAGIC
    assert uapi.ioc_nr(cmd) == 1
    assert uapi.ioc_size(cmd) == uapi.SgxEnclaveAddPages.SIZE
    assert uapi.ioc_dir(cmd) == uapi.IOC_READ | uapi.IOC_WRITE
