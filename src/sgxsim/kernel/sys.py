"""prctl(2) (kernel/sys.c): the options the model has, MDWE's."""

from __future__ import annotations

import errno

from sgxsim.kernel.errors import refuse
from sgxsim.kernel.mm.flags import MMF_HAS_MDWE, MMF_HAS_MDWE_NO_INHERIT, MMF_INIT_MASK

PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1 << 0
PR_MDWE_NO_INHERIT = 1 << 1
# The releases that added MDWE and its NO_INHERIT bit.
MDWE_RELEASE = (6, 3)
MDWE_NO_INHERIT_RELEASE = (6, 6)


def mmf_init_flags(flags: int) -> int:
    # mmf_init_flags(): what a child's mm keeps of its parent's flags
    if flags & MMF_HAS_MDWE_NO_INHERIT:
        flags &= ~(MMF_HAS_MDWE | MMF_HAS_MDWE_NO_INHERIT)
    return flags & MMF_INIT_MASK


def _einval(rule: str, detail: str) -> OSError:
    return refuse(errno.EINVAL, "kernel", rule, detail)


class SysMixin:
    """SYSCALL_DEFINE5(prctl) for PR_SET_MDWE / PR_GET_MDWE."""

    def sys_prctl(self, option: int, arg2: int, arg3: int, arg4: int, arg5: int) -> int:
        if option in (PR_SET_MDWE, PR_GET_MDWE) and self.mm_release >= MDWE_RELEASE:
            if option == PR_SET_MDWE:
                return self.prctl_set_mdwe(arg2, arg3, arg4, arg5)
            return self.prctl_get_mdwe(arg2, arg3, arg4, arg5)
        raise _einval("prctl", f"option {option} not known to Linux {self.mm_version()}")

    def get_current_mdwe(self) -> int:
        flags = self.current.mm.flags
        return ((PR_MDWE_REFUSE_EXEC_GAIN if flags & MMF_HAS_MDWE else 0)
                | (PR_MDWE_NO_INHERIT if flags & MMF_HAS_MDWE_NO_INHERIT else 0))

    def prctl_set_mdwe(self, bits: int, arg3: int, arg4: int, arg5: int) -> int:
        # prctl_set_mdwe()
        if arg3 or arg4 or arg5:
            raise _einval("prctl_set_mdwe", "arg3..arg5 must be 0")
        known = PR_MDWE_REFUSE_EXEC_GAIN
        if self.mm_release >= MDWE_NO_INHERIT_RELEASE:
            known |= PR_MDWE_NO_INHERIT
        if bits & ~known:
            raise _einval("prctl_set_mdwe", f"unknown bits {bits:#x}")
        if bits & PR_MDWE_NO_INHERIT and not bits & PR_MDWE_REFUSE_EXEC_GAIN:
            raise _einval("prctl_set_mdwe", "PR_MDWE_NO_INHERIT without PR_MDWE_REFUSE_EXEC_GAIN")
        current = self.get_current_mdwe()
        if current and current != bits:
            raise refuse(errno.EPERM, "kernel", "prctl_set_mdwe",
                         f"MDWE is {current:#x} already and cannot be changed to {bits:#x}")
        mm = self.current.mm
        if bits & PR_MDWE_NO_INHERIT:
            mm.flags |= MMF_HAS_MDWE_NO_INHERIT
        if bits & PR_MDWE_REFUSE_EXEC_GAIN:
            mm.flags |= MMF_HAS_MDWE
        return 0

    def prctl_get_mdwe(self, arg2: int, arg3: int, arg4: int, arg5: int) -> int:
        # prctl_get_mdwe()
        if arg2 or arg3 or arg4 or arg5:
            raise _einval("prctl_get_mdwe", "arg2..arg5 must be 0")
        return self.get_current_mdwe()
