# found before the fixes of issue 12: pid 1 Vma(0x0-0x4000 r-xs flags=0xfd): outside [mmap_min_addr, TASK_SIZE)
from sgxsim.fuzz.repro import Machine, Signal, check_machine

m = Machine(kernel='sgx2-rfc', epc_pages=24)
boot_frames = set(m.cpu.phys.frames)
try:
    p1 = m.spawn()
    p1.mmap(0x10000000, 0x8000, 0x3, 0x32, -1, 0)
except (OSError, Signal):
    pass
try:
    _r = p1.mmap(0x0, 0x4000, 0x5, 0x31, -1, 0x1000)
except (OSError, Signal):
    pass
problems = check_machine(m)
assert not problems, problems
