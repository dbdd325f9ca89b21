# found before the fixes of issue 12: 1 RAM frames left
from sgxsim.fuzz.repro import Machine, Signal, check_after_exit, check_machine, handler, run_struct, vdso

m = Machine(kernel='linux', epc_pages=24)
boot_frames = set(m.cpu.phys.frames)
try:
    p1 = m.spawn()
    p1.mmap(0x10000000, 0x8000, 0x3, 0x32, -1, 0)
except (OSError, Signal):
    pass
try:
    _r = p1.mmap(0x12000, 0x24000, 0x3, 0x100031, -1, 0x0)
except (OSError, Signal):
    pass
try:
    p1.poke(0x10005000, bytes.fromhex('070000000000000093a020affa5012919805034867d8c77f0040010000000000'))
    p1.poke(0x10006000, run_struct(0x13000, vdso(p1).register_handler(handler('eenter')), b''))
    vdso(p1).sgx_enter_enclave(-0x1, -0x1, 0x0, 0x2, 0, -0x1, 0x10006000)
except (OSError, Signal):
    pass
try:
    p1.exit()
except (OSError, Signal):
    pass
problems = check_machine(m)
problems = problems or check_after_exit(m, boot_frames)
assert not problems, problems
