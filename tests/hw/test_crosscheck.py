"""Cases the other leaf tests leave out, found while cross-checking this model
against an independently written one: the SSA contents an AEX writes and
ERESUME reads back, EWB's VA_SLOT_OCCUPIED warning with ELDB, EINIT's token
path, and EGETKEY's SVN check."""

from __future__ import annotations

import pytest
from tests.hw.leafkit import BASE, REG, RW, Kit, epa

from sgxsim.hw.consts import PAGE_SIZE, SgxReturn
from sgxsim.hw.epc import EPCM_BLOCKED
from sgxsim.hw.faults import PF_PROT, PF_SGX, PF_USER, PF_WRITE, PageFault
from sgxsim.hw.structs import Einittoken, Keyrequest, SsaExinfo, SsaGpr, Tcs

D0 = BASE + 2 * PAGE_SIZE
GPR_OFF = PAGE_SIZE - SsaGpr.SIZE


def test_aex_ssa_contents_and_eresume_restore():
    k = Kit()
    k.ecreate(miscselect=1)  # MISCSELECT.EXINFO: #PF details go to the SSA
    tcs_i = k.eadd(0, 0x100, Tcs(ossa=PAGE_SIZE, nssa=1, oentry=2 * PAGE_SIZE, fslimit=0xFFFFFFFF,
                         gslimit=0xFFFFFFFF).pack())
    ssa_i = k.eadd(PAGE_SIZE, REG | RW)
    k.eadd(2 * PAGE_SIZE, REG | 0x1)  # read-only data page
    assert k.einit() == 0
    k.enter()
    k.lp.regs.update(r9=99, rsp=0x1234, rip=D0 + 0x10)
    with pytest.raises(PageFault) as e:
        k.cpu.store(k.lp, D0 + 0x123, b"x")
    assert e.value.error_code == PF_PROT | PF_WRITE | PF_USER | PF_SGX
    assert e.value.addr == D0  # CR2 low 12 bits cleared
    ssa = k.cpu.epc.page(ssa_i)
    gpr = SsaGpr.unpack(ssa[GPR_OFF:])
    assert (gpr.r9, gpr.rsp, gpr.rip) == (99, 0x1234, D0 + 0x10)
    assert gpr.exitinfo == SsaGpr.EXITINFO_VALID | (SsaGpr.EXIT_TYPE_HW << 8) | 14
    ex = SsaExinfo.unpack(ssa[GPR_OFF - SsaExinfo.SIZE : GPR_OFF])
    assert ex.maddr == D0 + 0x123 and ex.errcd == e.value.error_code  # full address here
    assert k.lp.regs["rax"] == 3 and k.lp.regs["rbx"] == BASE and k.lp.regs["rcx"] == 0x5000
    assert Tcs.unpack(k.cpu.epc.page(tcs_i)).cssa == 1
    k.cpu.eresume(k.lp, BASE, 0x5000)
    assert (k.lp.regs["r9"], k.lp.regs["rip"]) == (99, D0 + 0x10)
    assert Tcs.unpack(k.cpu.epc.page(tcs_i)).cssa == 0


def test_ewb_slot_occupied_still_evicts_and_eldb_blocks():
    k = Kit().standard(data_pages=2)
    va = k.alloc_epc()
    k.cpu.epa(epa(va))
    for i in k.data_i:
        assert k.cpu.eblock(epa(i)) == 0
    assert k.cpu.etrack(epa(k.secs_i)) == 0
    backs = []
    for n, i in enumerate(k.data_i):
        back, pcmd = k.frame(), k.frame()
        backs.append((back, pcmd))
        r = k.cpu.ewb(k.pageinfo(0, back, pcmd, 0), epa(i), epa(va))
        # The second EWB into the same slot: a CF=1 warning, the eviction happens.
        assert r == (SgxReturn.SGX_VA_SLOT_OCCUPIED if n else 0)
        assert not k.cpu.epc.is_valid(i)
    back, pcmd = backs[1]
    new = k.alloc_epc()
    la = BASE + 3 * PAGE_SIZE
    assert k.cpu.eldb(k.pageinfo(la, back, pcmd, epa(k.secs_i)), epa(new), epa(va)) == 0
    assert k.cpu.epc.flags[new] & EPCM_BLOCKED
    # The first page's version was overwritten: it can no longer be loaded.
    back, pcmd = backs[0]
    other = k.alloc_epc()
    assert k.cpu.eldu(k.pageinfo(BASE + 2 * PAGE_SIZE, back, pcmd, epa(k.secs_i)),
                      epa(other), epa(va)) == SgxReturn.SGX_MAC_COMPARE_FAIL


def test_einit_token_path():
    from sgxsim.hw import sigstruct as S
    k = Kit().standard(init=False)
    st = k.cpu.epc.secs_state[k.secs_i]
    mr = st.measurement.digest()
    sig = S.sign(S.build(mr), Kit.key())
    tok = Einittoken(valid=1, attributes=int(st.attributes), xfrm=st.xfrm, mrenclave=mr,
                     mrsigner=S.mrsigner(sig))
    sig_pa = k.frame(sig.pack() + bytes(PAGE_SIZE - sig.SIZE))

    def einit(t):
        return k.cpu.einit(sig_pa, epa(k.secs_i), k.frame(t.pack() + bytes(PAGE_SIZE - t.SIZE)))

    # Launch MSRs hold Intel's hash, so only a valid token lets this signer in.
    assert einit(tok) == SgxReturn.SGX_INVALID_EINITTOKEN  # MAC wrong
    good = tok.replace(mac=k.cpu.einittoken_mac(tok.pack()[:192]))
    assert einit(good) == 0


def test_egetkey_isvsvn_above_enclave():
    k = Kit().standard()
    k.enter()
    kr_la = D0
    i = k.data_i[0]
    k.cpu.epc.page(i)[:512] = Keyrequest(keyname=Keyrequest.KEYNAME_SEAL, isvsvn=1).pack()
    out = BASE + 3 * PAGE_SIZE
    assert k.cpu.egetkey(k.lp, kr_la, out) == SgxReturn.SGX_INVALID_ISVSVN
    k.cpu.epc.page(i)[:512] = Keyrequest(keyname=Keyrequest.KEYNAME_SEAL).pack()
    assert k.cpu.egetkey(k.lp, kr_la, out) == 0
