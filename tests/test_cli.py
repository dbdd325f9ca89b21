"""The sgxsim command: ``sigstruct`` on the public vector and ``demo``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sgxsim import demo
from sgxsim.cli import main
from sgxsim.hw import sigstruct as sigs
from sgxsim.hw.structs import Sigstruct

ENARX_MRSIGNER = "2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4"
ENARX_MRENCLAVE = "b999536238fcf4e9d360ef6cd3e0c20ef8a684c7b93f74a9c4a4c6d517d61fc0"


def test_sigstruct_text(enarx_vector: Path) -> None:
    r = CliRunner().invoke(main, ["sigstruct", str(enarx_vector / "encl.ss")])
    assert r.exit_code == 0, r.output
    lines = {k.strip(): v for k, v in (line.split(" : ", 1) for line in r.output.splitlines())}
    assert lines["header"] == "valid"
    assert lines["mrenclave"] == ENARX_MRENCLAVE
    assert lines["mrsigner"] == ENARX_MRSIGNER
    assert lines["attributes"] == "0x0000000000000004  (MODE64BIT)"
    assert lines["xfrm"] == "0x0000000000000003  (X87 | SSE)"
    assert lines["exponent"] == "3"
    assert lines["signature"] == "verifies"


def test_sigstruct_json(enarx_vector: Path) -> None:
    r = CliRunner().invoke(main, ["sigstruct", "--json", str(enarx_vector / "encl.ss")])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["mrenclave"] == ENARX_MRENCLAVE and info["mrsigner"] == ENARX_MRSIGNER
    assert info["header_valid"] is True and info["signature_valid"] is True
    assert info["attributes"] == {"flags": 4, "names": ["MODE64BIT"]}
    assert info["xfrm"] == {"value": 3, "names": ["X87", "SSE"]}
    assert info["attributes_mask"]["flags"] == 0 and info["misc_mask"] == 0
    assert (info["vendor"], info["date"], info["isvprodid"], info["isvsvn"]) == (0, 0, 0, 0)
    assert info["exponent"] == 3 and info["modulus_bits"] == 3072


def test_sigstruct_reports_broken_signature(enarx_vector: Path, tmp_path: Path) -> None:
    raw = bytearray((enarx_vector / "encl.ss").read_bytes())
    raw[1026] ^= 1  # ISVSVN
    raw[16] = 0x42  # VENDOR
    f = tmp_path / "bad.ss"
    f.write_bytes(bytes(raw))
    info = json.loads(CliRunner().invoke(main, ["sigstruct", "--json", str(f)]).output)
    assert info["signature_valid"] is False and info["header_valid"] is False
    text = CliRunner().invoke(main, ["sigstruct", str(f)]).output
    assert "DOES NOT VERIFY" in text and "INVALID" in text


def test_sigstruct_wrong_size(tmp_path: Path) -> None:
    f = tmp_path / "short.ss"
    f.write_bytes(bytes(100))
    r = CliRunner().invoke(main, ["sigstruct", str(f)])
    assert r.exit_code != 0 and "1808 bytes" in r.output


def test_demo_with_key_and_out(signing_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    pem = tmp_path / "key.pem"
    pem.write_bytes(signing_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--key", str(pem), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    sig = Sigstruct.unpack((out / "enclave.ss").read_bytes())
    assert sigs.check_signature(sig) and sigs.header_valid(sig)
    expected = demo.measure(demo.demo_pages()).digest()
    assert bytes(sig.enclavehash) == expected and info["mrenclave"] == expected.hex()
    assert info["mrsigner"] == sigs.mrsigner(sig).hex()
    assert info["signature_valid"] is True


def test_demo_default_runs() -> None:
    r = CliRunner().invoke(main, ["demo"])
    assert r.exit_code == 0, r.output
    rows = {k.strip(): v for k, v in (x.split(" : ", 1) for x in r.output.splitlines()[1:])}
    assert rows["signature"] == "verifies" and rows["header"] == "valid"


def test_demo_enclave_is_deterministic() -> None:
    pages = demo.demo_pages()
    assert [p.offset for p in pages] == [0, 0x1000, 0x2000, 0x3000]
    assert [p.secinfo_flags for p in pages] == [0x100, 0x203, 0x205, 0x203]
    assert all(len(p.data) == 4096 for p in pages)
    assert demo.measure(pages).digest() == demo.measure(demo.demo_pages()).digest()
    assert demo.measure(pages).updates == 1 + 4 * (1 + 16 * 5)
