# found before the fixes of issue 12: ValueError: SsaGpr: argument out of range at sgxsim/hw/structs.py:80
from sgxsim.fuzz.repro import Machine, Signal, build_enclave, check_machine, run_struct, vdso

m = Machine(kernel='no-hook', epc_pages=256)
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
    p1.poke(0x10005000, bytes.fromhex('00000000000000000040feafff7f000000000000000000000000000000000000'))
    p1.poke(0x10006000, run_struct(0x7fffaffe0000, 0, b''))
    vdso(p1).sgx_enter_enclave(-0x1, 0xffffffffffffffff, 0x4db890ec792b7774, 0x2, 0, -0x1, 0x10006000)
except (OSError, Signal):
    pass
problems = check_machine(m)
assert not problems, problems
