"""The distributed engine of ``sgxsim check --engine ray``: the breadth-first
search of :func:`sgxsim.check.explorer.explore` with its workers as Ray actors.

Each actor is an :class:`~sgxsim.check.explorer.Worker`, the same object a
process of the embedded engine runs: it keeps the frozen states it made and
expands them level by level with the explorer's own expansion code.  What
crosses the cluster per level is small: the actors report (parent, action,
digest, property hits); the driver sorts them into the sequential order and
asks the owner of each digest (the seen-set is partitioned over the actors by
the digest's first bytes) whether it is new, in that order, so the first
(parent, action) to reach a state wins everywhere, as in the local engine;
the driver keeps the parent links that rebuild traces.  Frozen states move
only to balance the next level (the surplus of the actors that made most),
from actor to actor: the giver puts them in Ray's object store, the driver
passes the reference on, the taker fetches them from the giver's node.

This module is imported only for ``--engine ray``; the embedded engine never
imports Ray.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile

from sgxsim.check.explorer import Worker
from sgxsim.plugins import no_exit

# A local cluster: two CPUs (one per worker of the default two), no
# dashboard, loopback only.
LOCAL_CPUS = 2
LOOPBACK = "127.0.0.1"
# Seconds to wait for the cluster at --address (to answer at all, then for
# each of Ray's own connection steps).
CONNECT_TIMEOUT = 5
# The child process that tries the cluster before this process connects.
PROBE_TIMEOUT = 60
_PROBE_SAYS = "sgxsim-probe: "
_PROBE = ("import sys, ray\n"
          "try:\n"
          "    ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR')\n"
          "except (ConnectionError, ValueError, RuntimeError) as e:\n"
          f"    sys.exit({_PROBE_SAYS!r} + (str(e).strip().splitlines() or [type(e).__name__])[0])\n"
          "ray.shutdown()\n")
ADDRESS_FORMS = "HOST:PORT (the head node's port, 6379 unless `ray start --head --port` said otherwise), " \
                "ray://HOST:PORT or auto"


class EngineError(RuntimeError):
    """Ray is missing or the cluster cannot be started or reached.
    ``status``: the exit status for the command line (2: what was given is
    wrong or missing, as for a bad option; 1: the cluster failed)."""

    def __init__(self, msg: str, status: int = 1):
        super().__init__(msg)
        self.status = status


def _ray():
    try:
        import ray
    except ImportError:
        raise EngineError("--engine ray needs Ray, which is not installed: pip install 'sgxsim[ray]' "
                          "(or use the default --engine local)", status=2) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """Where ``address`` says the cluster listens (None for ``auto``); a
    malformed address is an :class:`EngineError`."""
    if address == "auto":
        return None
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EngineError(f"--address {address!r} is not a Ray address: expected {ADDRESS_FORMS}",
                          status=2)
    return host, int(port)


def _unreachable(address: str, why: str) -> EngineError:
    return EngineError(f"--engine ray: no Ray cluster answers at {address} ({why}). Start one there "
                       "(`ray start --head --port=PORT`, docs/checker-reach.md) and pass its address, "
                       "or leave out --address to run on a local cluster", status=2)


def _probe(address: str) -> None:
    """Fail fast, with one clear message, when nothing listens at
    ``address`` (Ray itself retries for half a minute, logging as it goes)."""
    hp = _host_port(address)
    if hp is not None:
        try:
            socket.create_connection(hp, timeout=CONNECT_TIMEOUT).close()
        except OSError as e:
            raise _unreachable(address, e.strerror or str(e) or type(e).__name__) from None
    # Something listens (or ``auto`` found an address): connect once in a
    # child process first, since a Ray driver that cannot reach the cluster's
    # GCS ends its own process (a fatal log line and exit status 1).
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE, address], capture_output=True, text=True,
                           timeout=PROBE_TIMEOUT, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    except subprocess.TimeoutExpired:
        raise _unreachable(address, f"no answer from a Ray cluster within {PROBE_TIMEOUT} s") from None
    if r.returncode != 0:
        said = [ln.strip() for ln in r.stderr.splitlines() if ln.startswith(_PROBE_SAYS)]
        why = said[-1][len(_PROBE_SAYS):] if said else "something listens there, but no Ray cluster answers"
        if "InvalidAuthToken" in r.stderr:
            raise EngineError(f"--engine ray: the Ray cluster at {address} refuses this machine's "
                              "authentication token (or it has none): put the head node's token "
                              "(`ray get-auth-token` there) in ~/.ray/auth_token or $RAY_AUTH_TOKEN, "
                              "or start the cluster with RAY_AUTH_MODE=disabled", status=2)
        raise _unreachable(address, why)


def _token_available() -> bool:
    """Whether this machine has a Ray cluster token (as Ray looks for it)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray",
                                                                  "auth_token")
    return os.path.isfile(path)


