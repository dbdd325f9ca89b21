"""``sgxsim sigstruct``: a SIGSTRUCT's fields and verdicts, for people and scripts."""

from __future__ import annotations

from typing import Any

from sgxsim.hw import sigstruct as S
from sgxsim.hw.consts import Attribute
from sgxsim.hw.structs import Sigstruct


def attribute_names(flags: int) -> list[str]:
    names = [a.name for a in Attribute if flags & a and a.name]
    known = 0
    for a in Attribute:
        known |= a
    if flags & ~known:
        names.append(f"reserved({flags & ~known:#x})")
    return names


# XCR0/XFRM feature bits (SDM Vol. 1 §13.1).
XFRM_BITS = {0: "X87", 1: "SSE", 2: "AVX", 3: "BNDREGS", 4: "BNDCSR", 5: "OPMASK",
             6: "ZMM_HI256", 7: "HI16_ZMM", 9: "PKRU", 17: "XTILECFG", 18: "XTILEDATA"}


def xfrm_names(xfrm: int) -> list[str]:
    return [XFRM_BITS.get(b, f"bit{b}") for b in range(64) if xfrm >> b & 1]


def describe(raw: bytes) -> dict[str, Any]:
    """Every field a signer's dump shows, and whether the signature verifies."""
    if len(raw) != Sigstruct.SIZE:
        raise ValueError(f"a SIGSTRUCT is {Sigstruct.SIZE} bytes, this file has {len(raw)}")
    s = Sigstruct.unpack(raw)
    modulus = int.from_bytes(s.modulus, "little")
    return {
        "header_valid": S.header_valid(s),
        "vendor": s.vendor,
        "date": f"{s.date:08x}",
        "swdefined": s.swdefined,
        "modulus_bits": modulus.bit_length(),
        "exponent": s.exponent,
        "mrenclave": s.enclavehash.hex(),
        "mrsigner": S.mrsigner(s).hex(),
        "attributes": s.attributes,
        "attributes_names": attribute_names(s.attributes),
        "attributes_mask": s.attributes_mask,
        "attributes_mask_names": attribute_names(s.attributes_mask),
        "xfrm": s.xfrm,
        "xfrm_names": xfrm_names(s.xfrm),
        "xfrm_mask": s.xfrm_mask,
        "xfrm_mask_names": xfrm_names(s.xfrm_mask),
        "miscselect": s.miscselect,
        "misc_mask": s.misc_mask,
        "isvprodid": s.isvprodid,
        "isvsvn": s.isvsvn,
        "signature_valid": S.check_signature(s),
    }


def _named(value: int, names: list[str]) -> str:
    return f"{value:#018x} ({', '.join(names) or 'none'})"


def render(info: dict[str, Any]) -> str:
    yes = {True: "yes", False: "NO"}
    rows = [
        ("header", "valid" if info["header_valid"] else "INVALID (EINIT: SGX_INVALID_SIG_STRUCT)"),
        ("vendor", f"{info['vendor']:#06x}"),
        ("date", info["date"]),
        ("swdefined", f"{info['swdefined']:#x}"),
        ("key", f"RSA-{info['modulus_bits']}, e={info['exponent']}"),
        ("mrenclave", info["mrenclave"]),
        ("mrsigner", info["mrsigner"]),
        (
            "attributes",
            f"{info['attributes']:#018x} ({', '.join(info['attributes_names']) or 'none'})",
        ),
        ("attributes mask", _named(info["attributes_mask"], info["attributes_mask_names"])),
        ("xfrm", _named(info["xfrm"], info["xfrm_names"])),
        ("xfrm mask", _named(info["xfrm_mask"], info["xfrm_mask_names"])),
        ("miscselect", f"{info['miscselect']:#010x}"),
        ("misc mask", f"{info['misc_mask']:#010x}"),
        ("isvprodid", str(info["isvprodid"])),
        ("isvsvn", str(info["isvsvn"])),
        ("signature verifies", yes[info["signature_valid"]]),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
