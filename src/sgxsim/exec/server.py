"""The `sgxsim exec` server: one Machine serving an unmodified native program.

The server starts the program with the preload library (``native/preload.c``)
and a Unix socket; every native process of the program (the first one and
each fork) connects and becomes a model process.  Requests are served one at
a time, each as a transaction on the program's memory
(:class:`sgxsim.exec.memory.ProgramMemory`):

* files: open/close/dup/stat of ``/dev/sgx_enclave`` and ``/dev/sgx_provision``
  are the model's (``Process.open/close/dup/stat``); the program holds a
  placeholder fd (a memfd) per model file; read/write/lseek (and their p-
  and -v forms) and fcntl(F_GETFL/F_SETFL) of it are the model's too
  (``Process.read`` ..., with the program's buffer pointers);
* ioctl: ``Process.ioctl`` with the program's own pointer, so the driver reads
  SECS, SECINFO, source pages and SIGSTRUCT from the mirror of its memory;
* mmap of a model file, munmap/mprotect/mremap touching an enclave range:
  the model's mm (the program reserves the range PROT_NONE);
* ENCLU (the vDSO's direct entry, or trapped as SIGILL or SIGSEGV): the
  registers go to the model's LP, the leaf runs, then the enclave's code
  (``runner.run(cpu, lp)``) until EEXIT or a fault; a fault goes through
  the kernel's fault path (``do_user_addr_fault``); a fault the kernel does not fix, at an ENCLU in
  the vDSO's exception table, is fixed up as ``fixup_vdso_exception()`` does
  (RIP to the handler, vector/error code/address in RDI/RSI/RDX), otherwise
  it is a signal delivered at the AEP;
* CPUID (the executable's CPUID patched into UD2): :mod:`sgxsim.exec.cpuid`.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from elftools.elf.elffile import ELFFile

from sgxsim.exec import protocol as P
from sgxsim.exec.cpuid import answer as cpuid_answer
from sgxsim.exec.cpuid import patch_cpuid
from sgxsim.exec.memory import BridgeError, ProgramMemory
from sgxsim.hw import uapi
from sgxsim.hw.consts import Enclu
from sgxsim.hw.faults import HwFault
from sgxsim.kernel.errors import Signal, TaskBlocked, why_of
from sgxsim.trace import Decision
from sgxsim.user.vdso import deliver_fault, vdso_fixup_applies

IOCTL_NAMES = {v: k for k, v in vars(uapi).items() if k.startswith("SGX_IOC_") and isinstance(v, int)}
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
ENCLU_BYTES = b"\x0f\x01\xd7"


def read_extable(vdso_image: Path) -> list[tuple[int, int]]:
    """(ENCLU offset, fixup offset) pairs of the vDSO image (section sgxsim_extable)."""
    with open(vdso_image, "rb") as f:
        sec = ELFFile(f).get_section_by_name("sgxsim_extable")
        data, base = sec.data(), sec["sh_addr"]
    out = []
    for i in range(0, len(data), 8):
        insn, fixup = struct.unpack_from("<ii", data, i)
        out.append((base + i + insn, base + i + 4 + fixup))
    return out


class EnclaveRunner:
    """What runs enclave code: a Python program bound to the enclave's
    identity (``EnclaveLibrary``) if there is one, else ``engine`` (real
    machine code on a CPU emulator)."""

    def __init__(self, library: Any = None, engine: Any = None):
        self.library = library
        self.engine = engine

    def run(self, cpu: Any, lp: Any) -> None:
        lib = self.library
        if lib is not None and (self.engine is None or cpu.enclave_identity(lp) in lib.programs):
            return lib.run(cpu, lp)
        return self.engine.run(cpu, lp)


class Conn:
    """One native process: its socket and its model process."""

    def __init__(self, sock: socket.socket, pid: int):
        self.sock = sock
        self.pid = pid
        self.proc: Any = None
        self.mem: ProgramMemory | None = None
        self.fds: dict[int, int] = {}  # placeholder fd -> model fd (the same number)
        self.vdso_base = 0
        self.cpuid_sites: set[int] = set()
        self.buf = b""


class ExecServer:
    """Serves the native processes of one program from ``machine``."""

    def __init__(self, machine: Any, runner: Any, vdso_image: Path, trace: TextIO | None = None):
        self.machine = machine
        self.runner = runner
        self.extable = read_extable(vdso_image)
        self.trace_out = trace
        self.step = 0
        self.forks: dict[int, tuple[Any, Conn]] = {}
        self.tokens = itertools.count(1)
        self.conns: dict[int, Conn] = {}
        self.errors: list[str] = []
        self.serving: Conn | None = None  # the process whose request runs

    # -- trace -------------------------------------------------------------------------
    def _log(self, c: Conn, what: str, result: str, why: Any = None) -> None:
        decisions = self.machine.trace.take()
        if self.trace_out is None:
            return
        if why is not None and why not in decisions:
            decisions.append(why)  # the refusal's own provenance
        self.step += 1
        lines = [f"{self.step}. [{c.pid}] {what} = {result}"]
        lines += [f"     {d}" for d in decisions]
        self.trace_out.write("\n".join(lines) + "\n")

    # -- requests -------------------------------------------------------------------------
    def handle(self, c: Conn, req: P.Request) -> P.Reply:
        op = req.op
        if c.proc is None and op != P.HELLO:
            return P.Reply(ret=-errno.EPROTO)
        fn = self._HANDLERS.get(op)
        if fn is None:
            return P.Reply(ret=-errno.ENOSYS)
        rep = fn(self, c, req)
        if c.mem is not None and c.proc is not None and c.proc.alive:
            rep.ranges = c.mem.enclave_ranges()
        return rep

    def _syscall(self, c: Conn, what: str, fn: Callable[[], int]) -> P.Reply:
        """Run one model syscall as a transaction on the program's memory."""
        try:
            c.mem.sync()
            try:
                ret = fn()
            except OSError as e:
                c.mem.changed()
                self._log(c, what, f"-1 {errno.errorcode.get(e.errno, e.errno)}", why_of(e))
                return P.Reply(ret=-(e.errno or errno.EINVAL))
            c.mem.changed()
            self._log(c, what, f"{ret:#x}" if isinstance(ret, int) and ret > 0xFFFF else str(ret))
            return P.Reply(ret=ret if isinstance(ret, int) else 0)
        finally:
            c.mem.finish()

    def _model_fd(self, c: Conn, fd: int) -> int:
        mfd = c.fds.get(fd)
        if mfd is None:
            raise OSError(errno.EBADF, f"fd {fd} is not a model file")
        return mfd

    def h_hello(self, c: Conn, req: P.Request) -> P.Reply:
        token, c.vdso_base = req.a[0], req.a[1]
        if token:
            entry = self.forks.pop(token, None)
            if entry is None:
                return P.Reply(ret=-errno.ESRCH)
            c.proc, parent = entry
            c.fds = dict(parent.fds)
            c.cpuid_sites = parent.cpuid_sites  # the child's code is the parent's
            for fd in parent.mem.model_fds:  # the parent's mirror files are not the child's
                c.proc.close(fd)
        else:
            c.proc = self.machine.spawn()
        c.mem = ProgramMemory(c.proc, c.pid)
        c.mem.forget_inherited()
        if not token:
            c.cpuid_sites = patch_cpuid(c.pid, c.mem, c.mem.real_maps())
        self._log(c, f"hello(token={token}, vdso={c.vdso_base:#x})",
                  f"model pid {c.proc.pid}, {len(c.cpuid_sites)} CPUID patched")
        return P.Reply(ret=0)

    def h_open(self, c: Conn, req: P.Request) -> P.Reply:
        fd, flags, mode = req.a[0], req.a[1], req.a[2]

        def sys_open() -> int:
            # The model's fd is the program's number, so that an fd passed
            # inside a struct (SGX_IOC_ENCLAVE_PROVISION) names the same file.
            mfd = c.proc.open(req.path, flags, mode)
            if mfd != fd:
                c.proc.dup(mfd, fd)
                c.proc.close(mfd)
            c.fds[fd] = fd
            return fd

        return self._syscall(c, f"open({req.path!r}, {flags:#x})", sys_open)

    def h_close(self, c: Conn, req: P.Request) -> P.Reply:
        fd = req.a[0]

        def sys_close() -> int:
            c.proc.close(self._model_fd(c, fd))
            del c.fds[fd]
            return 0

        return self._syscall(c, f"close({fd})", sys_close)

    def h_dup(self, c: Conn, req: P.Request) -> P.Reply:
        old, new = req.a[0], req.a[1]

        def sys_dup() -> int:
            c.fds[new] = c.proc.dup(self._model_fd(c, old), new)
            return new

        return self._syscall(c, f"dup({old}) -> {new}", sys_dup)

    def h_stat(self, c: Conn, req: P.Request) -> P.Reply:
        fd = req.a[0]
        try:
            st = c.proc.stat(fd=self._model_fd(c, fd)) if fd >= 0 else c.proc.stat(req.path)
        except OSError as e:
            self._log(c, f"stat({req.path or fd})", f"-1 {errno.errorcode.get(e.errno)}", why_of(e))
            return P.Reply(ret=-e.errno)
        self._log(c, f"stat({req.path or fd})", f"mode {st.st_mode:#o}")
        return P.Reply(ret=0, stat=(st.st_mode, st.st_ino, st.st_rdev, st.st_size))

    def h_ioctl(self, c: Conn, req: P.Request) -> P.Reply:
        fd, cmd, arg = req.a[0], req.a[1] & U32, req.a[2] & ((1 << 64) - 1)
        name = IOCTL_NAMES.get(cmd, f"{cmd:#x}")
        return self._syscall(c, f"ioctl({fd}, {name}, {arg:#x})",
                             lambda: c.proc.ioctl(self._model_fd(c, fd), cmd, arg))

    # read/write/lseek/fcntl of a model file: the model's vfs answers, with
    # the program's own buffer and iovec pointers (as for an ioctl).
    def h_read(self, c: Conn, req: P.Request) -> P.Reply:
        fd, buf, n = req.a[0], req.a[1] & U64, req.a[2] & U64
        return self._syscall(c, f"read({fd}, {buf:#x}, {n:#x})",
                             lambda: c.proc.read(self._model_fd(c, fd), n, addr=buf))

    def h_write(self, c: Conn, req: P.Request) -> P.Reply:
        fd, buf, n = req.a[0], req.a[1] & U64, req.a[2] & U64
        return self._syscall(c, f"write({fd}, {buf:#x}, {n:#x})",
                             lambda: c.proc.write(self._model_fd(c, fd), buf, n))

    def h_pread(self, c: Conn, req: P.Request) -> P.Reply:
        fd, buf, n, pos = req.a[0], req.a[1] & U64, req.a[2] & U64, req.a[3]
        return self._syscall(c, f"pread({fd}, {buf:#x}, {n:#x}, {pos})",
                             lambda: c.proc.pread(self._model_fd(c, fd), n, pos, addr=buf))

    def h_pwrite(self, c: Conn, req: P.Request) -> P.Reply:
        fd, buf, n, pos = req.a[0], req.a[1] & U64, req.a[2] & U64, req.a[3]
        return self._syscall(c, f"pwrite({fd}, {buf:#x}, {n:#x}, {pos})",
                             lambda: c.proc.pwrite(self._model_fd(c, fd), buf, pos, n=n))

    def h_readv(self, c: Conn, req: P.Request) -> P.Reply:
        fd, iov, vlen = req.a[0], req.a[1] & U64, req.a[2] & U64
        return self._syscall(c, f"readv({fd}, {iov:#x}, {vlen})",
                             lambda: c.proc.readv(self._model_fd(c, fd), iov, vlen=vlen))

    def h_writev(self, c: Conn, req: P.Request) -> P.Reply:
        fd, iov, vlen = req.a[0], req.a[1] & U64, req.a[2] & U64
        return self._syscall(c, f"writev({fd}, {iov:#x}, {vlen})",
                             lambda: c.proc.writev(self._model_fd(c, fd), iov, vlen=vlen))

    def h_preadv(self, c: Conn, req: P.Request) -> P.Reply:
        fd, iov, vlen, pos = req.a[0], req.a[1] & U64, req.a[2] & U64, req.a[3]
        return self._syscall(c, f"preadv({fd}, {iov:#x}, {vlen}, {pos})",
                             lambda: c.proc.preadv(self._model_fd(c, fd), iov, pos, vlen=vlen))

    def h_pwritev(self, c: Conn, req: P.Request) -> P.Reply:
        fd, iov, vlen, pos = req.a[0], req.a[1] & U64, req.a[2] & U64, req.a[3]
        return self._syscall(c, f"pwritev({fd}, {iov:#x}, {vlen}, {pos})",
                             lambda: c.proc.pwritev(self._model_fd(c, fd), iov, pos, vlen=vlen))

    def h_lseek(self, c: Conn, req: P.Request) -> P.Reply:
        fd, off, whence = req.a[0], req.a[1], req.a[2] & U32
        return self._syscall(c, f"lseek({fd}, {off}, {whence})",
                             lambda: c.proc.lseek(self._model_fd(c, fd), off, whence))

    def h_fcntl(self, c: Conn, req: P.Request) -> P.Reply:
        fd, cmd, arg = req.a[0], req.a[1] & U32, req.a[2] & U64
        return self._syscall(c, f"fcntl({fd}, {cmd}, {arg:#x})",
                             lambda: c.proc.fcntl(self._model_fd(c, fd), cmd, arg))

    def h_mmap(self, c: Conn, req: P.Request) -> P.Reply:
        addr, length, prot, flags, fd, off = req.a
        return self._syscall(
            c, f"mmap({addr:#x}, {length:#x}, {prot:#x}, {flags:#x}, {fd}, {off:#x})",
            lambda: c.proc.mmap(addr, length, prot, flags, self._model_fd(c, fd), off))

    def h_munmap(self, c: Conn, req: P.Request) -> P.Reply:
        addr, length = req.a[0], req.a[1]

        def sys_munmap() -> int:
            c.proc.munmap(addr, length)
            return 0

        return self._syscall(c, f"munmap({addr:#x}, {length:#x})", sys_munmap)

    def h_mprotect(self, c: Conn, req: P.Request) -> P.Reply:
        addr, length, prot = req.a[0], req.a[1], req.a[2]

        def sys_mprotect() -> int:
            c.proc.mprotect(addr, length, prot)
            return 0

        return self._syscall(c, f"mprotect({addr:#x}, {length:#x}, {prot:#x})", sys_mprotect)

    def h_mremap(self, c: Conn, req: P.Request) -> P.Reply:
        old, old_size, new_size, flags, new = req.a[:5]
        return self._syscall(c, f"mremap({old:#x}, {old_size:#x}, {new_size:#x}, {flags:#x}, {new:#x})",
                             lambda: c.proc.mremap(old, old_size, new_size, flags, new))

    def h_fork(self, c: Conn, req: P.Request) -> P.Reply:
        child = c.proc.fork()
        token = next(self.tokens)
        self.forks[token] = (child, c)
        self._log(c, "fork()", f"model pid {child.pid}")
        return P.Reply(ret=token)

    def h_fork_failed(self, c: Conn, req: P.Request) -> P.Reply:
        entry = self.forks.pop(req.a[0], None)
        if entry is not None:
            entry[0].exit()
        return P.Reply(ret=0)

    def h_cpuid(self, c: Conn, req: P.Request) -> P.Reply:
        leaf, subleaf, rip = req.a[0] & U32, req.a[1] & U32, req.a[2]
        if rip not in c.cpuid_sites:
            return P.Reply(ret=-errno.ENOENT)  # a UD2 of the program's own
        real = tuple(req.regs[r] & U32 for r in ("rax", "rbx", "rcx", "rdx"))
        eax, ebx, ecx, edx = cpuid_answer(self.machine.cpu, leaf, subleaf, real)
        self._log(c, f"cpuid({leaf:#x}, {subleaf:#x}) at {rip:#x}",
                  f"{eax:#x} {ebx:#x} {ecx:#x} {edx:#x}")
        return P.Reply(ret=0, regs={"rax": eax, "rbx": ebx, "rcx": ecx, "rdx": edx})

    def h_unsupported(self, c: Conn, req: P.Request) -> P.Reply:
        self.errors.append(req.path)
        return P.Reply(ret=0)

    def on_interrupt(self, cpu: Any, lp: Any) -> None:
        """The kernel's turn at a timer interrupt during an enclave call: a
        native process killed meanwhile abandons the call (after the AEX the
        interrupt took, so the model stays consistent)."""
        c = self.serving
        if c is not None and not _alive(c.pid):
            raise BridgeError(f"process {c.pid} died inside an enclave call")

    # -- ENCLU ---------------------------------------------------------------------------------
    def _fixup(self, c: Conn, rip: int) -> int | None:
        # fixup_vdso_exception(): only a fault at an ENCLU listed in the vDSO's table
        for insn, fixup in self.extable:
            if c.vdso_base and rip == c.vdso_base + insn:
                return c.vdso_base + fixup
        return None

    def h_enclu(self, c: Conn, req: P.Request) -> P.Reply:
        proc = c.proc
        rep = P.Reply()
        try:
            c.mem.sync()
            k = proc.switch_to()
            cpu, lp = k.cpu, proc.lp
            lp.regs.update(req.regs)
            for _ in range(self.MAX_RESUMES):
                if self._enclu_once(c, cpu, lp, rep):
                    break
        finally:
            c.mem.finish()
        return rep

    MAX_RESUMES = 4096

    def _enclu_once(self, c: Conn, cpu: Any, lp: Any, rep: P.Reply) -> bool:
        """One ENCLU at lp.regs["rip"]: the leaf, then the enclave until EEXIT or
        a fault.  Returns False when the kernel fixed a fault and the AEP it
        returns to is itself an ENCLU (the vDSO's): the CPU would run that
        ERESUME next with nothing in between, so the server runs it too."""
        r = lp.regs
        what = self._enclu_what(r) if self.trace_out is not None else ""  # only for a trace
        proc = c.proc
        again = False
        try:
            try:
                cpu.enclu(lp)  # the instruction: leaf in EAX, operands in RBX/RCX/RDX
                if lp.enclave is not None:
                    self.runner.run(cpu, lp)
                result = f"rip {lp.regs['rip']:#x}"
            except HwFault as fault:
                deliver_fault(proc, fault)  # the kernel fixed it: back to the AEP
                result = f"{fault.why}; fixed, resume at {lp.regs['rip']:#x}"
                again = c.mem.read_real(lp.regs["rip"], 3) == ENCLU_BYTES
            rep.regs = dict(lp.regs)
        except Signal as sig:
            regs = dict(lp.regs)
            fix = self._fixup(c, regs["rip"]) if vdso_fixup_applies(sig) else None
            if fix is not None:
                proc.kernel.trace.add(Decision(
                    "vdso", "fixup_vdso_exception", "reported",
                    f"vector {sig.trapno}, error code {sig.error_code:#x}, address {sig.addr:#x}: "
                    f"{sig.why}"))
                regs.update(rip=fix, rdi=sig.trapno, rsi=sig.error_code, rdx=sig.addr)
                result = f"fault reported (vector {sig.trapno}, error code {sig.error_code:#x})"
            else:
                rep.resume, rep.signo, rep.si_code, rep.addr = (P.RESUME_SIGNAL, sig.signo,
                                                                sig.si_code, sig.addr)
                result = f"{signal.Signals(sig.signo).name} at {regs['rip']:#x}"
            rep.regs = regs
        self._log(c, what, result)
        return not again

    @staticmethod
    def _enclu_what(r: dict[str, int]) -> str:
        leaf = r["rax"] & U32
        try:
            name = Enclu(leaf).name
        except ValueError:
            name = str(leaf)
        return f"ENCLU[{name}](rbx={r['rbx']:#x}, rcx={r['rcx']:#x}) at {r['rip']:#x}"

    _HANDLERS = {P.HELLO: h_hello, P.OPEN: h_open, P.CLOSE: h_close, P.DUP: h_dup,
                 P.IOCTL: h_ioctl, P.MMAP: h_mmap, P.MUNMAP: h_munmap, P.MPROTECT: h_mprotect,
                 P.MREMAP: h_mremap, P.ENCLU: h_enclu, P.CPUID: h_cpuid, P.FORK: h_fork,
                 P.FORK_FAILED: h_fork_failed, P.STAT: h_stat, P.UNSUPPORTED: h_unsupported,
                 P.READ: h_read, P.WRITE: h_write, P.PREAD: h_pread, P.PWRITE: h_pwrite,
                 P.READV: h_readv, P.WRITEV: h_writev, P.PREADV: h_preadv, P.PWRITEV: h_pwritev,
                 P.LSEEK: h_lseek, P.FCNTL: h_fcntl}

    # -- processes --------------------------------------------------------------------------------
    def _gone(self, c: Conn) -> None:
        """The native process exited (or was killed): so does its model process."""
        if c.proc is not None and c.proc.alive:
            c.proc.exit()
            self._log(c, "exit()", "0")
        if c.mem is not None:
            c.mem.close()

    def serve(self, argv: list[str], preload: Path, vdso: Path, env: dict | None = None) -> int:
        """Run ``argv`` under the bridge; return its exit status (128+N if killed by N)."""
        with tempfile.TemporaryDirectory(prefix="sgxsim-exec-") as tmp:
            path = os.path.join(tmp, "sock")
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            lsock.bind(path)
            lsock.listen(64)
            env = dict(os.environ if env is None else env)
            env.update(SGXSIM_SOCK=path, SGXSIM_VDSO=str(vdso),
                       LD_PRELOAD=" ".join(filter(None, [str(preload), env.get("LD_PRELOAD")])))
            child = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent)
            try:
                return self._loop(lsock, child)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
                for c in list(self.conns.values()):
                    self._gone(c)
                    c.sock.close()
                self.conns.clear()
                lsock.close()

    def _loop(self, lsock: socket.socket, child: subprocess.Popen) -> int:
        sel = selectors.DefaultSelector()
        sel.register(lsock, selectors.EVENT_READ, "listen")
        pidfd = os.pidfd_open(child.pid)
        sel.register(pidfd, selectors.EVENT_READ, "child")
        status: int | None = None
        try:
            while status is None or self.conns:
                for key, _ in sel.select():
                    if key.data == "listen":
                        s, _ = lsock.accept()
                        pid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                               12))[0]
                        c = Conn(s, pid)
                        self.conns[s.fileno()] = c
                        sel.register(s, selectors.EVENT_READ, c)
                    elif key.data == "child":
                        sel.unregister(pidfd)
                        _, st = os.waitpid(child.pid, 0)
                        child.returncode = st
                        status = os.waitstatus_to_exitcode(st)
                        status = 128 - status if status < 0 else status
                    else:
                        self._service(sel, key.data)
        finally:
            os.close(pidfd)
        return status

    def _service(self, sel: selectors.BaseSelector, c: Conn) -> None:
        try:
            data = c.sock.recv(P.REQUEST_SIZE - len(c.buf))
        except OSError:
            data = b""
        if not data:
            sel.unregister(c.sock)
            del self.conns[c.sock.fileno()]
            self._gone(c)
            c.sock.close()
            return
        c.buf += data
        if len(c.buf) < P.REQUEST_SIZE:
            return
        req, c.buf = P.Request.unpack(c.buf), b""
        self.serving = c
        try:
            rep = self.handle(c, req)
        except (BridgeError, OSError, TaskBlocked) as e:
            if isinstance(e, OSError) and _alive(c.pid):
                raise  # not the program's death: a bug of the bridge, shown as such
            if _alive(c.pid):  # else it died mid-request: its EOF cleans up
                # TaskBlocked: the real call would never return (a lock a
                # kernel oops left held); the program is stopped, not hung.
                print(f"sgxsim exec: {e}", file=sys.stderr)
                self.errors.append(str(e))
                os.kill(c.pid, signal.SIGKILL)
            return
        try:
            c.sock.sendall(rep.pack())
        except OSError:
            pass  # the process died mid-call: its EOF cleans up


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _die_with_parent() -> None:
    # prctl(PR_SET_PDEATHSIG, SIGKILL): no program outlives its server
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def static_program(path: str) -> bool:
    """True for an ELF executable without PT_INTERP (LD_PRELOAD cannot reach it)."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return False
            f.seek(0)
            elf = ELFFile(f)
            return not any(s["p_type"] == "PT_INTERP" for s in elf.iter_segments())
    except (OSError, Exception):
        return False
