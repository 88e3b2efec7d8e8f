"""The worker pool: which worker serves a step, warm workers, and the checks between steps.

A warm worker is keyed by ``(tenant_id, episode_id, incarnation, state_version)`` and reused
only with the identical snapshot string it produced. Between its steps every process of a warm
worker is frozen: a cgroup freezer per worker in root mode, else SIGSTOP (see ``Freezer``).
Warm workers are kept up to ``max_warm_workers`` and ``max_warm_memory_bytes`` (least recently
used evicted beyond) and for ``warm_ttl_s``.

Every worker has a zygote of its own or its tenant's (its hash seed): where that zygote comes
from is ``spares.py`` (spares, their refill, the choice for a cold step) and ``zygotes.py``
(zygotes kept for episodes, tenant zygotes, when one stops); forking
a worker and freeing its uid, group and files is ``workers.py``. This module ties them together
under one lock and owns what only the pool can judge: the warm workers, discarding a worker
(kill, sweep, keep or stop its zygote, free its uid), the hygiene checks after a step and
shutdown.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Any

from . import cgroups, font_cache, hygiene, sandbox
from .handles import WarmKey, Worker, rss_bytes, thread_count
from .options import RuntimeOpts, check_interpreter_reachable, max_warm_memory_mb, memory_total_bytes
from .workers import MAX_REPLY_HEADER, UidBlock, WorkerFactory, kill_processes
from .zygote_client import RuntimeFailure, ZygoteClient
from .spares import InterpreterSupply
from .zygotes import ZYGOTE_PIDS, Episode, stop_zygote

__all__ = ["MAX_REPLY_HEADER", "WorkerPool"]


class WorkerPool:
    """Owns the zygotes (through ``supply``) and every worker; thread-safe."""

    def __init__(self, opts: RuntimeOpts) -> None:
        self.opts = opts
        self.privileged = os.geteuid() == 0 and opts.drop_privileges
        if opts.max_processes is None:
            opts.max_processes = 64 if self.privileged else 256
        if opts.max_warm_memory_bytes is None:
            from_env = max_warm_memory_mb()
            opts.max_warm_memory_bytes = from_env * 2**20 if from_env else memory_total_bytes() // 2
        if self.privileged:
            check_interpreter_reachable(opts.python)
        elif opts.unprivileged_namespaces and not sandbox.unprivileged_namespaces_available():
            opts.unprivileged_namespaces = False
            print("coding-env runtime: this kernel refuses unprivileged user namespaces, so workers "
                  "share this machine's network and user code can reach its 127.0.0.1 services "
                  "(run the local stack as root, or allow unprivileged user namespaces)",
                  file=sys.stderr, flush=True)
        if opts.work_root:
            self.work_root = opts.work_root
            os.makedirs(self.work_root, mode=0o711, exist_ok=True)
        else:  # unique and ours, whatever a crashed runtime left behind
            hygiene.remove_stale_work_roots()
            self.work_root = tempfile.mkdtemp(prefix=hygiene.WORK_ROOT_PREFIX, dir="/tmp")
            with open(os.path.join(self.work_root, hygiene.OWNER_FILE), "w") as fh:
                fh.write(str(os.getpid()))
        os.chmod(self.work_root, 0o711)
        self.cgroups: cgroups.CgroupManager | None = None
        if self.privileged and opts.use_cgroups:
            manager = cgroups.CgroupManager()
            if manager.available:
                self.cgroups = manager
            else:
                print(f"coding-env runtime: {manager.problem}; memory limits are per process and "
                      "workers are stopped with SIGSTOP between steps", file=sys.stderr, flush=True)
        # The one lock of the pool, shared with ``supply`` and ``workers`` (passed to them):
        # ``live``, ``warm``, the spares, the kept zygotes, every ``zygote.spawning`` and the
        # free uids change under it together.
        self.lock = threading.Lock()
        # Held while the zygote's set of children changes (spawn + registration, uid kills) so
        # the stray-process check never mistakes a worker being born for an escaped process.
        self._children_lock = threading.Lock()
        self.warm: OrderedDict[WarmKey, Worker] = OrderedDict()
        self.live: dict[int, Worker] = {}
        self.uids = UidBlock(opts, self.lock) if self.privileged else None
        self.closed = False
        self.workers = WorkerFactory(
            opts, privileged=self.privileged, work_root=self.work_root, cgroup_manager=self.cgroups,
            uids=self.uids, lock=self.lock, children_lock=self._children_lock, live=self.live,
            discard=self.discard,
        )
        # Lambda mode: user code shares /tmp (and friends) with the runtime. Unless
        # scrub_shared_dirs is off (a non-root local executor on a user's machine, whose /tmp holds
        # the user's own files), whatever of our uid appears there besides the workers' own
        # directories is removed after every step, so no file outlives its step or reaches the
        # next episode of this execution environment.
        self.shared_dirs: dict[str, set[str]] = {}
        #: Lambda mode: user code's uid owns the work root, which is scrubbed after every step.
        self.shared_work_root = not (self.privileged and opts.private_mounts)
        if self.shared_work_root and opts.scrub_shared_dirs:
            for directory in sandbox.PRIVATE_TMP_DIRS:
                try:
                    self.shared_dirs[directory] = set(os.listdir(directory))
                except OSError:
                    continue
            self.shared_dirs.setdefault(os.path.dirname(self.work_root), set()).add(
                os.path.basename(self.work_root)
            )
        # Lambda mode shares the host's IPC namespace too: SysV objects user code leaves behind
        # are removed the same way.
        self._shared_ipc = not (self.privileged and opts.private_mounts and opts.private_ipc)
        self._ipc_baseline = hygiene.sysv_baseline() if self._shared_ipc else set()
        self._ipc_signature = hygiene.sysv_signature() if self._shared_ipc else ()
        self._started_at = time.time()
        if not self.privileged:
            # Lambda mode: user code can kill its zygote (same uid); what its workers started
            # then comes to us instead of escaping to init, and is swept after the step.
            sandbox.best_effort(sandbox.become_subreaper, "PR_SET_CHILD_SUBREAPER")
        # matplotlib's font cache: prebuilt (the image's), else built once here (root mode) in
        # the background; zygotes started before it is there go without (font_cache.py).
        self.font_cache_dir = font_cache.default_dir(opts.python)
        self.font_cache_ready = threading.Event()
        if self.font_cache_dir is None or font_cache.present(self.font_cache_dir) or not self.privileged:
            self.font_cache_ready.set()
        else:
            threading.Thread(target=self._build_font_cache, name="font-cache", daemon=True).start()
        # Starts the first spare's interpreter now (Lambda's init phase); the housekeeping
        # thread forks its worker.
        self.supply = InterpreterSupply(
            opts, privileged=self.privileged, lock=self.lock, children_lock=self._children_lock,
            live=self.live, closed=lambda: self.closed, spawn_from=self.workers.spawn_from,
            discard=self.discard, font_cache_dir=self.font_cache_dir, font_cache_ready=self.font_cache_ready,
        )
        self._maintainer = threading.Thread(target=self._maintain, name="worker-pool", daemon=True)
        self._maintainer.start()
        self.supply.refill_wanted.set()

    def _build_font_cache(self) -> None:
        assert self.font_cache_dir is not None
        try:
            if not font_cache.build(self.opts.python, self.font_cache_dir):
                print("coding-env runtime: matplotlib's font cache could not be built (is matplotlib "
                      "installed?); each worker that imports it builds its own", file=sys.stderr, flush=True)
        finally:
            self.font_cache_ready.set()

    # --- the interpreter supply's and the factory's parts, as the runtime, tests and benchmarks
    # --- see them (spares.py, zygotes.py, workers.py)

    @property
    def idle(self) -> list[Worker]:
        """The spares."""
        return self.supply.idle

    @property
    def _kept(self) -> OrderedDict[Episode, ZygoteClient]:
        return self.supply.zygotes.kept

    @property
    def _free_uids(self) -> list[int]:
        return self.uids.free if self.uids is not None else []

    @property
    def spares_started_on_step(self) -> int:
        return self.supply.spares_started_on_step

    @property
    def spares_waited_on_step(self) -> int:
        return self.supply.spares_waited_on_step

    @property
    def tenant_zygote_forks(self) -> int:
        return self.supply.zygotes.tenant_zygote_forks

    def zygotes(self) -> list[ZygoteClient]:
        return self.supply.zygotes.all()

    @property
    def zygote(self) -> ZygoteClient:
        """A live zygote (a spare's; tests and benchmarks look at one)."""
        for zygote in self.zygotes():
            if zygote.alive and zygote.process.poll() is None:
                return zygote
        return self.zygote_ready("")

    def zygote_ready(self, tenant: str) -> ZygoteClient:
        return self.supply.zygote_ready(tenant)

    def take_idle(self, tenant: str, episode: Episode | None = None) -> Worker:
        return self.supply.take_idle(tenant, episode)

    def release_unused(self, worker: Worker) -> None:
        self.supply.release_unused(worker)

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        return self.supply.wait_ready(timeout_s)

    def spawn(self, tenant: str | None = None) -> Worker:
        """A fresh worker with a zygote of its own (a spare) for the tenant."""
        from .contract import DEFAULT_TENANT_ID

        return self.take_idle(tenant if tenant is not None else DEFAULT_TENANT_ID)

    def _new_zygote(self, *, background: bool = False) -> ZygoteClient:
        return self.supply.zygotes.new_zygote(background=background)

    def _drop_zygote(self, zygote: ZygoteClient) -> None:
        self.supply.zygotes.drop_zygote(zygote)

    def _spawn_from(self, zygote: ZygoteClient) -> Worker:
        return self.workers.spawn_from(zygote)

    def kill_processes(self, worker: Worker) -> None:
        kill_processes(worker)

    # --- workers -------------------------------------------------------------------------------

    def _kill_uid(self, uid: int, via: ZygoteClient | None = None) -> None:
        """Kill every process of a private uid (through a live zygote, ``via`` first: it forks a
        helper)."""
        for zygote in ([via] if via is not None else []) + self.zygotes():
            if zygote.alive:
                with self._children_lock:
                    zygote.kill_uid(uid)
                return
        raise RuntimeFailure("no zygote to kill the uid's processes")

    def discard(self, worker: Worker, *, wait: bool = False, reaped: bool = False, keep_zygote: bool = False) -> None:
        """Kill the worker and everything it started (at once: its memory is released now);
        free its uid and group once all of it is gone.

        It stays in ``live`` until the zygote has reaped it, so its zombie is never a "stray".
        """
        with self.lock:
            if worker.discarded:
                return
            worker.discarded = True
        kill_processes(worker)
        if worker.group is None:
            self.sweep_strays()
            self.scrub_shared_dirs()
        zygote = worker.zygote

        def finish() -> None:
            if not reaped:
                zygote.wait_exit(worker.pid, 5.0)
            if worker.uid is not None:
                try:
                    self._kill_uid(worker.uid, via=zygote if zygote.alive else None)
                except RuntimeFailure:
                    pass
            if not keep_zygote:  # (benchmarks fork several workers of one zygote)
                self.supply.zygotes.keep_or_drop_zygote(worker)
            emptied = worker.group.remove() if worker.group is not None else False
            with self.lock:
                self.live.pop(worker.pid, None)
            zygote.forget_exit(worker.pid)
            self.workers.close_files(worker)
            if worker.uid is not None:
                self.workers.release_uid(worker.uid, processes_gone=emptied)

        if wait:
            finish()
        else:
            threading.Thread(target=finish, name="worker-cleanup", daemon=True).start()

    def _maintain(self) -> None:
        """The housekeeping thread: warm workers past their TTL go, dead spares are replaced,
        spares are started (off the step path) whenever one was taken, every 5 s otherwise."""
        while True:
            self.supply.refill_wanted.wait(timeout=5.0)
            self.supply.refill_wanted.clear()
            if self.closed:
                return
            now = time.monotonic()
            expired: list[Worker] = []
            with self.lock:
                for key, worker in list(self.warm.items()):
                    if now - worker.last_used > self.opts.warm_ttl_s:
                        expired.append(self.warm.pop(key))
            for worker in expired:
                self.discard(worker)
            self.supply.drop_dead_spares()
            self.supply.refill()
            if self.closed:
                return

    # --- warm workers --------------------------------------------------------------------------

    def take_warm(self, key: WarmKey) -> Worker | None:
        with self.lock:
            return self.warm.pop(key, None)

    def drop_warm(self, keep: Any, *, zygotes: bool = False) -> int:
        """Discard every warm worker whose key does not satisfy ``keep``; how many. With
        ``zygotes`` (the episode is discarded: delete, reset, expiry), also the kept zygotes of
        such episodes (``keep`` then also gets ``(tenant, episode id, incarnation)``)."""
        with self.lock:
            dropped = [self.warm.pop(k) for k in [k for k in self.warm if not keep(k)]]
            if zygotes:
                for worker in dropped:
                    worker.episode = None  # its zygote is not kept for the episode either
        for worker in dropped:
            self.discard(worker)
        if zygotes:
            self.supply.zygotes.drop_kept(keep)
        return len(dropped)

    def keep_warm(self, worker: Worker) -> None:
        """Put a frozen worker among the warm ones; evict the least recently used beyond the
        count and memory caps."""
        if worker.group is not None:
            # Its zygote is its own (root mode: its pages are charged to the runtime's group).
            zygote = worker.zygote
            if zygote.memory_bytes is None:
                zygote.memory_bytes = rss_bytes(zygote.pid)
            worker.memory_bytes = worker.group.memory_bytes() + zygote.memory_bytes
        else:  # Lambda mode: the worker's RSS counts the pages it shares with its zygote
            worker.memory_bytes = rss_bytes(worker.pid)
        worker.last_used = time.monotonic()
        evicted: list[Worker] = []
        assert worker.key is not None
        with self.lock:
            previous = self.warm.pop(worker.key, None)
            if previous is not None:
                evicted.append(previous)
            self.warm[worker.key] = worker
            total = sum(w.memory_bytes for w in self.warm.values())
            cap = self.opts.max_warm_memory_bytes or 0
            while len(self.warm) > self.opts.max_warm_workers or (total > cap and len(self.warm) > 1):
                old = self.warm.popitem(last=False)[1]
                total -= old.memory_bytes
                evicted.append(old)
            if total > cap and self.warm:  # alone above the cap: not kept either
                evicted.append(self.warm.pop(worker.key))
        if evicted:
            # Killed right away, but off this step's path (they are in no list any more).
            threading.Thread(target=self._discard_all, args=(evicted,), daemon=True).start()

    def _discard_all(self, workers: list[Worker]) -> None:
        for worker in workers:
            self.discard(worker)

    # --- hygiene -----------------------------------------------------------------------------

    def sweep_strays(self) -> bool:
        if not self.privileged:
            with self._children_lock:  # no zygote is being born unregistered meanwhile
                found = hygiene.sweep_orphans(ZYGOTE_PIDS.__contains__)
        else:
            found = False
        for zygote in self.zygotes():
            with self._children_lock:
                live = set(self.live)
                found = hygiene.sweep_strays(zygote.pid, live.__contains__) or found
        return found

    def scrub_shared_dirs(self) -> None:
        def own_pids() -> list[int]:
            return [os.getpid(), *(z.pid for z in self.zygotes()), *self.live]

        hygiene.scrub_shared_dirs(self.shared_dirs, own_pids)
        if self.shared_work_root:
            # Lambda mode: user code's uid owns the work root and every worker's directory (a
            # worker wipes its own directory before each step, so a file planted in an idle
            # worker's directory never reaches the step that gets it).
            with self.lock:
                kept = {hygiene.OWNER_FILE, *self.workers.workdir_names}
            hygiene.scrub_work_root(self.work_root, kept)
        if self._shared_ipc:
            signature = hygiene.sysv_signature()
            if signature != self._ipc_signature:  # something was created or removed: look
                hygiene.remove_sysv_objects(os.geteuid(), self._ipc_baseline, self._started_at)
                self._ipc_signature = hygiene.sysv_signature()

    def healthy_after_step(self, worker: Worker) -> bool:
        """Trust nothing the worker says: check from outside that it is alone and clean."""
        if worker.group is not None:
            # Everything it started is in its group (frozen now): it must be the only process.
            alone = worker.group.only_process() == worker.pid
        else:
            # First, so escaped daemons die even when another check already condemns the
            # worker; the worker that just ran is the suspect, since it ran code since the last
            # sweep.
            escaped = self.sweep_strays()
            self.scrub_shared_dirs()
            alone = not escaped and not sandbox.children_of(worker.pid)
        if not alone or thread_count(worker) != 1:
            return False
        try:
            if worker.scratch_fds:
                return not any(os.listdir(fd) for fd in worker.scratch_fds)
            return not any(os.listdir(d) for d in worker.scratch_dirs)
        except OSError:
            return False

    # --- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        zygotes = self.zygotes()
        with self.lock:
            if self.closed:
                return
            self.closed = True
            workers = list(self.live.values())
            self.idle.clear()
            self.warm.clear()
        self.supply.refill_wanted.set()
        for worker in workers:
            self.discard(worker, wait=True)
        for zygote in zygotes:
            stop_zygote(zygote)
        if self.cgroups is not None:
            self.cgroups.remove_bases()
        shutil.rmtree(self.work_root, ignore_errors=True)
        if self.uids is not None:
            self.uids.close()
