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
only to balance the next level (the surplus of the actors that made most).

This module is imported only for ``--engine ray``; the embedded engine never
imports Ray.
"""

from __future__ import annotations

import contextlib
import os

from sgxsim.check.explorer import Worker

# A local cluster: two CPUs (one per worker of the default two), no
# dashboard, loopback only.
LOCAL_CPUS = 2
LOOPBACK = "127.0.0.1"
# Seconds to wait for the cluster at --address.
CONNECT_TIMEOUT = 10


class EngineError(RuntimeError):
    """Ray is missing or the cluster cannot be started or reached."""


def _ray():
    try:
        import ray
    except ImportError:
        raise EngineError("--engine ray needs Ray: pip install 'sgxsim[ray]'") from None
    return ray


@contextlib.contextmanager
def session(address: str | None = None, workers: int = LOCAL_CPUS):
    """Connect to the Ray cluster at ``address``, or start a local one with
    ``max(2, workers)`` CPUs; shut it down at the end if this call started
    or connected it.  Nested sessions (and pools) reuse the outer one."""
    if address:
        # An unreachable cluster ends the run after a few times this (Ray's
        # default is to wait for minutes); Ray reads these when imported.
        for knob in ("gcs_rpc_server_connect_timeout_s", "gcs_server_request_timeout_seconds",
                     "gcs_rpc_server_reconnect_timeout_s"):
            os.environ.setdefault(f"RAY_{knob}", str(CONNECT_TIMEOUT))
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    # No usage reports leave the machine.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=max(LOCAL_CPUS, workers), include_dashboard=False,
                     _node_ip_address=LOOPBACK, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise EngineError(f"--engine ray: cannot {'reach ' + address if address else 'start Ray'}: "
                           f"{e}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


class RayPool:
    """``workers`` actors behind the explorer's engine interface (``size``,
    ``expand``, ``keep``, ``take``, ``dedup``, ``close``)."""

    def __init__(self, model, names, workers: int, reuse: bool, address: str | None = None):
        self._session = session(address, workers)
        ray = self._ray = self._session.__enter__()
        try:
            actor = ray.remote(num_cpus=1)(Worker)
            ref = ray.put(model)
            self.actors = [actor.remote(ref, names, reuse) for _ in range(workers)]
        except BaseException:
            self._session.__exit__(None, None, None)
            raise
        self.size = workers

    def expand(self, open_props, keep) -> list:
        props = set(open_props)
        return self._ray.get([a.expand.remote(props, keep) for a in self.actors])

    def keep(self, keeps, gives) -> list:
        return self._ray.get([a.keep.remote(k, g)
                              for a, k, g in zip(self.actors, keeps, gives, strict=True)])

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
        for a in self.actors:
            self._ray.kill(a)
        self._session.__exit__(None, None, None)
