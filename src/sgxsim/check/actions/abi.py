"""The user-side constants the checker's program uses: protections, SECINFO
permissions and types as the actions name them, and where the program keeps
its mappings (the initial state of docs/checker-reach.md)."""

from __future__ import annotations

from sgxsim.hw.consts import PageType, SecinfoFlags, secinfo_flags

PAGE = 4096
PROT_READ, PROT_WRITE, PROT_EXEC = 0x1, 0x2, 0x4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
PROTS = {"R": PROT_READ, "RW": PROT_READ | PROT_WRITE, "RX": PROT_READ | PROT_EXEC,
         "RWX": PROT_READ | PROT_WRITE | PROT_EXEC}
SI_PERMS = {"R": SecinfoFlags.R, "RW": SecinfoFlags.R | SecinfoFlags.W,
            "RX": SecinfoFlags.R | SecinfoFlags.X,
            "RWX": SecinfoFlags.R | SecinfoFlags.W | SecinfoFlags.X}
EAUG_SECINFO = secinfo_flags(PageType.PT_REG, SecinfoFlags.R | SecinfoFlags.W, SecinfoFlags.PENDING)
TYPES = {"REG": PageType.PT_REG, "TCS": PageType.PT_TCS, "TRIM": PageType.PT_TRIM}

ENCL_BASE = 0x7F00_0000_0000
# The source mappings of ADD_PAGES (one per source kind), and the program's
# scratch buffer (staging of ADD_PAGES/INIT arguments, struct sgx_enclave_run).
SRC = {"image": 0x4000_0000, "anon": 0x5000_0000, "noexec": 0x6000_0000}
SCRATCH = 0x1000_0000
