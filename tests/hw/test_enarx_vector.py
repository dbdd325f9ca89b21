"""The enarx/sgx known-answer vector built through ECREATE/EADD/EEXTEND/EINIT."""

from __future__ import annotations

from sgxbuild import REG_RWX, TCS_FLAGS, Builder

from sgxsim.hw import sigstruct as sigmod
from sgxsim.hw.consts import Attribute, SgxReturn
from sgxsim.hw.cpu import Cpu
from sgxsim.hw.structs import Sigstruct

MRENCLAVE = "b999536238fcf4e9d360ef6cd3e0c20ef8a684c7b93f74a9c4a4c6d517d61fc0"
MRSIGNER = "2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4"


def build(vec, tweak_page: bool = False):
    cpu = Cpu(16)
    b = Builder(cpu)
    blob = bytearray((vec / "encl.bin").read_bytes())
    if tweak_page:
        blob[0x3000 + 17] ^= 1
    secs = b.ecreate(0x8000, 0, ssa=1)
    for k in range(len(blob) // 4096):
        b.eadd(secs, k * 4096, bytes(blob[k * 4096 : (k + 1) * 4096]),
               TCS_FLAGS if k == 0 else REG_RWX)
    return cpu, b, secs


def test_mrenclave(enarx_vector):
    cpu, b, secs = build(enarx_vector)
    st = cpu.epc.secs_state[cpu.epc.index(secs)]
    assert st.measurement.digest().hex() == MRENCLAVE


def test_einit_success_sets_identity(enarx_vector):
    cpu, b, secs = build(enarx_vector)
    ss = (enarx_vector / "encl.ss").read_bytes()
    assert sigmod.mrsigner(Sigstruct.unpack(ss)).hex() == MRSIGNER
    b.set_launch_hash(bytes.fromhex(MRSIGNER))
    assert b.einit(secs, ss) == SgxReturn.SGX_SUCCESS
    st = cpu.epc.secs_state[cpu.epc.index(secs)]
    assert st.mrenclave.hex() == MRENCLAVE and st.mrsigner.hex() == MRSIGNER
    assert st.attributes & Attribute.INIT
    page = cpu.epc.page(cpu.epc.index(secs))
    assert page[64:96].hex() == MRENCLAVE and page[128:160].hex() == MRSIGNER


def test_einit_bad_signature(enarx_vector):
    cpu, b, secs = build(enarx_vector)
    ss = bytearray((enarx_vector / "encl.ss").read_bytes())
    ss[516 + 100] ^= 0x40
    b.set_launch_hash(bytes.fromhex(MRSIGNER))
    assert b.einit(secs, bytes(ss)) == SgxReturn.SGX_INVALID_SIGNATURE == 8


def test_einit_bad_measurement(enarx_vector):
    cpu, b, secs = build(enarx_vector, tweak_page=True)
    b.set_launch_hash(bytes.fromhex(MRSIGNER))
    assert b.einit(secs, (enarx_vector / "encl.ss").read_bytes()) == 4


def test_einit_launch_msrs_differ(enarx_vector):
    cpu, b, secs = build(enarx_vector)
    # The reset value (Intel's LE key hash) is not this signer.
    assert b.einit(secs, (enarx_vector / "encl.ss").read_bytes()) == 16
    h = bytearray.fromhex(MRSIGNER)
    h[31] ^= 1
    b.set_launch_hash(bytes(h))
    assert b.einit(secs, (enarx_vector / "encl.ss").read_bytes()) == 16


def test_einit_bad_header(enarx_vector):
    cpu, b, secs = build(enarx_vector)
    ss = bytearray((enarx_vector / "encl.ss").read_bytes())
    ss[25] ^= 1  # HEADER2
    b.set_launch_hash(bytes.fromhex(MRSIGNER))
    assert b.einit(secs, bytes(ss)) == SgxReturn.SGX_INVALID_SIG_STRUCT == 1


def test_einit_unmasked_event_then_retry(enarx_vector):
    cpu, b, secs = build(enarx_vector)
    b.set_launch_hash(bytes.fromhex(MRSIGNER))
    cpu.unmasked_events = 2
    ss = (enarx_vector / "encl.ss").read_bytes()
    assert b.einit(secs, ss) == 128
    assert b.einit(secs, ss) == 128
    assert b.einit(secs, ss) == 0
