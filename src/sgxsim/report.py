"""Human- and script-readable dumps of SGX structures (for the CLI).

:func:`sigstruct_info` decodes a SIGSTRUCT into plain data, the way the SGX
SDK signer's ``dump`` shows it; :func:`format_sigstruct` renders that as text.
"""

from __future__ import annotations

from typing import Any

from sgxsim.hw import sigstruct as sigs
from sgxsim.hw.consts import Attribute
from sgxsim.hw.structs import Sigstruct

# XCR0 / XFRM feature bits (SDM Vol. 1 §13.1).
XFRM_BITS = {
    0: "X87",
    1: "SSE",
    2: "AVX",
    3: "BNDREGS",
    4: "BNDCSR",
    5: "OPMASK",
    6: "ZMM_HI256",
    7: "HI16_ZMM",
    9: "PKRU",
    17: "XTILECFG",
    18: "XTILEDATA",
}
MISC_BITS = {0: "EXINFO"}


def _names(value: int, table: dict[int, str]) -> list[str]:
    out = []
    for bit in range(64):
        if value >> bit & 1:
            out.append(table.get(bit, f"BIT{bit}"))
    return out


def attribute_names(flags: int) -> list[str]:
    """Names of the ATTRIBUTES.FLAGS bits set in ``flags`` (unknown: BITn)."""
    return _names(flags, {m.value.bit_length() - 1: str(m.name) for m in Attribute})


def xfrm_names(xfrm: int) -> list[str]:
    return _names(xfrm, XFRM_BITS)


def misc_names(misc: int) -> list[str]:
    return _names(misc, MISC_BITS)


def bcd_date(date: int) -> str | None:
    """DATE read as BCD 0xYYYYMMDD (the SDK's convention); None if not BCD."""
    digits = f"{date:08x}"
    if not digits.isdigit():
        return None
    y, m, d = digits[:4], digits[4:6], digits[6:]
    if not (1 <= int(m) <= 12 and 1 <= int(d) <= 31):
        return None
    return f"{y}-{m}-{d}"


def sigstruct_info(sig: Sigstruct) -> dict[str, Any]:
    """Every field a signer's dump shows, decoded, plus the two checks EINIT
    makes on the structure itself (header validity, RSA signature)."""
    modulus = int.from_bytes(sig.modulus, "little")
    return {
        "vendor": sig.vendor,
        "date": sig.date,
        "date_bcd": bcd_date(sig.date),
        "swdefined": sig.swdefined,
        "header_valid": sigs.header_valid(sig),
        "mrenclave": bytes(sig.enclavehash).hex(),
        "mrsigner": sigs.mrsigner(sig).hex(),
        "attributes": {"flags": sig.attributes, "names": attribute_names(sig.attributes)},
        "xfrm": {"value": sig.xfrm, "names": xfrm_names(sig.xfrm)},
        "attributes_mask": {
            "flags": sig.attributes_mask,
            "names": attribute_names(sig.attributes_mask),
        },
        "xfrm_mask": {"value": sig.xfrm_mask, "names": xfrm_names(sig.xfrm_mask)},
        "miscselect": {"value": sig.miscselect, "names": misc_names(sig.miscselect)},
        "misc_mask": sig.misc_mask,
        "isvprodid": sig.isvprodid,
        "isvsvn": sig.isvsvn,
        "exponent": sig.exponent,
        "modulus_bits": modulus.bit_length(),
        "signature_valid": sigs.check_signature(sig),
    }


def _flags_line(value: int, names: list[str], width: int = 16) -> str:
    return f"0x{value:0{width}x}" + (f"  ({' | '.join(names)})" if names else "")


def format_sigstruct(info: dict[str, Any]) -> str:
    """The text form of :func:`sigstruct_info`."""
    date = f"0x{info['date']:08x}" + (f"  ({info['date_bcd']})" if info["date_bcd"] else "")
    vendor = {0: "0x0000", sigs.VENDOR_INTEL: "0x8086 (Intel)"}.get(
        info["vendor"], f"0x{info['vendor']:x}"
    )
    rows = [
        ("header", "valid" if info["header_valid"] else "INVALID (EINIT: SGX_INVALID_SIG_STRUCT)"),
        ("vendor", vendor),
        ("date", date),
        ("swdefined", f"0x{info['swdefined']:08x}"),
        ("mrenclave", info["mrenclave"]),
        ("mrsigner", info["mrsigner"]),
        ("attributes", _flags_line(info["attributes"]["flags"], info["attributes"]["names"])),
        ("xfrm", _flags_line(info["xfrm"]["value"], info["xfrm"]["names"])),
        (
            "attributes mask",
            _flags_line(info["attributes_mask"]["flags"], info["attributes_mask"]["names"]),
        ),
        ("xfrm mask", _flags_line(info["xfrm_mask"]["value"], info["xfrm_mask"]["names"])),
        ("miscselect", _flags_line(info["miscselect"]["value"], info["miscselect"]["names"], 8)),
        ("misc mask", f"0x{info['misc_mask']:08x}"),
        ("isvprodid", str(info["isvprodid"])),
        ("isvsvn", str(info["isvsvn"])),
        ("exponent", str(info["exponent"])),
        ("modulus", f"{info['modulus_bits']} bits"),
        (
            "signature",
            "verifies" if info["signature_valid"]
            else "DOES NOT VERIFY (EINIT: SGX_INVALID_SIGNATURE)",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)
