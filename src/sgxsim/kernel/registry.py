"""Kernels and designs by name: ``Machine(kernel="linux-6.0")``."""

from __future__ import annotations

import importlib
from typing import Any

_KERNELS: dict[str, type] = {}
# Packages whose import registers more kernels (the SGX driver, the designs).
_PROVIDERS = ("sgxsim.kernel.linux", "sgxsim.kernel.sgx.kernels", "sgxsim.designs")


def register(name: str):
    def deco(cls: type) -> type:
        _KERNELS[name] = cls
        cls.name = name
        return cls
    return deco


def _load_providers() -> None:
    for mod in _PROVIDERS:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name is None or not mod.startswith(e.name):
                raise


def kernel_class(name: str) -> Any:
    if name not in _KERNELS:
        _load_providers()
    try:
        return _KERNELS[name]
    except KeyError:
        raise ValueError(f"unknown kernel {name!r}; known: {', '.join(names())}") from None


def names() -> list[str]:
    _load_providers()
    return sorted(_KERNELS)
