# found before the fixes of issue 12: ValueError: invalid literal for int() with base 10
# (Process.ioctl called int() on a bytes argument) at sgxsim/kernel/process.py:206
from sgxsim.fuzz.repro import Machine, Signal, build_enclave, check_machine

m = Machine(kernel='v40-checkonly', epc_pages=64)
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
    p1.ioctl(0, 0xc028a406, bytes.fromhex(
        '0100000000000000001000000000000000000000000000000700000000000000'
        '0000000000000000'))
except (OSError, Signal):
    pass
problems = check_machine(m)
assert not problems, problems
