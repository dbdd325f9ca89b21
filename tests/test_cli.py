"""The sgxsim command line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sgxsim.cli import main


def test_sigstruct_text(enarx_vector):
    r = CliRunner().invoke(main, ["sigstruct", str(enarx_vector / "encl.ss")])
    assert r.exit_code == 0, r.output
    assert "b999536238fcf4e9d360ef6cd3e0c20ef8a684c7b93f74a9c4a4c6d517d61fc0" in r.output
    assert "MODE64BIT" in r.output
    assert "signature verifies  yes" in r.output


def test_sigstruct_json(enarx_vector):
    r = CliRunner().invoke(main, ["sigstruct", "--json", str(enarx_vector / "encl.ss")])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["mrsigner"] == "2f9f8fd4fe12d77232f1d87571ca8252ca27714efe7705e46222cffd5a22e8c4"
    assert info["signature_valid"] is True and info["attributes"] == 4 and info["xfrm"] == 3


def test_sigstruct_tampered_exits_nonzero(enarx_vector, tmp_path):
    raw = bytearray((enarx_vector / "encl.ss").read_bytes())
    raw[960] ^= 1
    (tmp_path / "bad.ss").write_bytes(raw)
    r = CliRunner().invoke(main, ["sigstruct", "--json", str(tmp_path / "bad.ss")])
    assert r.exit_code == 1
    assert json.loads(r.output)["signature_valid"] is False


def test_sigstruct_wrong_size(tmp_path):
    (tmp_path / "short").write_bytes(b"\0" * 100)
    r = CliRunner().invoke(main, ["sigstruct", str(tmp_path / "short")])
    assert r.exit_code != 0 and "1808 bytes" in r.output


def test_demo_signs_its_own_enclave(tmp_path):
    from sgxsim.demo import demo_pages, measure

    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "signature verifies  yes" in r.output
    assert measure(demo_pages()).hex() in r.output


def test_sigstruct_json_fields(enarx_vector):
    r = CliRunner().invoke(main, ["sigstruct", "--json", str(enarx_vector / "encl.ss")])
    info = json.loads(r.output)
    assert info["mrenclave"] == "b999536238fcf4e9d360ef6cd3e0c20ef8a684c7b93f74a9c4a4c6d517d61fc0"
    assert info["header_valid"] is True and info["exponent"] == 3 and info["modulus_bits"] == 3072
    assert info["attributes_names"] == ["MODE64BIT"] and info["xfrm_names"] == ["X87", "SSE"]
    assert info["attributes_mask"] == 0 and info["xfrm_mask"] == 0 and info["misc_mask"] == 0
    assert (info["vendor"], info["isvprodid"], info["isvsvn"], info["miscselect"]) == (0, 0, 0, 0)


def test_sigstruct_invalid_header_exits_nonzero(enarx_vector, tmp_path):
    raw = bytearray((enarx_vector / "encl.ss").read_bytes())
    raw[16] = 0x42  # VENDOR outside {0, 0x8086}: header invalid (and signature broken)
    (tmp_path / "bad.ss").write_bytes(raw)
    r = CliRunner().invoke(main, ["sigstruct", str(tmp_path / "bad.ss")])
    assert r.exit_code == 1 and "INVALID" in r.output