@contextlib.contextmanager
def _quiet_stderr():
    """Ray's core logs to file descriptor 2 while it connects: keep that
    off the user's terminal (what it said is in Ray's own log files)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@contextlib.contextmanager
def session(address: str | None = None, workers: int = LOCAL_CPUS):
    """Connect to the Ray cluster at ``address``, or start a local one with
    ``max(2, workers)`` CPUs; shut it down at the end if this call started
    or connected it.  Nested sessions (and pools) reuse the outer one."""
    if address:
        _host_port(address)  # a malformed address is refused before importing Ray
        # A cluster that listens but does not answer as Ray would ends the
        # run after a few times this (Ray's default is minutes); Ray reads
        # these when imported.
        for knob in ("gcs_rpc_server_connect_timeout_s", "gcs_server_request_timeout_seconds",
                     "gcs_rpc_server_reconnect_timeout_s"):
            os.environ.setdefault(f"RAY_{knob}", str(CONNECT_TIMEOUT))
        # `ray start --head` turns on token authentication and writes the
        # token to ~/.ray/auth_token; a driver sends it only when told to.
        if "RAY_AUTH_MODE" not in os.environ and _token_available():
            os.environ["RAY_AUTH_MODE"] = "token"
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    # No usage reports leave the machine.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address:
            _probe(address)
            with _quiet_stderr():
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=max(LOCAL_CPUS, workers), include_dashboard=False,
                     _node_ip_address=LOOPBACK, log_to_driver=False, logging_level="ERROR")
    except Exception as e:  # noqa: BLE001 - Ray raises bare Exception too
        # (e.g. "The current node timed out during startup" on a loaded
        # machine): every failure to start or reach Ray is the engine's error.
        if isinstance(e, EngineError):
            raise
        if address:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise _unreachable(address, first) from None
        raise EngineError(f"--engine ray: cannot start a local Ray cluster: {e}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


class _Actor(Worker):
    """A :class:`Worker` as a Ray actor: moved states go from actor to actor
    through Ray's object store, never through the driver.

    An actor is a fresh process (on any node), not a fork of the driver: it
    first loads the installed entry points and the design and property files
    the driver loaded (their sources travel with it, see plugins.shipped()),
    then fetches the model, whose pickle may name their classes.

    Its methods raise a SystemExit (``sys.exit()`` in a design or property)
    as an ordinary error (plugins.no_exit): Ray takes a SystemExit in an
    actor for the actor's wish to end, and the driver would get a dead actor
    instead of the file and line."""

    @no_exit
    def __init__(self, plugins, model_box, names, reuse, bound, spill_root):
        import ray

        from sgxsim.plugins import load_entry_points, load_shipped

        load_entry_points()
        load_shipped(plugins)
        # model_box: [ref], so that Ray does not unpickle the model before
        # the files above define its classes.
        super().__init__(ray.get(model_box[0]), names, reuse, bound, spill_root)

    expand = no_exit(Worker.expand)
    keep = no_exit(Worker.keep)
    take = no_exit(Worker.take)
    dedup = no_exit(Worker.dedup)

    @no_exit
    def keep_put(self, keeps, gives):
        """:meth:`Worker.keep`, the pieces to move put in the object store:
        only their references go back to the driver."""
        import ray

        return [ray.put(p) for p in self.keep(keeps, gives)]


class RayPool:
    """``workers`` actors behind the explorer's engine interface (``size``,
    ``expand``, ``keep``, ``take``, ``dedup``, ``close``)."""

    def __init__(self, model, names, workers: int, reuse: bool, address: str | None = None,
                 bound: int | None = None, spill_root: str | None = None):
        self._session = session(address, workers)
        ray = self._ray = self._session.__enter__()
        self.actors = []
        try:
            from sgxsim.plugins import shipped

            actor = ray.remote(num_cpus=1)(_Actor)
            ref = ray.put(model)
            self.actors = [actor.remote(shipped(), [ref], names, reuse, bound, spill_root)
                           for _ in range(workers)]
        except BaseException:
            self._session.__exit__(None, None, None)
            raise
        self.size = workers

    def expand(self, open_props, keep) -> list:
        props = set(open_props)
        return self._ray.get([a.expand.remote(props, keep) for a in self.actors])

    def keep(self, keeps, moves) -> None:
        """Each actor keeps its new children; the surplus pieces (in the
        object store of the actor that made them) are handed, by reference,
        to the actors that take them, which fetch them from there."""
        refs = self._ray.get([a.keep_put.remote(k, [n for _, n in m])
                              for a, k, m in zip(self.actors, keeps, moves, strict=True)])
        self._ray.get([self.actors[r].take.remote(ref)
                       for m, rs in zip(moves, refs, strict=True)
                       for (r, _), ref in zip(m, rs, strict=True)])

    def take(self, w: int, entries) -> None:
        self._ray.get(self.actors[w].take.remote(entries))

    def owner(self, key: bytes) -> int:
        """The actor whose partition of the seen-set holds ``key``."""
        return int.from_bytes(key[:4], "little") % self.size

    def dedup(self, keys: list[bytes]) -> list[bool]:
        """Whether each key (in the merge order) is new: each actor decides
        for its partition, in parallel, keeping the order within it."""
        parts: list[list[int]] = [[] for _ in self.actors]
        for i, k in enumerate(keys):
            parts[self.owner(k)].append(i)
        answers = self._ray.get([a.dedup.remote([keys[i] for i in idx])
                                 for a, idx in zip(self.actors, parts, strict=True)])
        fresh = [False] * len(keys)
        for idx, ans in zip(parts, answers, strict=True):
            for i, new in zip(idx, ans, strict=True):
                fresh[i] = new
        return fresh

    def close(self) -> None:
        # Each actor removes its spill files (on its own node) before it goes.
        with contextlib.suppress(Exception):
            self._ray.get([a.close.remote() for a in self.actors], timeout=60)
        for a in self.actors:
            self._ray.kill(a)
        self._session.__exit__(None, None, None)
