"""`sgxsim exec`: the native bridge (preload library, vDSO image, server)."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from sgxsim.exec.build import ensure_native
from sgxsim.exec.run import run_program
from sgxsim.exec.server import read_extable
from sgxsim.hw import uapi
from sgxsim.kernel.mm.flags import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    O_RDWR,
    PROT_READ,
    PROT_WRITE,
)
from sgxsim.machine import Machine

SGXSIM = [sys.executable, "-m", "sgxsim.cli", "exec"]


def sgxsim_exec(*args: str, timeout: float = 120, env: dict | None = None
                ) -> subprocess.CompletedProcess:
    return subprocess.run([*SGXSIM, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_vdso_image_has_both_hash_tables_and_one_rx_segment():
    n = ensure_native()
    with open(n.vdso, "rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert len(loads) == 1 and loads[0]["p_flags"] == 5  # R E
        assert loads[0]["p_offset"] == loads[0]["p_vaddr"] == 0
        tags = {t.entry.d_tag for t in elf.get_section_by_name(".dynamic").iter_tags()}
        assert {"DT_HASH", "DT_GNU_HASH", "DT_SYMTAB", "DT_STRTAB"} <= tags
        syms = {s.name: s for s in elf.get_section_by_name(".dynsym").iter_symbols()}
        assert syms["__vdso_sgx_enter_enclave"]["st_info"]["type"] == "STT_FUNC"
        text = elf.get_section_by_name(".text")
        code, base = text.data(), text["sh_addr"]
    (insn, fixup), = read_extable(n.vdso)
    assert code[insn - base : insn - base + 3] == b"\x0f\x01\xd7"  # ENCLU
    assert base <= fixup < base + len(code)


def _model_badinput() -> list[str]:
    """badinput.c's requests on the Python API."""
    m = Machine()
    p = m.spawn()
    fd = p.open("/dev/sgx_enclave", O_RDWR)
    buf = 0x6000_0000
    p.mmap(buf, 0x3000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.poke(buf, b"\xa5" * 4096)
    p.poke(buf + 0x1000, uapi.SgxEnclaveCreate(src=0xDEAD0000).pack())
    p.poke(buf + 0x2000, b"\x5a" * uapi.SgxEnclaveAddPages.SIZE)
    out = []

    def show(what, fn, *args):
        try:
            fn(*args)
            out.append(f"{what} -> 0")
        except OSError as e:
            out.append(f"{what} -> {errno.errorcode[e.errno]}")

    show("create NULL", p.ioctl, fd, uapi.SGX_IOC_ENCLAVE_CREATE, 0)
    show("create unmapped src", p.ioctl, fd, uapi.SGX_IOC_ENCLAVE_CREATE, buf + 0x1000)
    show("create garbage secs", p.ioctl, fd, uapi.SGX_IOC_ENCLAVE_CREATE, buf)
    show("add_pages garbage", p.ioctl, fd, uapi.SGX_IOC_ENCLAVE_ADD_PAGES, buf + 0x2000)
    show("init unmapped", p.ioctl, fd, uapi.SGX_IOC_ENCLAVE_INIT, 8)
    show("unknown ioctl", p.ioctl, fd, 0xC0FFEE, buf)
    show("remove_pages garbage", p.ioctl, fd, uapi.SGX_IOC_ENCLAVE_REMOVE_PAGES, buf)
    show("mmap unaligned offset", p.mmap, 0, 4096, PROT_READ, MAP_SHARED, fd, 123)
    a = p.mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0)
    show("mremap grow enclave mapping", p.mremap, a, 4096, 8192, 1)  # MREMAP_MAYMOVE
    show("munmap enclave mapping", p.munmap, a, 4096)
    out.append("create on another file -> ENOTTY")  # /dev/null: the real kernel's answer
    prov = p.open("/dev/sgx_provision", O_RDWR)
    p.poke(buf + 0x2000, uapi.SgxEnclaveProvision(fd=prov).pack())
    show("provision with /dev/sgx_provision", p.ioctl, fd, uapi.SGX_IOC_ENCLAVE_PROVISION,
         buf + 0x2000)
    null = p.open("/tmp/null", O_RDWR | 0o100)  # another file (O_CREAT)
    p.poke(buf + 0x2000, uapi.SgxEnclaveProvision(fd=null).pack())
    show("provision with another file", p.ioctl, fd, uapi.SGX_IOC_ENCLAVE_PROVISION, buf + 0x2000)
    show("close", p.close, fd)
    show("close again", p.close, fd)
    show("ioctl after close", p.ioctl, fd, uapi.SGX_IOC_ENCLAVE_CREATE, buf + 0x1000)
    return out


