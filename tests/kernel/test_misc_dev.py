"""The SGX device nodes' numbers: misc_register() of a MISC_DYNAMIC_MINOR
device gives MISC_MAJOR and the next free dynamic minor, from a bitmap
counting down from 127 up to 6.1 and from an IDA above 255 by 6.12 (and on
this machine's kernel: /proc/misc)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sgxsim.machine import Machine

# (kernel, /dev/sgx_enclave's minor, /dev/sgx_provision's minor): 5.11's
# sgx_drv_init() registers the enclave node first; since 5.13 sgx_init()
# registers the provisioning node before it calls sgx_drv_init().
MINORS = [("linux-5.11", 127, 126), ("linux-6.0", 126, 127), ("linux-6.12", 257, 256)]


@pytest.mark.parametrize(("kernel", "enclave", "provision"), MINORS)
def test_sgx_nodes_are_misc_char_devices(kernel, enclave, provision):
    p = Machine(kernel=kernel).spawn()
    for path, minor in (("/dev/sgx_enclave", enclave), ("/dev/sgx_provision", provision)):
        st = p.stat(path)
        assert stat.S_ISCHR(st.st_mode)
        # glibc's major()/minor() decode what the model encodes (new_encode_dev())
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (10, minor)
        fd = p.open(path, os.O_RDWR)
        assert p.stat(fd=fd).st_rdev == st.st_rdev  # fstat() of the open file


def test_misc_major_is_the_hosts():
    devices = Path("/proc/devices")
    if not devices.exists():
        pytest.skip("no /proc/devices on this host")
    # "Character devices:" comes first: its lines are " NUM NAME"
    chars = devices.read_text().split("Block devices:")[0]
    majors = {words[1]: int(words[0]) for words in map(str.split, chars.splitlines())
              if len(words) == 2 and words[0].isdigit()}
    st = Machine(kernel="linux-6.12").spawn().stat("/dev/sgx_enclave")
    assert os.major(st.st_rdev) == majors["misc"]


def test_dynamic_minors_above_255_as_on_this_kernel():
    # The host (6.18) allocates dynamic misc minors as 6.12 does: from 256 up.
    misc = Path("/proc/misc")
    if not misc.exists():
        pytest.skip("no /proc/misc on this host")
    minors = sorted(int(line.split()[0]) for line in misc.read_text().splitlines() if line.strip())
    dynamic = [m for m in minors if m > 255]
    if not dynamic:
        pytest.skip("the host registered no dynamic misc device")
    assert dynamic[0] == 256  # the first dynamic minor, as misc_minor_alloc() gives it
    assert os.minor(Machine(kernel="linux-6.12").spawn().stat("/dev/sgx_provision").st_rdev) == 256


@pytest.mark.parametrize("kernel", ["linux-5.11", "linux-6.0", "linux-6.12"])
def test_no_launch_control_leaves_no_sgx_node_and_no_minor_taken(kernel):
    # Since 5.13 sgx_init() registers /dev/sgx_provision before
    # sgx_drv_init(); when that fails (no launch control) and sgx_vepc_init()
    # fails too (no VMX in the model), misc_deregister() takes it away again.
    m = Machine(kernel=kernel, flc=False)
    p = m.spawn()
    for path in ("/dev/sgx_enclave", "/dev/sgx_provision"):
        with pytest.raises(FileNotFoundError):
            p.stat(path)
    assert m.kernel.misc_minors == set()
