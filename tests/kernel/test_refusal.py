"""A refusal is the OSError class the errno picks, and str() of it says
which layer and rule decided, and why."""

from __future__ import annotations

import errno
import pickle

from sgxsim.kernel.errors import ERESTARTSYS, refuse


def test_str_names_layer_rule_and_detail():
    e = refuse(errno.EACCES, "sgx", "sgx_encl_may_map", "page 0x1000 maximum r--, mapping asks r-x")
    assert isinstance(e, PermissionError) and e.errno == errno.EACCES
    assert e.strerror == "Permission denied"
    assert str(e) == ("[Errno 13] Permission denied [sgx: sgx_encl_may_map: EACCES: "
                      "page 0x1000 maximum r--, mapping asks r-x]")


def test_every_errno_keeps_its_class_and_pickles():
    for err in (errno.ENOENT, errno.EINVAL, errno.EFAULT, errno.EBUSY, errno.EINTR, ERESTARTSYS):
        e = refuse(err, "mm", "do_mmap", "x")
        assert type(e).__mro__[2] is type(OSError(err, "")), err
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and back.errno == err
    assert "ERESTARTSYS" in str(refuse(ERESTARTSYS, "sgx", "sgx_ioctl"))


def test_the_class_memo_gives_what_oserror_picks():
    # refuse() finds the refusal class of an errno once (kernel.errors
    # _REFUSAL_BY_ERRNO); the first call and every later one give the class
    # that OSError(err) picks, found afresh here (the plain path).
    from sgxsim.kernel.errors import _REFUSAL

    for err in sorted(errno.errorcode) + [ERESTARTSYS, 515]:
        for _ in range(2):
            e = refuse(err, "mm", "do_mmap", "x")
            assert type(e) is _REFUSAL[type(OSError(err, ""))], err
            assert e.errno == err and isinstance(e, type(OSError(err, "")))
