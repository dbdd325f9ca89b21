# found before the fixes of issue 12: 1 RAM frames left
from sgxsim.fuzz.repro import Machine, Signal, build_enclave, check_after_exit, check_machine, run_struct, vdso

m = Machine(kernel='rfc-2019', epc_pages=16)
boot_frames = set(m.cpu.phys.frames)
try:
    p1 = m.spawn()
    p1.mmap(0x10000000, 0x8000, 0x3, 0x32, -1, 0)
except (OSError, Signal):
    pass
try:
    _r = build_enclave(p1, 0x10000000, 1)
except (OSError, Signal):
    pass
try:
    _r = p1.mmap(0x7fffaffde000, 0x5000, 0x1, 0x31, -1, 0x10000000000)
except (OSError, Signal):
    pass
try:
    p1.poke(0x10005000, bytes.fromhex('030000000000000000000000000000000030feafff7f00000040feafff7f0000'))
    p1.poke(0x10006000, run_struct(0x7fffaffe2000, 0, b''))
    vdso(p1).sgx_enter_enclave(0x10005000, -0x1, 0x0, 0x2, 0, 0xffffffffffffffff, 0x10006000)
except (OSError, Signal):
    pass
try:
    p1.exit()
except (OSError, Signal):
    pass
problems = check_machine(m)
problems = problems or check_after_exit(m, boot_frames)
assert not problems, problems
