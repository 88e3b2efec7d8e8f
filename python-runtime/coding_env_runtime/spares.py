"""The spares: fresh interpreters (zygotes) with one pre-forked worker each, started off the
step path, and the choice of a worker for a cold step (``take_idle``).

An episode gets a hash seed of its own only from an interpreter of its own (``zygotes.py``).
The supply keeps ``idle_workers`` spares ready; a cold step (a new episode, or a restore) takes
one, and the pool's housekeeping thread starts the next one (``refill``), one at a time (root
mode: while another spare is ready, at a low CPU priority, nice 10, until its imports are done).
With no spare ready, a new episode's worker is forked from a zygote its tenant already has (a
few ms, its seed); only with no zygote of the tenant at all does a step wait for the spare
being started (raising its priority) or start one itself. A tenant's episodes hold at most
``interpreters_per_tenant`` zygotes: beyond, a new episode forks from the tenant's most recently
used one (memory: every interpreter's pages are its episodes' alone).

Apart from the pool (``pool.py``: workers in use, warm workers) because starting interpreters
is the slow part of a cold step (0.1-1 s of CPU each) and has rules of its own: when to start
one, at what priority, and who waits for it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from . import sandbox
from .handles import Worker, process_traits
from .options import RuntimeOpts
from .zygote_client import RuntimeFailure, ZygoteClient
from .zygotes import Episode, ZygoteSet


class InterpreterSupply:
    """The spares (``idle``) and the zygotes (``zygotes``, a ``ZygoteSet`` of its own);
    thread-safe under the pool's lock.

    It shares the pool's state rather than copying it, each passed in explicitly: ``lock`` is
    the pool's one lock (``idle``, the kept zygotes, the pool's ``live`` and every
    ``zygote.spawning`` change under it together, and ``spare_changed`` is a condition on it),
    ``children_lock`` the pool's lock around changes of a zygote's set of children, ``live``
    the pool's live workers, ``closed`` whether the pool is shut down (read under ``lock``),
    ``spawn_from`` and ``discard`` the pool's own (a worker forked from a zygote, a worker
    killed and freed)."""

    def __init__(
        self,
        opts: RuntimeOpts,
        *,
        privileged: bool,
        lock: threading.Lock,
        children_lock: threading.Lock,
        live: dict[int, Worker],
        closed: Callable[[], bool],
        spawn_from: Callable[[ZygoteClient], Worker],
        discard: Callable[[Worker], None],
        font_cache_dir: str | None,
        font_cache_ready: threading.Event,
    ) -> None:
        self.opts = opts
        self.privileged = privileged
        self.lock = lock
        self._closed = closed
        self._spawn_from = spawn_from
        self._discard = discard
        #: Spares: workers forked from a zygote of their own that no episode has used yet.
        self.idle: list[Worker] = []
        #: Spares started on a step's path because none was ready and the tenant had no
        #: zygote (benchmarks and tests read these).
        self.spares_started_on_step = 0
        #: Steps that waited for the spare being started (same condition).
        self.spares_waited_on_step = 0
        #: Set when a spare was taken (or the pool closes): the housekeeping thread refills.
        self.refill_wanted = threading.Event()
        #: The spare being started (None: none), and whether a step waits for it; notified
        #: when a spare is added to ``idle`` or a start ends.
        self._refilling: ZygoteClient | None = None
        self._spare_waited = False
        #: Held while the spare being started is chosen or its interpreter started (by the refill
        #: thread, or in Lambda mode by a cold step: ``_start_next_spare``).
        self._refill_start = threading.Lock()
        self.spare_changed = threading.Condition(lock)
        self.zygotes = ZygoteSet(
            opts, privileged=privileged, lock=lock, children_lock=children_lock, live=live,
            spare_zygotes=self._spare_zygotes, closed=closed, spawn_from=spawn_from,
            font_cache_dir=font_cache_dir, font_cache_ready=font_cache_ready,
        )
        # The first spare's interpreter starts now (Lambda's init phase); ``refill`` forks its
        # worker.
        if opts.idle_workers > 0:
            self._refilling = self.zygotes.new_zygote()

    def _spare_zygotes(self) -> list[ZygoteClient]:
        """The zygotes of the spares and of the spare being started; lock held."""
        return [*([self._refilling] if self._refilling is not None else []), *(w.zygote for w in self.idle)]

    def zygote_ready(self, tenant: str) -> ZygoteClient:
        """A live spare's zygote, a new spare if none (a zygote of a dead worker is never
        reused: the next cold step of any tenant takes a spare anyway)."""
        worker = self.take_idle(tenant)
        self.release_unused(worker)
        return worker.zygote


    def _new_spare(self, *, background: bool) -> Worker:
        """A new zygote (its own hash seed) and its one worker; on failure, neither is left."""
        zygote = self.zygotes.new_zygote(background=background)
        try:
            if not zygote.wait_ready(60.0):
                raise RuntimeFailure("the worker factory (zygote) did not start")
            return self._spawn_from(zygote)
        except BaseException:
            self.zygotes.drop_zygote(zygote)
            raise


    def release_unused(self, worker: Worker) -> None:
        """Give back a fresh worker that ran nothing (e.g. the snapshot was refused): it is a
        spare again, its zygote (and hash seed) not yet any episode's."""
        with self.lock:
            # Not a zygote kept for its episode: its seed is that episode's, never a spare's.
            if not self._closed() and not worker.zygote.seed_used and len(self.idle) < max(self.opts.idle_workers, 1):
                worker.zygote.tenant = worker.episode = None
                self.idle.append(worker)
                self.spare_changed.notify_all()
                return
        self._discard(worker)

    def drop_dead_spares(self) -> None:
        """Spares whose zygote died (user code of the same uid in Lambda mode) are discarded
        (``refill`` replaces them)."""
        with self.lock:
            dead = [w for w in self.idle if not w.zygote.alive or w.zygote.process.poll() is not None]
            self.idle[:] = [w for w in self.idle if w not in dead]
        for worker in dead:
            self._discard(worker)

    def refill(self) -> None:
        """Start spares up to ``idle_workers``, one at a time: a refill costs one interpreter
        start (0.1-1 s of CPU), so at most one CPU goes to it however many episodes start at
        once."""
        while True:
            with self.lock:
                if self._closed() or len(self.idle) >= self.opts.idle_workers:
                    break
            if not self._refill_one():
                break

    def _refill_one(self) -> bool:
        """Start one spare and add it to ``idle``; False if it failed. At a low priority only
        while another spare is ready (none ready: a step may need this one soon)."""
        with self._refill_start:
            with self.lock:
                background = bool(self.idle)
                zygote = self._refilling
            if zygote is None:
                zygote = self.zygotes.new_zygote(background=background)
                with self.lock:
                    self._refilling = zygote
        worker: Worker | None = None
        try:
            if not zygote.wait_ready(60.0):
                raise RuntimeFailure("the worker factory (zygote) did not start")
            worker = self._spawn_from(zygote)
        except RuntimeFailure:
            self.zygotes.drop_zygote(zygote)
        with self.lock:
            self._refilling = None
            closed = self._closed()
            if worker is not None and not closed:
                self.idle.append(worker)
            self.spare_changed.notify_all()
        if worker is not None and closed:
            self._discard(worker)
        return worker is not None and not closed

    def _start_next_spare(self) -> None:
        """Lambda mode, a cold step that took a spare: the next spare's interpreter starts here,
        before the step's user code (``zygotes.StartGate``: a new interpreter is dumpable for its
        first few ms, when user code of the same uid could rewrite it); the refill thread
        finishes it alongside the step, as before. Started by the refill thread instead, it
        would wait for the step to end (the environment is frozen then) and the next step would
        wait for it. Cost: an interpreter's exec and first line on this step (~10-30 ms)."""
        with self._refill_start:
            with self.lock:
                if self._refilling is not None or len(self.idle) >= self.opts.idle_workers or self._closed():
                    return
            try:
                zygote = self.zygotes.new_zygote(background=True)
            except RuntimeFailure:
                return  # the refill thread tries again
            with self.lock:
                self._refilling = zygote

    def _wait_for_refill(self) -> Worker | None:
        """With no spare ready: the one being started, if no other step waits for it (raised
        to the normal priority: a step waits for it now); None to start one here instead."""
        with self.lock:
            starting = self._refilling
            if starting is None or self._spare_waited:
                return None
            self._spare_waited = True
            self.spares_waited_on_step += 1
        try:
            if self.privileged:
                try:
                    os.setpriority(os.PRIO_PROCESS, starting.pid, 0)
                except OSError:
                    pass
            else:
                # Lambda mode: an earlier step (same uid) may have stopped the spare being born
                # (its zygote, or its worker before its first word): it would hold this step
                # until the start times out. Its limits are checked once it is ready.
                for pid in (starting.pid, *sandbox.children_of(starting.pid)):
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except OSError:
                        pass
            with self.lock:
                self.spare_changed.wait_for(lambda: self.idle or self._refilling is not starting or self._closed(),
                                            timeout=60.0)
                return self.idle.pop() if self.idle and not self._closed() else None
        finally:
            with self.lock:
                self._spare_waited = False

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """Wait until a spare is ready (Lambda's init phase: the first step then finds one)."""
        if self.opts.idle_workers <= 0:
            return False
        with self.lock:
            return self.spare_changed.wait_for(lambda: bool(self.idle) or self._closed(), timeout=timeout_s)

    def take_idle(self, tenant: str, episode: Episode | None = None) -> Worker:
        """A worker for a cold step of ``tenant``'s ``episode`` (tenant, episode id,
        incarnation): from the episode's kept zygote, or a spare's, whose zygote, never used
        before, is the episode's from now on (beyond ``interpreters_per_tenant`` of the tenant's,
        from its most recently used zygote instead); with neither, from a zygote of an earlier episode
        of the tenant (``ZygoteSet.from_tenant``: its seed, no interpreter start on the step) while the
        refill thread starts the next spare; only with no zygote of the tenant at all does the
        step wait for the spare being started, or start one itself. Lambda mode tries the kept
        zygote first (a fork there costs a few ms, and a spare's refill only gets CPU during
        invocations); root mode a ready spare first (its worker is forked already, while a
        fork with namespaces and groups costs ~10 ms or more on the step)."""
        kept_tried = episode is None

        def from_kept() -> Worker | None:
            nonlocal kept_tried
            kept_tried = True
            assert episode is not None
            worker = self.zygotes.from_kept(episode)
            if worker is not None:
                worker.zygote.tenant, worker.episode = tenant, episode
            return worker

        if not kept_tried and not self.privileged:
            worker = from_kept()
            if worker is not None:
                return worker
        if self.zygotes.tenant_interpreters(tenant) >= max(self.opts.interpreters_per_tenant, 1):
            if not kept_tried:
                worker = from_kept()
                if worker is not None:
                    return worker
            worker = self.zygotes.from_tenant(tenant)
            if worker is not None:
                worker.episode = episode
                return worker
        while True:
            with self.lock:
                if self._closed():
                    raise RuntimeFailure("the runtime is shut down")
                idle = self.idle.pop() if self.idle else None
            self.refill_wanted.set()
            if idle is None and not kept_tried:
                worker = from_kept()
                if worker is not None:
                    return worker
            if idle is None:
                worker = self.zygotes.from_tenant(tenant)
                if worker is not None:
                    worker.episode = episode
                    return worker
                idle = self._wait_for_refill()
            if idle is None:
                with self.lock:
                    self.spares_started_on_step += 1
                idle = self._new_spare(background=False)
                break
            if self.zygotes.start_gate is not None:
                self._start_next_spare()
            zygote = idle.zygote
            if not zygote.alive or zygote.process.poll() is not None:
                self._discard(idle)
                continue
            if idle.group is None:
                # Without a freezer group (Lambda mode) an earlier step of the same uid may have
                # stopped the spare (SIGSTOP: the step it gets next would time out), or lowered
                # its or its zygote's limits or priority (prlimit, setpriority): continue it, and
                # replace it if it was changed.
                for pid in (idle.pid, zygote.pid):
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except OSError:
                        pass  # gone: the step finds out and answers for it
                if process_traits(idle.pid) != idle.traits or (
                    not self.privileged and process_traits(zygote.pid) != zygote.traits
                ):
                    self._discard(idle)
                    continue
            break
        idle.zygote.tenant, idle.episode = tenant, episode
        return idle

