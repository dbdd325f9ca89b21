"""Kernels and designs by name: ``Machine(kernel="linux-6.0")``."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

_KERNELS: dict[str, type] = {}
# Packages whose import registers more kernels (the SGX driver, the designs).
_PROVIDERS = ("sgxsim.kernel.linux", "sgxsim.kernel.sgx.kernels", "sgxsim.designs")


class RegistrationError(ValueError):
    """A design that :func:`register` refuses (the message says why)."""


class NameTaken(RegistrationError):
    """The name is another class's already (a built-in's, or another file's)."""


class NotAKernel(RegistrationError, TypeError):
    """The class is no kernel: not a subclass of the generic one."""


def _name_ok(name: str) -> bool:
    # Letters, digits, '-', '_' and '.' (linux-5.11), from a letter or digit:
    # the name becomes part of file names (check --out/--html) and a CLI word.
    return bool(name) and name[0].isalnum() and all(c.isalnum() or c in "-_." for c in name)


def _generic_kernel() -> type | None:
    """sgxsim.kernel.linux.Linux; None while that module is still being
    imported (its own ``@register("linux")`` runs before the name is bound)."""
    return getattr(importlib.import_module("sgxsim.kernel.linux"), "Linux", None)


def register(name: str):
    """Class decorator: ``Machine(kernel=name)`` builds the class.  The name
    is a str of letters, digits, '-', '_' and '.' starting with a letter or
    digit and not taken by another class (a module reloaded may register its
    class again); the class is a kernel (a subclass of
    :class:`sgxsim.kernel.linux.Linux`).  Otherwise a :class:`RegistrationError`
    (a ValueError; a TypeError as well for a class that is no kernel)."""
    if not isinstance(name, str):
        raise TypeError(f"register() takes the design's name as a str, not {name!r}")
    if not _name_ok(name):
        raise RegistrationError(f"{name!r} is not a design name: letters, digits, '-', '_' and '.', "
                                "starting with a letter or digit")

    def deco(cls: type) -> type:
        if not getattr(cls, "__module__", "").startswith("sgxsim."):
            _load_builtins()  # a built-in name is taken even before its module was imported
        base = _generic_kernel()
        if base is None:  # the generic kernel registering itself
            ok = isinstance(cls, type) and cls.__module__ == "sgxsim.kernel.linux"
        else:
            ok = isinstance(cls, type) and issubclass(cls, base)
        if not ok:
            raise NotAKernel(f"{name!r} is not a kernel class (register a subclass of one, e.g. "
                             "sgxsim.kernel.sgx.kernels.Linux60)")
        old = _KERNELS.get(name)
        if old is not None and old is not cls and (old.__module__, old.__qualname__) != (
                cls.__module__, cls.__qualname__):
            raise NameTaken(f"registers {name!r}, a name already taken by {old.__module__}."
                            f"{old.__qualname__}: give the design a name of its own")
        _KERNELS[name] = cls
        cls.name = name
        return cls
    return deco


def _load_builtins() -> None:
    for mod in _PROVIDERS:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name is None or not mod.startswith(e.name):
                raise


def _load_providers() -> None:
    _load_builtins()
    # Installed packages' designs: importing an entry point of the group
    # "sgxsim.designs" registers them.
    load_entry_points("sgxsim.designs")


def load_entry_points(group: str) -> list[str]:
    """Import every entry point of ``group`` (imports are cached, so this is
    idempotent); returns their names.  A broken one is a ValueError naming
    it."""
    from importlib.metadata import entry_points

    names = []
    for ep in entry_points(group=group):
        key = (group, ep.name, ep.value)
        if key in _REFUSED:  # imported once already: the same refusal every time
            raise ValueError(_REFUSED[key])
        before = dict(_KERNELS)
        try:
            ep.load()
        except (Exception, SystemExit) as e:  # (Ctrl-C still interrupts)
            for new in set(_KERNELS) - set(before):  # nothing of it stays registered
                del _KERNELS[new]
            if isinstance(e, NameTaken):  # register() refused to replace a design
                raise ValueError(f"entry point {ep.name} = {ep.value} (group {group}) {e}") from None
            why = (f"exits (sys.exit({e.code!r})) when imported" if isinstance(e, SystemExit)
                   else str(e) if isinstance(e, RegistrationError) else f"{type(e).__name__}: {e}")
            raise ValueError(f"entry point {ep.name} = {ep.value} (group {group}): {why}") from None
        # A name keeps the class it had: an entry point cannot replace a
        # built-in design (or another package's) behind the user's back.
        for name, cls in before.items():
            if _KERNELS.get(name) is not cls:
                for new in set(_KERNELS) - set(before):  # nor keep what else it added
                    del _KERNELS[new]
                _KERNELS[name] = cls
                cls.name = name
                _REFUSED[key] = (f"entry point {ep.name} = {ep.value} (group {group}) registers "
                                 f"{name!r}, a name already taken by {cls.__module__}."
                                 f"{cls.__qualname__}: give the design a name of its own")
                raise ValueError(_REFUSED[key])
        names.append(ep.name)
    return names


# Entry points refused once, with why: their module stays imported, so a
# second load would register nothing and pass.
_REFUSED: dict[tuple[str, str, str], str] = {}


def unregister(name: str) -> None:
    """Forget ``name`` (a design file whose registration was refused)."""
    _KERNELS.pop(name, None)


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


def overrides(cls: type) -> list[str]:
    """What a kernel class changes relative to the kernel it subclasses:
    the methods of the kernel and of its SGX driver class that it redefines
    (helpers it adds are not counted).  Each design's docstring lists them
    after "Modified:" (tests/designs check the two agree)."""
    base = cls.__mro__[1]
    out: list[str] = []
    for new, old in ((cls, base), (getattr(cls, "sgx_driver_class", None),
                                   getattr(base, "sgx_driver_class", None))):
        if new is None or old is None or new is old:
            continue
        for k in new.__mro__:
            if k in old.__mro__:
                break
            out += [n for n, v in vars(k).items()
                    if inspect.isfunction(getattr(v, "__func__", v)) and not n.startswith("__")
                    and hasattr(old, n) and n not in out]
    return out


def declared_modified(cls: type) -> list[str]:
    """The names after "Modified:" in ``cls``'s docstring."""
    lines = [line.strip() for line in (cls.__doc__ or "").splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("Modified:"):
            # A line ending in a comma goes on on the next one.
            text = line.removeprefix("Modified:")
            for more in lines[i + 1:]:
                if not text.rstrip().endswith(","):
                    break
                text += " " + more
            text = text.split("(")[0].rstrip(". ")
            return [n.strip() for n in text.split(",") if n.strip()]
    return []
