"""Designs and properties from outside the package: a Python file of the
user's (``--design-file``/``--property-file``) or an installed package's entry
points (groups ``sgxsim.designs`` and ``sgxsim.properties``).

Loading a file imports it as a module; what it registers with
``@sgxsim.kernel.registry.register("name")`` (designs) or
``@sgxsim.check.properties.register_property`` (properties) while it runs is
what it provides.  The module is kept in ``sys.modules`` under a name of its
own, so the model's states, which hold instances of its classes, pickle (the
checker freezes states and ships them to forked workers).

docs/writing-a-design.md walks through an example.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

GROUP_DESIGNS = "sgxsim.designs"
GROUP_PROPERTIES = "sgxsim.properties"


class PluginError(Exception):
    """A design or property file (or entry point) could not be loaded; the
    message names the file and, for an exception it raised, the line."""


@dataclass
class Loaded:
    """What loading added: design (kernel) names and property names."""

    designs: list[str] = field(default_factory=list)
    properties: list[str] = field(default_factory=list)


def _known() -> tuple[set[str], set[str]]:
    from sgxsim.check.properties import PROPERTIES
    from sgxsim.kernel import registry

    return set(registry.names()), set(PROPERTIES)


def _where(exc: BaseException, path: str) -> str:
    """``path:line`` of the innermost frame of ``exc`` in ``path``."""
    for fr in reversed(traceback.extract_tb(exc.__traceback__)):
        if fr.filename == path:
            return f"{path}:{fr.lineno}"
    return path


def _diff(before: tuple[set[str], set[str]]) -> Loaded:
    from sgxsim.check.properties import PROPERTIES
    from sgxsim.kernel import registry

    return Loaded(sorted(set(registry.names()) - before[0]), [p for p in PROPERTIES if p not in before[1]])


def load_file(path: str | Path) -> Loaded:
    """Import the Python file ``path``; return what it registered.  Loading
    the same file twice is a no-op the second time."""
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"{path}: no such file")
    if path.suffix != ".py":
        raise PluginError(f"{path}: a design or property file is a Python file (*.py)")
    real = str(path.resolve())
    name = "sgxsim_user_" + "".join(c if c.isalnum() else "_" for c in path.stem) + "_" + \
        hashlib.blake2b(real.encode(), digest_size=4).hexdigest()
    if name in sys.modules:
        return sys.modules[name].__sgxsim_loaded__
    before = _known()

    try:
        source = Path(real).read_bytes()
    except OSError as e:
        raise PluginError(f"{path}: cannot be read: {e.strerror or e}") from None
    return _load_module(name, real, source, str(path), before)


def _load_module(name: str, real: str, source: bytes, shown: str,
                 before: tuple[set[str], set[str]]) -> Loaded:
    """Run ``source`` (the file ``real``, named ``shown`` in errors) as the
    module ``name``; return what it registered."""
    from sgxsim.kernel import registry

    path = shown
    taken = {n: registry.kernel_class(n) for n in before[0]}
    spec = importlib.util.spec_from_file_location(name, real)
    if spec is None:
        raise PluginError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        # The bytes read once: what ran here is what shipped() hands on.
        exec(compile(source, real, "exec"), module.__dict__)
    except SyntaxError as e:
        del sys.modules[name]
        raise PluginError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except BaseException as e:
        del sys.modules[name]
        _bad_designs(taken, [])  # a name it took before it raised gets its class back
        _forget(_diff(before))  # and what it added goes
        if not isinstance(e, Exception | SystemExit):
            raise  # Ctrl-C while loading still interrupts the command
        if isinstance(e, registry.RegistrationError):  # register() said why: a taken name, no kernel
            raise PluginError(f"{path}: {e}") from None
        raise PluginError(f"{_where(e, real)}: {describe(e)}") from None
    got = _diff(before)
    problem = _bad_designs(taken, got.designs)
    if problem:
        del sys.modules[name]
        _forget(got)  # nothing of a refused file stays registered
        raise PluginError(f"{path}: {problem}")
    module.__sgxsim_loaded__ = got
    _SOURCES[name] = (real, source)
    return got


# The files loaded so far, in order: module name -> (path, source bytes).
_SOURCES: dict[str, tuple[str, bytes]] = {}


def shipped() -> list[tuple[str, str, bytes]]:
    """The design and property files loaded in this process, as (module name,
    path, source): what a process that did not fork from this one (a Ray
    actor, perhaps on another machine) loads with :func:`load_shipped` before
    it unpickles states holding their classes."""
    return [(name, real, source) for name, (real, source) in _SOURCES.items()]


def load_shipped(files: list[tuple[str, str, bytes]]) -> Loaded:
    """Load what :func:`shipped` gave, each file under its module name (so
    that pickles of its classes resolve) and named by its original path in
    errors and tracebacks, whether or not that path exists here."""
    out = Loaded()
    for name, real, source in files:
        if name in sys.modules:
            got = sys.modules[name].__sgxsim_loaded__
        else:
            got = _load_module(name, real, source, real, _known())
        out.designs += got.designs
        out.properties += got.properties
    return out


class UserExit(Exception):
    """A SystemExit (``sys.exit()`` in a design or property) raised in a
    forked worker's job, made an ordinary error: a pool replaces a worker
    that exits, and the job's result never comes (the search waited for
    ever)."""

    def __init__(self, code: object):
        super().__init__(code)
        self.code = code


def no_exit(job):
    """``job`` (a function run in a forked worker) with a SystemExit raised
    as a :class:`UserExit`, which the pool sends back like any error."""

    @functools.wraps(job)
    def run(*args, **kwargs):
        try:
            return job(*args, **kwargs)
        except SystemExit as e:
            raise UserExit(e.code) from e

    return run


def describe(e: BaseException) -> str:
    """What a user's file did: ``Type: message``; a SystemExit (sys.exit()
    in a file that is also a script) says so, rather than ``SystemExit: 0``."""
    if isinstance(e, SystemExit | UserExit):
        return f"exits (sys.exit({e.code!r})): a design or property file must not exit"
    return f"{type(e).__name__}: {e}"


def _bad_designs(taken: dict[str, type], new: list[str]) -> str | None:
    """What is wrong with the designs a file registered: a name taken before
    (the class it had is put back) or a class that is no kernel."""
    from sgxsim.kernel import registry
    from sgxsim.kernel.linux import Linux

    for n, cls in taken.items():
        if registry.kernel_class(n) is not cls:  # (register() refuses this; a file may still poke)
            registry.unregister(n)
            registry.register(n)(cls)
            return (f"registers {n!r}, a name already taken by {cls.__module__}.{cls.__qualname__}: "
                    "give the design a name of its own")
    for n in new:
        cls = registry.kernel_class(n)
        if not (isinstance(cls, type) and issubclass(cls, Linux)):
            return (f"{n!r} is not a kernel class (register a subclass of one, e.g. "
                    "sgxsim.kernel.sgx.kernels.Linux60)")
    return None


def _forget(got: Loaded) -> None:
    """Unregister what a refused file registered."""
    from sgxsim.check.properties import unregister_property
    from sgxsim.kernel import registry

    for n in got.designs:
        registry.unregister(n)
    for n in got.properties:
        unregister_property(n)


# What each kind of file must register, and how.
_MUST = {"designs": "registers no design (decorate a kernel class with @register(\"name\") from "
                    "sgxsim.kernel.registry)",
         "properties": "registers no property (decorate a Property class with @register_property from "
                       "sgxsim.check.properties)"}


def load_files(design_files=(), property_files=()) -> Loaded:
    """Every file of ``--design-file`` and ``--property-file``; a design file
    must register a design, a property file a property."""
    out = Loaded()
    for kind, files in (("designs", design_files), ("properties", property_files)):
        for f in files:
            got = load_file(f)
            if not getattr(got, kind):
                raise PluginError(f"{f}: {_MUST[kind]}")
            out.designs += got.designs
            out.properties += got.properties
    return out


def load_entry_points() -> Loaded:
    """Import the entry points of both groups; return what they registered."""
    from sgxsim.kernel.registry import load_entry_points as load_group

    try:
        before = _known()
        load_group(GROUP_DESIGNS)
        load_group(GROUP_PROPERTIES)
    except ValueError as e:
        raise PluginError(str(e)) from None
    return _diff(before)


def user_roots() -> list[str]:
    """The files of loaded design/property files and the package directories
    of loaded entry points: where the user's code lives."""
    from importlib.metadata import entry_points

    roots = [m.__file__ for n, m in list(sys.modules.items()) if n.startswith("sgxsim_user_") and m.__file__]
    for group in (GROUP_DESIGNS, GROUP_PROPERTIES):
        for ep in entry_points(group=group):
            top = sys.modules.get(ep.module.split(".")[0])
            f = getattr(top, "__file__", None)
            if f:
                roots.append(os.path.dirname(f) if f.endswith("__init__.py") else f)
    return roots


def user_error(exc: BaseException) -> str | None:
    """``file:line: Type: message`` when ``exc`` was raised in the user's
    code (a design or property from a file or an entry point), else None:
    a bug in a user's design is a clean error, not a traceback.  An error
    of a forked worker is found in its traceback text."""
    roots = user_roots()
    if not roots:
        return None

    def mine(path: str) -> bool:
        return any(path == r or path.startswith(r + os.sep) for r in roots)

    where = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__) if mine(f.filename)]
    # A worker's error carries its traceback as text: a forked worker's in
    # the cause, a Ray actor's (RayTaskError) in its own message.
    cause: BaseException | None = exc
    while not where and cause is not None:
        where = [(f, int(n)) for f, n in re.findall(r'File "([^"]+)", line (\d+)', str(cause)) if mine(f)]
        cause = cause.__cause__
    if not where:
        return None
    path, line = where[-1]
    return f"{path}:{line}: {describe(exc)} (raised by a design or property of yours)"
