"""The loader, the vDSO's exception reporting and the binding of a program
to the enclave's identity."""

from __future__ import annotations

import io

from elftools.elf.elffile import ELFFile

from sgxsim.hw import sigstruct as HS
from sgxsim.user import selftests as S
from sgxsim.user import test_encl as T
from sgxsim.user.elf import write_elf
from sgxsim.user.enclave import EnclaveLibrary
from sgxsim.user.loader import encl_load, encl_measure


def _elf() -> bytes:
    return write_elf([(n, o, p, d) for n, (o, p, d) in T.image().items()], T.program().symbols)


def test_the_generated_elf_reads_back_with_pyelftools():
    elf = ELFFile(io.BytesIO(_elf()))
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    assert [s["p_vaddr"] for s in loads] == [0, T.TEXT, T.ENCL_BUFFER]
    syms = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
    assert syms["encl_dyn_entry"] == T.ENCL_DYN_ENTRY


def test_loader_segments_and_secinfo_flags():
    e = encl_load(_elf(), heap_size=4096)
    assert [(s.offset, s.flags, s.measure) for s in e.segments] == [
        (0, 0x100, True), (T.TEXT, 0x205, True), (T.ENCL_BUFFER, 0x203, True),
        (T.ENCL_BUFFER + 6 * 4096, 0x203, False)]
    assert e.encl_size == 16 * 4096


def test_mrenclave_binds_the_program():
    env = S.setup_test_encl("linux-6.0", False)
    S.put_get(env)
    # Another enclave whose text differs by one byte measures differently.
    img = T.image()
    off, prot, text = img["text"]
    text = bytearray(text)
    text[100] ^= 1
    img["text"] = (off, prot, bytes(text))
    other = encl_load(write_elf([(n, o, p, d) for n, (o, p, d) in img.items()],
                                T.program().symbols), 4096)
    encl_measure(other, S.signing_key())
    assert other.mrenclave != env.encl.mrenclave
    lib = EnclaveLibrary()
    lib.bind(env.encl.mrenclave, T.program())
    assert other.mrenclave not in lib.programs


def test_unknown_code_is_reported_as_ud():
    env = S.setup_test_encl("linux-6.0", False)
    env.vdso.library.programs.clear()  # no code is known for this identity
    ret, _ = env.call(T.ENCL_OP_NOP)
    r = env.run_struct()
    assert ret == 0 and r.exception_vector == 6 and r.function == S.ERESUME


def test_bad_function_and_reserved_bytes_are_einval():
    env = S.setup_test_encl("linux-6.0", False)
    assert env.vdso.sgx_enter_enclave(env.op, 0, 0, 7, 0, 0, env.run) == -22
    env.set_run(reserved=b"\1" + bytes(215))
    assert env.vdso.sgx_enter_enclave(env.op, 0, 0, S.EENTER, 0, 0, env.run) == -22


def test_sigstruct_of_the_test_enclave_verifies():
    e = encl_load(_elf(), 4096)
    encl_measure(e, S.signing_key())
    from sgxsim.hw.structs import Sigstruct

    sig = Sigstruct.unpack(e.sigstruct)
    assert HS.check_signature(sig) and sig.enclavehash == e.mrenclave


def test_eexit_writes_only_the_exit_reason():
    # vsgx.S: after EEXIT the vDSO stores EEXIT in run.function and nothing
    # else, so an exception reported by an earlier call stays in the struct
    # (the selftests clear it themselves: clear_exception()).
    env = S.setup_test_encl("linux-6.0", False)
    env.set_run(function=0, exception_vector=14, exception_error_code=0x8007, exception_addr=0x1000)
    ret, _ = env.call(T.ENCL_OP_NOP)
    r = env.run_struct()
    assert ret == 0
    assert (r.function, r.exception_vector, r.exception_error_code, r.exception_addr) == (
        S.EEXIT, 14, 0x8007, 0x1000)


