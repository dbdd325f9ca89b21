"""The scope the checker explores by default, and its documented restrictions.

Default scope (``sgxsim check --help`` repeats this):

* one process (``--processes 2``: it may fork, see below), one enclave
  (``--enclaves 2``: two alike enclaves, each step naming its ``enclave``, in
  an EPC with room for both enclaves' SECS, VA page and runtime pages, for
  the explored pages of one and one page more; ksgxd wakes when the last
  free page goes, so adding, EAUGing or loading back a page of one makes
  the reclaimer write pages of the other back);
  ``pages`` explored pages (``--pages``, default 1)
  at the start of an ELRANGE of the next power of two of at least
  ``pages + 5`` pages; the 5 pages behind them are the runtime's (TCS with
  NSSA 2, two SSA frames, a SECINFO page, all RW, and a code page RX from the
  image), added and mapped in the initial state and not touched by the
  actions (so the default enclave has 6 pages in an 8-page ELRANGE); the
  enclave is entered through the vDSO; the initial state is the process after
  ``open("/dev/sgx_enclave")`` and SGX_IOC_ENCLAVE_CREATE, with three source
  mappings in place: the enclave image (a file on an exec mount, mapped
  PROT_READ|PROT_EXEC, MAP_PRIVATE), an anonymous PROT_READ|PROT_WRITE buffer,
  and a file on a ``noexec`` mount mapped PROT_READ;
* why one explored page by default: every trace the designs were argued
  over needs only one page besides the runtime's, and the search stays
  exhaustive to depth 6 for all designs in well under a minute; with
  ``--pages 2`` the state space is ~10x larger per level (depth 5 takes
  minutes per design, see docs/designs.md);
* the policy (``--policy``, default ``selinux``): the mm model's SELinux-like
  policy allowing read/write/execute on /dev/sgx_enclave and on the image file
  and denying ``execmem`` and ``execmod``;
* ``--perms``, ``--map-perms`` (mmap's protections only), ``--sources``,
  ``--actions`` narrow the parameters and actions offered below;
* actions, each with restricted parameters:
  - ``mmap``/``mprotect``/``munmap`` of ``/dev/sgx_enclave`` over one page or
    the whole enclave, MAP_SHARED|MAP_FIXED, protections R, RW, RX, RWX;
  - ``add_pages`` (before INIT): any explored page not added yet (in any
    order: the symmetry reduction folds the orders that mirror each other),
    source ``image``/``anon``/``noexec``, SECINFO type REG or TCS, REG
    permissions R, RW, RX, RWX, measured;
  - ``init`` (before INIT) with a SIGSTRUCT signed for the enclave's MRENCLAVE
    (also with no explored page added: the runtime's pages are);
  - on SGX2 kernels, after INIT: ``restrict`` (RESTRICT_PERMISSIONS of one page
    to R or RW), ``modtype`` (MODIFY_TYPES of one page to TCS or TRIM),
    ``remove`` (REMOVE_PAGES of one page);
  - after INIT, entering the enclave (EENTER, one access or leaf, EEXIT; a
    signalled fault is skipped by the runtime's handler): ``load``, ``store``,
    ``fetch`` of one page; on SGX2 CPUs ``eaccept``, ``eacceptcopy`` (from any
    explored page added at build time, a parameter ``src``; from the runtime's
    SECINFO page while none was),
    ``emodpe`` (to RX or RWX) of one page;
  - ``reclaim``: the EPC reclaimer writes one enclave page back (EWB); with
    one enclave ksgxd never runs by itself (its watermarks are set to 0);
  - with ``--processes 2``: ``fork`` (once); the child inherits the enclave
    VMAs (opened by the driver's sgx_vma_open(), PTEs copied) and may
    mmap, mprotect, munmap and enter the enclave, so those steps name their
    ``proc`` (parent or child); the ioctls stay with the parent, unless
    ``--child-ioctls``: either process may issue them (the kernel checks
    only the fd), and their steps name their ``proc`` too;
  - only when named in ``--actions``: ``mseal`` of one page or the whole
    enclave (kernels with mseal(2)), and ``mremap``: move the mapping of one
    page or of the whole enclave, same size, with MREMAP_MAYMOVE|MREMAP_FIXED
    to just above ELRANGE, which Linux allows for an SGX VMA
    (docs/reference-findings.md);
* ``--mdwe``: the process sets prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)
  first (kernels with MDWE).

ADD_PAGES and INIT are not offered after INIT, nor the SGX2 ioctls before it
or on SGX1 kernels: the driver refuses them there without changing state, so
offering them would only cost time.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgxsim.check.model import Action

PAGE = 4096
PERMS = ("R", "RW", "RX", "RWX")
SOURCES = ("image", "anon", "noexec")
POLICIES = ("selinux", "none")
ACTIONS = ("mmap", "mprotect", "munmap", "add_pages", "init", "restrict", "modtype", "remove", "load",
           "store", "fetch", "eaccept", "eacceptcopy", "emodpe", "reclaim", "fork")
# Offered only when named in --actions: mseal(2) of one page or the whole
# enclave (kernels with mseal, linux-6.12), and mremap (a same-size move,
# which changes every design's verdicts the same way).
OPTIONAL_ACTIONS = ("mseal", "mremap")


@dataclass(frozen=True, slots=True)
class Scope:
    pages: int = 1
    policy: str = "selinux"
    perms: tuple[str, ...] = PERMS
    # Protections offered to mmap only (default: ``perms``); narrowing them
    # to R makes every escalation go through mprotect.
    map_perms: tuple[str, ...] | None = None
    sources: tuple[str, ...] = SOURCES
    actions: tuple[str, ...] = ACTIONS
    # The process turns MDWE on (prctl PR_SET_MDWE, REFUSE_EXEC_GAIN) before
    # anything else (--mdwe; kernels with MDWE, linux-6.12).
    mdwe: bool = False
    # --processes 2: a ``fork`` action; --enclaves 2: two enclaves sharing
    # the EPC (docs/checker-reach.md).
    processes: int = 1
    enclaves: int = 1
    # --child-ioctls (with --processes 2): the child may issue the ioctls
    # too, each step naming its proc (docs/checker-reach.md).
    child_ioctls: bool = False
    # Symmetry reduction of the search (--symmetry/--no-symmetry;
    # check/symmetry.py: the explored pages, and the two processes after
    # the fork; off by itself with --enclaves 2).
    # Not part of a scenario's scope: replay ignores it.
    symmetry: bool = True

    def __post_init__(self):
        # Any count: ELRANGE is the next power of two of at least pages + 5
        # pages (SDM: ECREATE wants SECS.SIZE a power of two), the explored
        # pages need not fill it.
        if not 1 <= self.pages <= 64:
            raise ValueError(f"--pages must be between 1 and 64, not {self.pages}")
        for opt, n in (("--processes", self.processes), ("--enclaves", self.enclaves)):
            if n not in (1, 2):
                raise ValueError(f"{opt} must be 1 or 2, not {n}")
        if self.child_ioctls and self.processes != 2:
            raise ValueError("--child-ioctls needs --processes 2 (a child to issue them)")
        if self.policy not in POLICIES:
            raise ValueError(f"--policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")

    def as_dict(self) -> dict:
        return {"pages": self.pages, "policy": self.policy, **({"mdwe": True} if self.mdwe else {}),
                **({"processes": self.processes} if self.processes > 1 else {}),
                **({"child_ioctls": True} if self.child_ioctls else {}),
                **({"enclaves": self.enclaves} if self.enclaves > 1 else {})}

    def ranges(self) -> list[tuple[int, int]]:
        """(offset, length): every single page, then the whole enclave."""
        one = [(i * PAGE, PAGE) for i in range(self.pages)]
        return one + ([(0, self.pages * PAGE)] if self.pages > 1 else [])

    def offsets(self) -> list[int]:
        """The explored pages' offsets."""
        return [i * PAGE for i in range(self.pages)]

    def enabled(self, *, initialized: bool, sgx2: bool, added: frozenset[int]) -> list[Action]:
        """The actions offered in a state, in the fixed order of the search
        (each action's domain and enabling: :mod:`sgxsim.check.actions`)."""
        from sgxsim.check.actions import Ctx, enabled

        return enabled(self, Ctx(initialized, sgx2, added))


# The scope paragraph of this docstring, for ``--help`` (one unwrapped block).
SCOPE_HELP = "\b\n" + "\n".join(
    line for line in __doc__.split("repeats this):", 1)[1].split("ADD_PAGES and INIT are not", 1)[0]
    .splitlines() if line.strip())
