"""The zygotes a runtime started, and which of them a new worker may fork from.

One zygote per worker: Python picks its string-hash secret when the interpreter starts (every
fork inherits it, and it cannot change afterwards without breaking the hashes already cached in
its strings and dicts), so an episode gets a hash seed of its own only from an interpreter of
its own: a spare's (``spares.py``). When a worker goes, its zygote is kept for its episode
(``kept_zygotes`` of them, least recently used beyond): a cold restore of the same episode
incarnation in this runtime forks from it (its seed again, no spare used); a discard of the
episode (delete, reset, expiry) drops it. With no spare ready, a new episode's worker is forked
from a zygote its tenant already has (kept, or a live worker's): a few ms, and it shares that
earlier episode's seed, never another tenant's (``share_tenant_zygotes``). A zygote is stopped
once no live worker, kept episode or spare needs it.

Apart from the spares because these rules (which interpreter an episode may fork from, and
when one may stop) are what keeps one tenant's seed and processes from another's.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .handles import Worker, process_traits
from .options import RuntimeOpts
from .zygote_client import RuntimeFailure, ZygoteClient

#: An episode: (tenant, episode id, incarnation).
Episode = tuple[str, str, str]

#: Every zygote this process started (any pool): the only children of the runtime's process
#: that the orphan sweep leaves alone.
ZYGOTE_PIDS: set[int] = set()


def stop_zygote(zygote: ZygoteClient) -> None:
    zygote.stop()
    ZYGOTE_PIDS.discard(zygote.pid)  # reaped: its pid may be anyone's now


class StartGate:
    """Lambda mode: no user code runs while a new zygote is dumpable.

    A new interpreter is dumpable from its exec until its first line makes it non-dumpable
    (``zygote_client``'s boot program): until then any process of the same uid may write its
    memory (``/proc/<pid>/mem``, ``ptrace``), and in Lambda mode user code is that uid. A spare
    started while a step ran (the refill runs during invocations) could be rewritten by that
    step, and would then fork the next episode's worker. So a zygote starts only while no user
    code runs, and user code starts only once no zygote is in that window (a few ms after its
    exec; a step may wait that long, only when a spare's start coincides with it)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._user_code = False
        self._starting = 0

    @contextmanager
    def zygote_starting(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._user_code)
            self._starting += 1
        try:
            yield
        finally:
            with self._changed:
                self._starting -= 1
                self._changed.notify_all()

    def enter_user_code(self) -> None:
        """Before user code may run (one step at a time in Lambda mode)."""
        with self._changed:
            self._changed.wait_for(lambda: self._starting == 0)
            self._user_code = True

    def leave_user_code(self) -> None:
        """Once every process of the step is stopped or killed."""
        with self._changed:
            self._user_code = False
            self._changed.notify_all()


class ZygoteSet:
    """Every live zygote (spares' and those of workers in use), those kept for episodes
    (``kept``); thread-safe under the pool's lock.

    It shares the pool's state rather than copying it, each passed in explicitly: ``lock`` is
    the pool's one lock (``kept``, the pool's ``live``, the spares and every
    ``zygote.spawning`` change under it together), ``children_lock`` the pool's lock around
    changes of a zygote's set of children, ``live`` the pool's live workers and
    ``spare_zygotes`` the zygotes of the spares and of the spare being started (both read
    under ``lock``), ``closed`` whether the pool is shut down (read under ``lock``),
    ``spawn_from`` the pool's (a worker forked from a zygote)."""

    def __init__(
        self,
        opts: RuntimeOpts,
        *,
        privileged: bool,
        lock: threading.Lock,
        children_lock: threading.Lock,
        live: dict[int, Worker],
        spare_zygotes: Callable[[], Iterable[ZygoteClient]],
        closed: Callable[[], bool],
        spawn_from: Callable[[ZygoteClient], Worker],
        font_cache_dir: str | None,
        font_cache_ready: threading.Event,
    ) -> None:
        self.opts = opts
        self.privileged = privileged
        self.lock = lock
        self._children_lock = children_lock
        self._live = live
        self._spare_zygotes = spare_zygotes
        self._closed = closed
        self._spawn_from = spawn_from
        self._font_cache_dir = font_cache_dir
        self._font_cache_ready = font_cache_ready
        self._zygotes: list[ZygoteClient] = []
        #: Zygotes whose worker is gone, by episode (tenant, episode id, incarnation).
        self.kept: OrderedDict[Episode, ZygoteClient] = OrderedDict()
        #: New episodes forked from a zygote of an earlier episode of their tenant (no spare
        #: ready): they share that episode's hash seed (benchmarks and tests read this).
        self.tenant_zygote_forks = 0
        # Root mode: each zygote leaves the host's mount table behind once (its workers inherit
        # that), instead of every worker detaching the host's mounts itself (~10 ms each).
        self._zygote_private_mounts = privileged and opts.private_mounts
        #: Lambda mode: user code and a zygote's first moments (dumpable) never overlap. (Not as
        #: root without privilege separation: user code is root there, nothing is out of reach.)
        self.start_gate = None if privileged or os.geteuid() == 0 else StartGate()

    def all(self) -> list[ZygoteClient]:
        with self.lock:
            return list(self._zygotes)

    def new_zygote(self, *, background: bool = False) -> ZygoteClient:
        if self.start_gate is None:
            return self._start_zygote(background=background)
        with self.start_gate.zygote_starting():
            zygote = self._start_zygote(background=background)
            # Its exec and first line take 10-100 ms: one that has not got there is killed
            # rather than left dumpable (and user code waiting for it).
            if not zygote.wait_undumpable(5.0):
                self.drop_zygote(zygote)
                raise RuntimeFailure("the worker factory (zygote) did not start")
        return zygote

    def _start_zygote(self, *, background: bool) -> ZygoteClient:
        # Root mode: a background start runs at the lowest priority until its imports are done.
        with self._children_lock:  # the orphan sweep must never see it unregistered
            zygote = ZygoteClient(
                self.opts.python,
                self.opts.preload,
                private_mounts=self._zygote_private_mounts,
                background=background and self.privileged,
                font_cache_dir=self._font_cache_dir if self._font_cache_ready.is_set() else None,
            )
            ZYGOTE_PIDS.add(zygote.pid)
        with self.lock:
            self._zygotes.append(zygote)
        if not self.privileged:
            zygote.traits = process_traits(zygote.pid)
        return zygote


    def _zygote_in_use(self, zygote: ZygoteClient) -> bool:
        """Whether a live worker, a kept episode, a spare or a fork in progress still needs it
        (several episodes of one tenant may share a zygote, see ``from_tenant``); lock held."""
        return (
            zygote.spawning > 0
            or any(z is zygote for z in self._spare_zygotes())
            or any(z is zygote for z in self.kept.values())
            or any(w.zygote is zygote for w in self._live.values())
        )

    def _release_zygotes(self, zygotes: list[ZygoteClient]) -> None:
        """Stop those of ``zygotes`` nothing needs any more."""
        with self.lock:
            unused = [z for i, z in enumerate(zygotes) if z not in zygotes[:i] and not self._zygote_in_use(z)]
        for zygote in unused:
            self.drop_zygote(zygote)

    def _forget_zygote(self, zygote: ZygoteClient) -> None:
        """A zygote found dead or changed: no episode forks from it again (its workers die with it)."""
        with self.lock:
            zygote.tenant = None  # no new episode of the tenant forks from it either
            for episode in [e for e, z in self.kept.items() if z is zygote]:
                del self.kept[episode]
        self.drop_zygote(zygote)

    def keep_or_drop_zygote(self, worker: Worker) -> None:
        """A worker is gone (reaped): its zygote is kept for the worker's episode's next cold
        step (``kept_zygotes``, LRU beyond), and stopped once nothing needs it."""
        zygote, episode = worker.zygote, worker.episode
        candidates = [zygote]
        with self.lock:
            self._live.pop(worker.pid, None)  # (before the check: it needs the zygote no more)
            keep = (
                episode is not None and not self._closed() and self.opts.kept_zygotes > 0
                and zygote.alive and zygote.process.poll() is None
            )
            if keep:
                zygote.seed_used = True
                previous = self.kept.pop(episode, None)
                if previous is not None:
                    candidates.append(previous)
                self.kept[episode] = zygote
                while len(self.kept) > self.opts.kept_zygotes:
                    candidates.append(self.kept.popitem(last=False)[1])
        self._release_zygotes(candidates)

    def drop_kept(self, keep: Any) -> int:
        """Drop the kept zygotes of episodes whose (tenant, episode id, incarnation) does not
        satisfy ``keep`` (stopped unless another episode of the tenant still uses them)."""
        with self.lock:
            dropped = [self.kept.pop(k) for k in [k for k in self.kept if not keep(k)]]
        self._release_zygotes(dropped)
        return len(dropped)

    def _usable(self, zygote: ZygoteClient) -> bool:
        usable = zygote.alive and zygote.process.poll() is None
        if usable and not self.privileged:
            # Lambda mode: an earlier step (same uid) may have stopped it or lowered its limits.
            try:
                os.kill(zygote.pid, signal.SIGCONT)
            except OSError:
                pass
            usable = process_traits(zygote.pid) == zygote.traits
        return usable

    def _fork_claimed(self, zygote: ZygoteClient) -> Worker | None:
        """A new worker of a zygote claimed under the lock (``spawning`` raised, so nothing
        stops it meanwhile), or None (then it is forgotten: dead or changed)."""
        worker: Worker | None = None
        try:
            if self._usable(zygote):
                try:
                    worker = self._spawn_from(zygote)
                except RuntimeFailure:
                    pass
        finally:
            with self.lock:
                zygote.spawning -= 1
        if worker is None:
            self._forget_zygote(zygote)
        return worker

    def from_kept(self, episode: Episode) -> Worker | None:
        """A new worker of the episode's kept zygote (its hash seed again), or None."""
        with self.lock:
            zygote = self.kept.pop(episode, None)
            if zygote is None:
                return None
            zygote.spawning += 1
        return self._fork_claimed(zygote)

    def tenant_interpreters(self, tenant: str) -> int:
        """How many zygotes (kept, or of live workers) the tenant's episodes hold here."""
        with self.lock:
            zygotes = {id(z) for z in self.kept.values() if z.tenant == tenant}
            zygotes.update(id(w.zygote) for w in self._live.values() if w.zygote.tenant == tenant)
            return len(zygotes)

    def from_tenant(self, tenant: str) -> Worker | None:
        """With no spare ready: a new worker of a zygote this tenant already has (kept for one
        of its episodes, or its live worker's), or None. The new episode then shares that
        earlier episode's hash seed (never another tenant's), and waits for no interpreter."""
        if not self.opts.share_tenant_zygotes:
            return None
        while True:
            with self.lock:
                if self._closed():
                    return None
                # (A worker being discarded still counts: its zygote is kept or stopped after.)
                candidates = [*reversed(self.kept.values()), *(w.zygote for w in reversed(self._live.values()))]
                zygote = next((z for z in candidates if z.tenant == tenant and z.alive and z in self._zygotes), None)
                if zygote is None:
                    return None
                zygote.spawning += 1
                zygote.seed_used = True  # never a spare again: the tenant's seed
            worker = self._fork_claimed(zygote)
            if worker is not None:
                with self.lock:
                    self.tenant_zygote_forks += 1
                return worker

    def drop_zygote(self, zygote: ZygoteClient) -> None:
        """Forget and stop a zygote (it kills whatever it still has), in the background."""
        with self.lock:
            if zygote in self._zygotes:
                self._zygotes.remove(zygote)
        threading.Thread(target=stop_zygote, args=(zygote,), daemon=True).start()

    # --- spares ----------------------------------------------------------------------------------