def test_user_handler_is_read_after_the_exit():
    # vsgx.S .Lhandle_exit reads run.user_handler when the enclave has exited:
    # a handler the untrusted side installs during the call is the one called.
    env = S.setup_test_encl("linux-6.0", False)
    seen = []

    def handler(rdi, rsi, rdx, rsp, r8, r9, run):
        seen.append(run)
        return 0

    addr = env.vdso.register_handler(handler)
    run = env.vdso.library.run

    def run_and_install(cpu, lp):
        run(cpu, lp)
        env.set_run(user_handler=addr)  # written while the call is in progress

    env.vdso.library.run = run_and_install
    ret, _ = env.call(T.ENCL_OP_NOP)
    assert ret == 0 and seen == [env.run]


def test_encl_load_refuses_what_is_no_enclave_elf_with_a_value_error():
    # An ELF without PT_LOAD was an IndexError ("list index out of range",
    # also as sgxsim selftest --encl-elf's message), bytes that are no ELF
    # pyelftools' ELFError.
    import pytest

    for data, text in ((write_elf([], {}), "no PT_LOAD segment"), (b"garbage", "not a readable ELF file"),
                       (b"", "not a readable ELF file"), (_elf()[:200], "not a readable ELF file")):
        with pytest.raises(ValueError, match=text):
            encl_load(data)


def _patched(fmt: str, where, field: int, value: int) -> bytes:
    """_elf() with one field of a header changed (``where``: an offset or a
    function of the ELF's bytes giving one)."""
    import struct

    b = bytearray(_elf())
    off = where(b) if callable(where) else where
    vals = list(struct.unpack_from(fmt, b, off))
    vals[field] = value
    struct.pack_into(fmt, b, off, *vals)
    return bytes(b)


def test_encl_load_refuses_what_load_c_would_read_beyond_the_file():
    # A PT_LOAD of 1 TiB was a MemoryError (ph.data().ljust(size)), one
    # below the TCS segment's offset was taken and every selftest then
    # failed with Python's "argument out of range"; a header table offset
    # past any file was pyelftools' OverflowError, a section named .symtab
    # of another type an AttributeError.
    import struct

    import pytest

    phdr = "<IIQQQQQQ"

    def ph(i):
        return lambda b: struct.unpack_from("<Q", b, 0x20)[0] + i * 56

    for data, text in (
            (_patched(phdr, ph(1), 5, 1 << 40), r"segment 1: p_offset 0x\w+ \+ p_filesz 0x10000000000 lies "
                                                r"past the end of the file"),
            (_patched(phdr, ph(1), 2, 1 << 60), "segment 1: p_offset 0x1000000000000000 .* past the end"),
            (_patched(phdr, ph(2), 2, 0), r"segment 2: p_offset 0x0 lies below the TCS segment's \(0x1000\)"),
            (_patched("<Q", 0x20, 0, 1 << 62), "the program header table .* lies past the end of the file"),
            (_patched("<Q", 0x28, 0, 1 << 62), "the section header table .* lies past the end of the file")):
        with pytest.raises(ValueError, match=text):
            encl_load(data)
    # A segment may end inside the file's last page: load.c maps the file,
    # and the rest of that page reads as zeros; one byte more is refused.
    elf = _elf()
    start = struct.unpack_from(phdr, elf, ph(2)(elf))[2]
    end = (len(elf) + 4095) & ~4095
    assert end > len(elf)
    seg = encl_load(_patched(phdr, ph(2), 5, end - start)).segments[2]
    assert seg.size == end - start and seg.src == elf[start:].ljust(end - start, b"\0")
    with pytest.raises(ValueError, match="segment 2: .* past the end of the file"):
        encl_load(_patched(phdr, ph(2), 5, end - start + 1))


def test_encl_load_finds_the_symbol_table_by_type_as_load_c_does():
    # encl_get_entry() takes the first SHT_SYMTAB section, whatever its name.
    import struct

    elf = bytearray(_elf())
    e_shoff, = struct.unpack_from("<Q", elf, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", elf, 0x3A)
    want = encl_load(bytes(elf)).symbols
    for i in range(e_shnum):  # rename every section: no ".symtab" is left
        struct.pack_into("<I", elf, e_shoff + i * e_shentsize, 0)
    assert encl_load(bytes(elf)).symbols == want and want