def test_bad_input_gets_the_kernels_errno(native):
    r = sgxsim_exec("--", str(native["badinput"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == _model_badinput()


def test_bad_input_leaves_the_model_consistent(native):
    m = Machine()
    assert run_program([str(native["badinput"])], machine=m) == 0
    assert m.processes == []
    assert m.kernel.sgx.check_invariants() == []


def test_killed_mid_stream_leaves_nothing_behind(native):
    m = Machine()
    status = run_program([str(native["killme"])], machine=m)
    assert status == 7
    assert m.processes == []  # the killed child's model process exited too
    assert not m.kernel.sgx.encls or all(not e for e in m.kernel.sgx.encls)
    assert m.kernel.sgx.check_invariants() == []
    ps = subprocess.run(["pgrep", "-f", str(native["killme"])], capture_output=True, text=True)
    assert ps.stdout.strip() == ""


def test_raw_syscall_on_an_enclave_range_is_stopped_with_a_message(native):
    r = sgxsim_exec("--", str(native["rawsyscall"]))
    assert r.returncode == 128 + 9
    assert "raw syscall on an enclave range is not supported" in r.stderr
    assert "not stopped" not in r.stdout


def test_static_program_gets_a_clear_message(native):
    if "static" not in native:

        pytest.skip("no static libc to link a static test program")
    r = sgxsim_exec("--", str(native["static"]))
    assert r.returncode == 1
    assert "statically linked" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_program_that_cannot_start_exits_as_env_does(tmp_path):
    """Exit 1 and "command not found" for a missing program, a file without
    x permission and a directory alike, indistinguishable from the program's
    own exit 1: now env(1)'s 127 (not found) and 126 (cannot be executed)."""
    script = tmp_path / "notexec.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01 no format")
    garbage.chmod(0o755)
    cases = [(["/nonexistent/program"], 127, "/nonexistent/program: No such file or directory"),
             (["no-such-command-anywhere"], 127, "no-such-command-anywhere: No such file or directory"),
             ([str(script)], 126, f"{script}: Permission denied"),
             ([str(tmp_path)], 126, f"{tmp_path}: Is a directory"),
             # execve() itself refuses it (checked only by starting it): ENOEXEC.
             ([str(garbage)], 126, f"{garbage}: Exec format error")]
    for argv, status, message in cases:
        r = sgxsim_exec("--", *argv)
        assert (r.returncode, r.stderr) == (status, f"sgxsim exec: {message}\n"), (argv, r.stderr)
    # Found along $PATH: a file there without x permission is EACCES as for execvp().
    r = sgxsim_exec("--", "notexec.sh", env={"PATH": str(tmp_path)})
    assert (r.returncode, r.stderr) == (126, "sgxsim exec: notexec.sh: Permission denied\n"), r.stderr
    # The program's own exit 1 stays 1.
    r = sgxsim_exec("--", "/bin/sh", "-c", "exit 1")
    assert r.returncode == 1 and r.stderr == ""


def test_trace_has_every_request_with_its_deciding_rule(native, tmp_path):
    trace = tmp_path / "t.txt"
    r = sgxsim_exec("--trace", str(trace), "--", str(native["badinput"]))
    assert r.returncode == 0
    text = trace.read_text()
    assert "open('/dev/sgx_enclave', 0x2) = 3" in text
    assert "ioctl(3, SGX_IOC_ENCLAVE_CREATE, 0x0) = -1 EFAULT" in text
    assert "mm: copy_from_user" in text  # the rule that decided, as `sgxsim run` prints it
    first = text.splitlines()[0]
    assert first.startswith("1. [") and "hello" in first


def test_request_layouts_match_the_header(tmp_path):
    """protocol.py and native/protocol.h agree on every size and offset."""
    from sgxsim.exec import protocol as P
    from sgxsim.exec.build import NATIVE_SRC

    src = tmp_path / "sizes.c"
    src.write_text(
        '#include <stdio.h>\n#include <stddef.h>\n#include "protocol.h"\n'
        "int main(void) { printf(\"%zu %zu %zu %zu %zu\\n\", sizeof(struct sgxsim_request), "
        "sizeof(struct sgxsim_reply), offsetof(struct sgxsim_request, path), "
        "offsetof(struct sgxsim_reply, regs), offsetof(struct sgxsim_reply, ranges)); }\n")
    exe = tmp_path / "sizes"
    subprocess.run(["gcc", f"-I{NATIVE_SRC}", "-o", str(exe), str(src)], check=True)
    sizes = [int(x) for x in subprocess.run([str(exe)], capture_output=True, text=True,
                                            check=True).stdout.split()]
    assert sizes == [P.REQUEST_SIZE, P.REPLY_SIZE, 8 + 6 * 8 + P.NREGS * 8, 32,
                     P.REPLY_SIZE - P.MAX_RANGES * 16]
    assert struct.calcsize("<II6q18Q256s") == P.REQUEST_SIZE


def test_a_request_path_ends_at_its_first_nul():
    """The preload library copies the program's C string (strncpy): the
    server reads the name up to the first NUL, as getname() does, whatever
    follows it in the fixed-size field."""
    from sgxsim.exec import protocol as P

    raw = struct.pack(f"<II6q{P.NREGS}Q{P.PATH_MAX}s", P.OPEN, 0, 3, 2, 0, 0, 0, 0,
                      *([0] * P.NREGS), b"/dev/sgx_enclave\0/etc/passwd\0")
    assert P.Request.unpack(raw).path == "/dev/sgx_enclave"


def test_cpuid_answers_as_the_modelled_cpu(native):
    """The program's CPUID instructions were patched into UD2 and are answered
    from the model: SGX1 only and a 64-page EPC here."""
    r = sgxsim_exec("--sgx1", "--epc-pages", "64", "--", str(native["cpuid"]))
    assert r.returncode == 0, r.stderr
    cpu = Machine(sgx2=False, epc_pages=64).cpu
    want = ["7.0 sgx=1 sgx_lc=1"]
    for sub in range(4):
        regs = " ".join(f"{v:#x}" if v else "0" for v in cpu.cpuid(0x12, sub))
        want.append(f"12.{sub} {regs}")
    assert r.stdout.splitlines() == want
    assert want[1].startswith("12.0 0x1 ")  # SGX1 without SGX2
    assert cpu.cpuid(0x12, 2)[2] & ~0xFFF == 64 * 4096  # the EPC section's size


def test_cpuid_sites_are_found_by_disassembly(native):
    from sgxsim.exec.cpuid import cpuid_sites

    exe = str(native["cpuid"])
    import os

    sites = cpuid_sites(exe, os.stat(exe).st_mtime_ns)
    assert len(sites) == 2  # the two inline CPUIDs of cpuid.c (leaf 7, leaf 0x12 in a loop)


@pytest.mark.parametrize("entry", ["direct", "sigill"])
def test_two_threads_inside_enclaves_at_once_get_a_clear_message(native, entry):
    from edmm import NATIVE

    built = native["edmm"]
    r = sgxsim_exec("--", *built.argv(NATIVE / "race.script"), env={"SGXSIM_VDSO_ENTRY": entry})
    assert r.returncode == 127
    assert "two threads inside enclaves at once are not supported" in r.stderr
    assert "both returned" not in r.stdout


def test_the_programs_own_sigsegv_is_delivered_as_without_sgxsim(native):
    """The preload traps ENCLU through SIGSEGV too (a CPU with SGX refuses an
    ENCLU of a process without an enclave with #GP or #PF, as this host's may),
    so it handles SIGSEGV: every other SIGSEGV must reach the program as the
    kernel delivers it (address, sa_mask and the signal blocked, SA_RESETHAND),
    and with no handler, or SIGSEGV ignored, the program dies of it."""
    exe = str(native["segv"])
    alone = subprocess.run([exe, "handler"], capture_output=True, text=True, timeout=60)
    assert alone.returncode == 0
    assert alone.stdout == "signal 11 addr_ok 1 blocked_self 1 blocked_usr1 1 reset 1\n"
    r = sgxsim_exec("--", exe, "handler")
    assert (r.returncode, r.stdout) == (0, alone.stdout), r.stderr
    for mode in ("dfl", "ign", "raise"):  # "raise": sent, not a fault, and not ignored
        assert subprocess.run([exe, mode], capture_output=True, timeout=60).returncode == -11
        r = sgxsim_exec("--", exe, mode)
        assert r.returncode == 128 + 11, (mode, r.stderr)
    # A SIGSEGV that is no fault to run again (rt_sigreturn of a spoilt frame)
    # still kills; a fault just below the program's own signal stack is its
    # own, not the handlers' stack overrun.
    assert subprocess.run([exe, "badframe"], capture_output=True, timeout=60).returncode == -11
    assert sgxsim_exec("--", exe, "badframe").returncode == 128 + 11
    r = sgxsim_exec("--", exe, "ownstack")
    assert (r.returncode, r.stdout) == (0, "ok 1\n"), r.stderr
    # A sent SIGSEGV the program ignores is discarded (the trap handler stays,
    # and a handler installed afterwards gets the next fault).
    alone = subprocess.run([exe, "raise-ign"], capture_output=True, text=True, timeout=60)
    assert (alone.returncode, alone.stdout) == (0, "ignored, then signal 11 addr_ok 1\n")
    r = sgxsim_exec("--", exe, "raise-ign")
    assert (r.returncode, r.stdout) == (0, alone.stdout), r.stderr


def test_a_bare_enclu_is_the_models_and_its_fault_the_programs(native, tmp_path):
    """An ENCLU outside the vDSO and outside any enclave (EREPORT): whatever the
    real CPU raises for it (SIGILL without SGX, SIGSEGV with it), the model's
    CPU executes it, and the signal the model's kernel delivers for its #GP
    reaches the program's handler at the ENCLU, once (not trapped again as an
    ENCLU although it is at one)."""
    trace = tmp_path / "trace"
    r = sgxsim_exec("--trace", str(trace), "--", str(native["segv"]), "enclu")
    assert r.returncode == 0, r.stderr
    served = [line for line in trace.read_text().splitlines() if "ENCLU[EREPORT]" in line]
    assert len(served) == 1 and "= SIGSEGV at " in served[0], served
    # The model's #GP: SIGSEGV with SI_KERNEL (0x80), as the kernel's
    # do_general_protection() sends it.
    assert r.stdout == "signal 11 code 128 at_enclu 1\n"


def test_only_an_enclu_the_cpu_refused_is_the_models(native, tmp_path):
    """An ENCLU's bytes in a page that is not executable fault at the fetch:
    the CPU ran no ENCLU, so the SIGSEGV is the program's (as natively, no
    request to the server).  In an execute-only page, which the preload
    cannot read through process_vm_readv, the ENCLU is still the model's.
    SA_SIGINFO with SIG_IGN ignores a sent SIGSEGV, as the kernel does."""
    exe = str(native["segv"])
    alone = subprocess.run([exe, "nx"], capture_output=True, text=True, timeout=60)
    assert alone.stdout == "signal 11 code 2 addr_is_page 1 at_page 1\n"  # SEGV_ACCERR
    trace = tmp_path / "nx.trace"
    r = sgxsim_exec("--trace", str(trace), "--", exe, "nx")
    assert (r.returncode, r.stdout) == (0, alone.stdout), r.stderr
    assert "ENCLU[" not in trace.read_text()
    trace = tmp_path / "xo.trace"
    r = sgxsim_exec("--trace", str(trace), "--", exe, "xo")
    assert (r.returncode, r.stdout) == (0, "signal 11 code 128 addr_is_page 0 at_page 1\n"), r.stderr
    assert "ENCLU[EREPORT]" in trace.read_text()
    r = sgxsim_exec("--", exe, "siginfo-ign")
    assert (r.returncode, r.stdout) == (0, "ignored\n"), r.stderr


def test_a_bare_enclu_in_a_second_thread_traps_on_a_stack_of_its_own(native):
    """A new thread has no alternate stack (clone() resets it): the preload
    gives each thread one, so the handler never runs below the program's
    stack pointer, where the server writes back what the enclave stored."""
    for mode in ("thread", "thrd"):  # pthread_create, C11 thrd_create
        r = sgxsim_exec("--", str(native["segv"]), mode)
        assert (r.returncode, r.stdout) == (0, "signal 11 code 128 at_enclu 1 onstack 1\n"), \
            (mode, r.stderr)


def test_an_enclu_inside_the_programs_own_handler(native):
    """A runtime's exception handler may enter its enclave (the Intel SDK's
    does): with SA_NODEFER, as such runtimes install theirs, the ENCLU is the
    model's and the model's fault reaches the handler again; without it
    SIGSEGV is blocked in the handler, and the fault's signal kills the
    program (force_sig_fault()), whichever signal the host's ENCLU raised."""
    exe = str(native["segv"])
    r = sgxsim_exec("--", exe, "nested")
    assert (r.returncode, r.stdout) == (0, "signal 11 handler ran 2 times\n"), r.stderr
    r = sgxsim_exec("--", exe, "nested-defer")
    assert (r.returncode, r.stdout) == (128 + 11, ""), r.stderr


def _alone(exe: str, *args: str) -> tuple[int, str]:
    """The program run without sgxsim: its exit status as `sgxsim exec` reports
    it (128 + the signal that killed it) and its output."""
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    return (r.returncode if r.returncode >= 0 else 128 - r.returncode), r.stdout


# What the kernel decides in each mode, beside what the mode is about.
SIGMASK_MODES = {
    "worker": "worker: ill 1 segv 1 usr1 1 usr2 1\n",
    "inherit": "attr thread: ill 0 segv 1 usr1 0 usr2 0\n",
    "fault": "cpuid same 1\n",
    "pending": "raised twice: pending segv 1 count 0 code 0\nunblocked: pending segv 0 count 1 code -6\n",
    "process": "both block it: pending segv 1 count 1 code 0\ndelivered in main 1 count 2\n",
    "handler": "after the SIGUSR1 handler: ill 1 segv 0 usr1 0 usr2 1\n",
    "calls": "sigset 11 SIG_HOLD again returns SIG_HOLD\nheld: ill 0 segv 1 usr1 0 usr2 0\n",
}


@pytest.mark.parametrize("mode", SIGMASK_MODES)
def test_the_programs_signal_mask_is_kept_as_the_kernel_keeps_it(native, mode):
    """The preload keeps the program's mask for SIGILL and SIGSEGV aside (the
    real mask never blocks them: a trap on a blocked signal would kill), so
    everything the mask decides must still come out as the kernel decides it
    (tests/exec/native/sigmask.c, run with and without sgxsim): a thread that
    blocks every signal executes a trapped CPUID ("worker"); threads and a
    fork's child inherit the mask ("inherit"); a fault on a blocked signal
    kills ("fault"); a sent SIGSEGV waits while blocked and is delivered when
    unblocked, SIG_IGN discards it ("pending"), one sent to the process goes
    to a thread that does not block it ("process"); handlers' sa_mask,
    uc_sigmask and siglongjmp ("handler"); sigset, sysv_signal, bsd_signal and
    the other old calls install the program's handlers without replacing the
    trap handlers ("calls")."""
    exe = str(native["sigmask"])
    status, out = _alone(exe, mode)
    assert SIGMASK_MODES[mode] in out and "same 0" not in out, out
    r = sgxsim_exec("--", exe, mode)
    assert (r.returncode, r.stdout) == (status, out), r.stderr


# tests/exec/native/sigmore.c: each mode, what the kernel decides in it.
SIGMORE_MODES = {
    "race": "signal 10 raised 150000 times while re-installed: bad 0\n",
    "notify": "timer: notified 1, CPUID ran 1, ill/segv blocked 0x408\n",
    "eintr": "handled: read returned 1 (data), handler ran 1\n"
             "blocked: read returned 1 (data), handler ran 1\nunblocked: handler ran 2\n",
    "create": "100 threads: handler ran 100 times, 0 before the start routine\n",
    "zombie": "20 kill(SIGSEGV) after main's pthread_exit: 0 lost\n",
    "vfork": "parent after the vfork child: segv blocked 0, handler kept 1\n"
             "the parent's fault reached its handler\n",
    "plain3": "signal 11: plain handler saw siginfo and ucontext 1\n",
    "oldact": "signal 10 after SA_RESETHAND: handler SIG_DFL flags 0x9c000000 mask 0xc00\n",
}


@pytest.mark.parametrize("mode", SIGMORE_MODES)
def test_signal_delivery_matches_the_run_without_sgxsim(native, mode):
    """More of what the kernel decides about signals, with sgxsim as without
    (tests/exec/native/sigmore.c): a handler running while another thread
    re-installs its action sees one whole action ("race", SIGSEGV through the
    trap handler, SIGUSR1 through tramp()); a SIGEV_THREAD function of a
    timer or a message queue, in a thread glibc makes with every signal
    blocked, runs CPUID ("notify"); a SIGSEGV sent to a thread in read()
    restarts it after a handler of signal()'s (SA_RESTART) and does not
    interrupt it while blocked ("eintr"); one sent to a new thread that
    inherits SIGSEGV blocked waits until that thread unblocks it ("create");
    one sent to the process after the main thread's pthread_exit() reaches
    the thread that does not block it ("zombie"); a vfork() child's signal
    calls leave the parent's mask and handlers alone ("vfork"); a handler
    without SA_SIGINFO gets the kernel's 2nd and 3rd arguments ("plain3");
    the old action after SA_RESETHAND fired ("oldact")."""
    exe = str(native["sigmore"])
    status, out = _alone(exe, mode)
    assert SIGMORE_MODES[mode] in out, out
    r = sgxsim_exec("--", exe, mode, timeout=60)
    assert (r.returncode, r.stdout) == (status, out), r.stderr


def test_an_enclu_while_every_signal_is_blocked_is_the_cpus(native, tmp_path):
    """ENCLU is an instruction: a thread that blocks every signal (as runtimes'
    workers do around enclave calls) executes it.  A bare EREPORT outside any
    enclave is the model's, and the SIGSEGV of its #GP, blocked, kills
    (force_sig_fault()); with an enclave, the loader's script run after it
    blocked every signal gives what it gives unblocked, with the vDSO's ENCLU
    on the trap path (SGXSIM_VDSO_ENTRY=sigill)."""
    from edmm import SCRIPT

    from sgxsim.exec.engine import EnclaveEngine

    trace = tmp_path / "trace"
    r = sgxsim_exec("--trace", str(trace), "--", str(native["sigmask"]), "enclu")
    assert (r.returncode, r.stdout) == (128 + 11, "enclu\n"), r.stderr
    served = [line for line in trace.read_text().splitlines() if "ENCLU[EREPORT]" in line]
    assert len(served) == 1 and "= SIGSEGV at " in served[0], served
    import edmm

    built = native["edmm"]
    script = tmp_path / "blocked.script"
    script.write_text("block\n" + SCRIPT.read_text())
    r = sgxsim_exec("--", *built.argv(script), env={"SGXSIM_VDSO_ENTRY": "sigill"})
    assert r.returncode == 0, r.stderr
    want = edmm.run_python(built, EnclaveEngine())
    assert r.stdout.splitlines() == [want[0], "block -> 0", *want[1:]]


def test_source_on_a_noexec_mount_lacks_vm_mayexec(native, tmp_path):
    """The mirror of a file mapping from a noexec mount (the program's
    /proc/PID/mountinfo) lacks VM_MAYEXEC: ADD_PAGES of an executable page
    from it is EACCES, as on the kernel; from an exec mount it is added."""
    import os


    mnt = tmp_path / "nx"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode:
        pytest.skip("cannot mount a noexec tmpfs here (not root?)")
    try:
        for d in (mnt, tmp_path):
            (d / "page").write_bytes(bytes(4096))
        r1 = sgxsim_exec("--", str(native["noexec"]), str(mnt / "page"))
        r2 = sgxsim_exec("--", str(native["noexec"]), str(tmp_path / "page"))
    finally:
        subprocess.run(["umount", str(mnt)])
    assert r1.stdout.splitlines() == [f"rx page from {mnt}/page -> EACCES",
                                      "rx page from anonymous memory -> 0"], r1.stderr
    assert r2.stdout.splitlines()[0] == f"rx page from {tmp_path}/page -> 0"
    assert os.path.ismount(mnt) is False


def test_killed_inside_a_runaway_enclave_call_leaves_no_server(native):
    """The engine's timer interrupt lets the server notice the kill and
    abandon the call (after the AEX), so `sgxsim exec` ends."""
    import signal
    import time

    from edmm import NATIVE

    argv = native["edmm"].argv(NATIVE / "spin.script")
    p = subprocess.Popen([*SGXSIM, "--", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.monotonic() + 60
        child = ""
        while not child and time.monotonic() < deadline:
            time.sleep(0.2)
            # The program, by its process name, not another child: the build's
            # make runs first, and a child between fork and exec still has the
            # server's command line, which names the program.
            child = subprocess.run(["pgrep", "-P", str(p.pid), "-x", Path(argv[0]).name[:15]],
                                   capture_output=True, text=True).stdout.split()
            child = child[0] if child else ""
        assert child, "the program did not start"
        time.sleep(1.0)  # inside the spinning call by now
        os.kill(int(child), signal.SIGKILL)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + 9, err
    assert "Traceback" not in err


def test_unknown_kernel_or_policy_is_a_usage_error():
    # As for every other command (check, run, selftest): exit status 2 with
    # the option named, before the program starts; they were exit status 1
    # ("Error: unknown kernel ...") once the native half had been built.
    r = sgxsim_exec("--kernel", "linux-9.9", "--", "true")
    assert r.returncode == 2 and "Invalid value for '--kernel'" in r.stderr, r.stderr
    assert "unknown kernel 'linux-9.9'" in r.stderr and "linux-6.0" in r.stderr
    r = sgxsim_exec("--policy", "apparmor", "--", "true")
    assert r.returncode == 2 and "Invalid value for '--policy'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_an_unwritable_trace_is_a_usage_error_before_the_program_runs(tmp_path):
    """--trace in a place no file can be written: exit status 2 and the option
    named, and the program never started (it would have made ``ran``)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    ran = tmp_path / "ran"
    r = sgxsim_exec("--trace", str(blocker / "trace"), "--", "touch", str(ran))
    assert r.returncode == 2, r.stderr
    assert "--trace" in r.stderr and "not a writable directory" in r.stderr
    assert not ran.exists()
