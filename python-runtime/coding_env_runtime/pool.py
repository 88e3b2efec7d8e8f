"""The worker pool: the zygote, pre-forked idle workers, warm workers, their uids and groups.

A warm worker is keyed by ``(tenant_id, episode_id, incarnation, state_version)`` and reused
only with the identical snapshot string it produced. Between its steps every process of a warm
worker is frozen: a cgroup freezer per worker in root mode, else SIGSTOP (see ``Freezer``).

One zygote per worker: Python picks its string-hash secret when the interpreter starts (every
fork inherits it, and it cannot change afterwards without breaking the hashes already cached in
its strings and dicts), so an episode gets a hash seed of its own only from an interpreter of
its own. The pool keeps ``idle_workers`` spares ready, each a freshly started zygote with one
pre-forked worker; a cold step (a new episode, or a restore) takes one, and a refill thread
starts the next one off the step path, one at a time (root mode: while another spare is ready,
at a low CPU priority, nice 10, until its imports are done). With no spare ready, a new
episode's worker is forked from a zygote its tenant already has (kept, or a live worker's): a
few ms, and it shares that earlier episode's seed, never another tenant's
(``share_tenant_zygotes``); only with no zygote of the tenant at all does a step wait for the
spare being started (raising its priority) or start one itself. When a worker goes, its zygote
is kept for its episode (``kept_zygotes`` of them, least recently used beyond): a cold restore
of the same episode incarnation in this runtime forks from it (its seed again, no spare used);
a discard of the episode (delete, reset, expiry) drops it. A zygote is stopped once no live
worker, kept episode or spare needs it. A tenant's episodes hold at most
``interpreters_per_tenant`` zygotes: beyond, a new episode forks from the tenant's most recently
used one (memory: every interpreter's pages are its episodes' alone).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Any

from . import cgroups, font_cache, hygiene, sandbox
from .handles import WarmKey, Worker, open_check_files, process_traits, rss_bytes, thread_count, worker_traits
from .options import RuntimeOpts, check_interpreter_reachable, memory_total_bytes
from .wire import WireError, recv_frame
from .zygote_client import RuntimeFailure, ZygoteClient

#: A worker's reply header is small (exit code, dropped names); anything bigger is hostile.
MAX_REPLY_HEADER = 1024 * 1024

#: Every zygote this process started (any pool): the only children of the runtime's process
#: that the orphan sweep leaves alone.
_ZYGOTE_PIDS: set[int] = set()


def _stop_zygote(zygote: ZygoteClient) -> None:
    zygote.stop()
    _ZYGOTE_PIDS.discard(zygote.pid)  # reaped: its pid may be anyone's now


class WorkerPool:
    """Owns the zygote and every worker; thread-safe."""

    def __init__(self, opts: RuntimeOpts) -> None:
        self.opts = opts
        self.privileged = os.geteuid() == 0 and opts.drop_privileges
        if opts.max_processes is None:
            opts.max_processes = 64 if self.privileged else 256
        if opts.max_warm_memory_bytes is None:
            from_env = os.environ.get("CODING_ENV_MAX_WARM_MEMORY_MB")
            opts.max_warm_memory_bytes = int(from_env) * 2**20 if from_env else memory_total_bytes() // 2
        if self.privileged:
            check_interpreter_reachable(opts.python)
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
        self.lock = threading.Lock()
        # Held while the zygote's set of children changes (spawn + registration, uid kills) so
        # the stray-process check never mistakes a worker being born for an escaped process.
        self._children_lock = threading.Lock()
        self.idle: list[Worker] = []
        self.warm: OrderedDict[WarmKey, Worker] = OrderedDict()
        self.live: dict[int, Worker] = {}
        self._uid_block_fd: int | None = None
        self._free_uids: list[int] = []
        if self.privileged:
            first = self._claim_uid_block()
            self._free_uids = list(range(first + opts.uid_block_size - 1, first - 1, -1))
        self._seq = itertools.count(1)
        self.closed = False
        # Lambda mode: user code shares /tmp (and friends) with the runtime. Whatever of our uid
        # appears there besides the workers' own directories is removed after every step, so no
        # file outlives its step or reaches the next episode of this execution environment.
        self.shared_dirs: dict[str, set[str]] = {}
        if not (self.privileged and opts.private_mounts):
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
        # Names of the workers' directories in the work root (registered before the worker
        # exists, so the scrub never takes one being created): anything else there is user
        # code's (Lambda mode: the work root belongs to user code's uid too).
        self._workdir_names: set[str] = set()
        # Every live zygote (spares and those of workers in use): one per worker, see above.
        self._zygotes: list[ZygoteClient] = []
        #: Zygotes whose worker is gone, by episode (tenant, episode id, incarnation).
        self._kept: OrderedDict[tuple[str, str, str], ZygoteClient] = OrderedDict()
        #: Spares started on a step's path because none was ready and the tenant had no
        #: zygote (benchmarks and tests read these).
        self.spares_started_on_step = 0
        #: Steps that waited for the spare being started (same condition).
        self.spares_waited_on_step = 0
        #: New episodes forked from a zygote of an earlier episode of their tenant (no spare
        #: ready): they share that episode's hash seed.
        self.tenant_zygote_forks = 0
        # Root mode: each zygote leaves the host's mount table behind once (its workers inherit
        # that), instead of every worker detaching the host's mounts itself (~10 ms each).
        self._zygote_private_mounts = self.privileged and opts.private_mounts
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
        self._refill = threading.Event()
        #: The spare the refill thread is starting (None: none), and whether a step waits for
        #: it; notified when a spare is added to ``idle`` or a start ends.
        self._refilling: ZygoteClient | None = None
        self._spare_waited = False
        self._spare_changed = threading.Condition(self.lock)
        # The first spare's interpreter starts now (Lambda's init phase); the refill thread
        # forks its worker.
        if opts.idle_workers > 0:
            self._refilling = self._new_zygote()
        self._maintainer = threading.Thread(target=self._maintain, name="worker-pool", daemon=True)
        self._maintainer.start()
        self._refill.set()

    def _build_font_cache(self) -> None:
        assert self.font_cache_dir is not None
        try:
            if not font_cache.build(self.opts.python, self.font_cache_dir):
                print("coding-env runtime: matplotlib's font cache could not be built (is matplotlib "
                      "installed?); each worker that imports it builds its own", file=sys.stderr, flush=True)
        finally:
            self.font_cache_ready.set()

    def _claim_uid_block(self) -> int:
        """Lock a block of private uids for this runtime's lifetime (released when it exits)."""
        lock_dir = "/run/coding-env-uid-blocks" if os.path.isdir("/run") else "/tmp/coding-env-uid-blocks"
        os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        for block in range(self.opts.uid_blocks):
            fd = os.open(os.path.join(lock_dir, f"{block}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._uid_block_fd = fd
            return self.opts.uid_base + block * self.opts.uid_block_size
        raise RuntimeFailure("every private uid block is in use by another runtime")

    # --- zygotes, one per worker -----------------------------------------------------------------

    def zygotes(self) -> list[ZygoteClient]:
        with self.lock:
            return list(self._zygotes)

    @property
    def zygote(self) -> ZygoteClient:
        """A live zygote (a spare's; tests and benchmarks look at one)."""
        for zygote in self.zygotes():
            if zygote.alive and zygote.process.poll() is None:
                return zygote
        return self.zygote_ready("")

    def zygote_ready(self, tenant: str) -> ZygoteClient:
        """A live spare's zygote, a new spare if none (a zygote of a dead worker is never
        reused: the next cold step of any tenant takes a spare anyway)."""
        worker = self.take_idle(tenant)
        self.release_unused(worker)
        return worker.zygote

    def _new_zygote(self, *, background: bool = False) -> ZygoteClient:
        # Root mode: a background start runs at the lowest priority until its imports are done.
        with self._children_lock:  # the orphan sweep must never see it unregistered
            zygote = ZygoteClient(
                self.opts.python,
                self.opts.preload,
                private_mounts=self._zygote_private_mounts,
                background=background and self.privileged,
                font_cache_dir=self.font_cache_dir if self.font_cache_ready.is_set() else None,
            )
            _ZYGOTE_PIDS.add(zygote.pid)
        with self.lock:
            self._zygotes.append(zygote)
        if not self.privileged:
            zygote.traits = process_traits(zygote.pid)
        return zygote

    def _new_spare(self, *, background: bool) -> Worker:
        """A new zygote (its own hash seed) and its one worker; on failure, neither is left."""
        zygote = self._new_zygote(background=background)
        try:
            if not zygote.wait_ready(60.0):
                raise RuntimeFailure("the worker factory (zygote) did not start")
            return self._spawn_from(zygote)
        except BaseException:
            self._drop_zygote(zygote)
            raise

    def _zygote_in_use(self, zygote: ZygoteClient) -> bool:
        """Whether a live worker, a kept episode, a spare or a fork in progress still needs it
        (several episodes of one tenant may share a zygote, see ``_from_tenant``); lock held."""
        return (
            zygote.spawning > 0
            or zygote is self._refilling
            or any(z is zygote for z in self._kept.values())
            or any(w.zygote is zygote for w in self.live.values())
            or any(w.zygote is zygote for w in self.idle)
        )

    def _release_zygotes(self, zygotes: list[ZygoteClient]) -> None:
        """Stop those of ``zygotes`` nothing needs any more."""
        with self.lock:
            unused = [z for i, z in enumerate(zygotes) if z not in zygotes[:i] and not self._zygote_in_use(z)]
        for zygote in unused:
            self._drop_zygote(zygote)

    def _forget_zygote(self, zygote: ZygoteClient) -> None:
        """A zygote found dead or changed: no episode forks from it again (its workers die with it)."""
        with self.lock:
            zygote.tenant = None  # no new episode of the tenant forks from it either
            for episode in [e for e, z in self._kept.items() if z is zygote]:
                del self._kept[episode]
        self._drop_zygote(zygote)

    def _keep_or_drop_zygote(self, worker: Worker) -> None:
        """A worker is gone (reaped): its zygote is kept for the worker's episode's next cold
        step (``kept_zygotes``, LRU beyond), and stopped once nothing needs it."""
        zygote, episode = worker.zygote, worker.episode
        candidates = [zygote]
        with self.lock:
            self.live.pop(worker.pid, None)  # (before the check: it needs the zygote no more)
            keep = (
                episode is not None and not self.closed and self.opts.kept_zygotes > 0
                and zygote.alive and zygote.process.poll() is None
            )
            if keep:
                zygote.seed_used = True
                previous = self._kept.pop(episode, None)
                if previous is not None:
                    candidates.append(previous)
                self._kept[episode] = zygote
                while len(self._kept) > self.opts.kept_zygotes:
                    candidates.append(self._kept.popitem(last=False)[1])
        self._release_zygotes(candidates)

    def _drop_kept(self, keep: Any) -> int:
        """Drop the kept zygotes of episodes whose (tenant, episode id, incarnation) does not
        satisfy ``keep`` (stopped unless another episode of the tenant still uses them)."""
        with self.lock:
            dropped = [self._kept.pop(k) for k in [k for k in self._kept if not keep(k)]]
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

    def _from_kept(self, episode: tuple[str, str, str]) -> Worker | None:
        """A new worker of the episode's kept zygote (its hash seed again), or None."""
        with self.lock:
            zygote = self._kept.pop(episode, None)
            if zygote is None:
                return None
            zygote.spawning += 1
        return self._fork_claimed(zygote)

    def _tenant_interpreters(self, tenant: str) -> int:
        """How many zygotes (kept, or of live workers) the tenant's episodes hold here."""
        with self.lock:
            zygotes = {id(z) for z in self._kept.values() if z.tenant == tenant}
            zygotes.update(id(w.zygote) for w in self.live.values() if w.zygote.tenant == tenant)
            return len(zygotes)

    def _from_tenant(self, tenant: str) -> Worker | None:
        """With no spare ready: a new worker of a zygote this tenant already has (kept for one
        of its episodes, or its live worker's), or None. The new episode then shares that
        earlier episode's hash seed (never another tenant's), and waits for no interpreter."""
        if not self.opts.share_tenant_zygotes:
            return None
        while True:
            with self.lock:
                if self.closed:
                    return None
                # (A worker being discarded still counts: its zygote is kept or stopped after.)
                candidates = [*reversed(self._kept.values()), *(w.zygote for w in reversed(self.live.values()))]
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

    def _drop_zygote(self, zygote: ZygoteClient) -> None:
        """Forget and stop a zygote (it kills whatever it still has), in the background."""
        with self.lock:
            if zygote in self._zygotes:
                self._zygotes.remove(zygote)
        threading.Thread(target=_stop_zygote, args=(zygote,), daemon=True).start()

    def _kill_uid(self, uid: int, via: ZygoteClient | None = None) -> None:
        """Kill every process of a private uid (through a live zygote, ``via`` first: it forks a
        helper)."""
        for zygote in ([via] if via is not None else []) + self.zygotes():
            if zygote.alive:
                with self._children_lock:
                    zygote.kill_uid(uid)
                return
        raise RuntimeFailure("no zygote to kill the uid's processes")

    # --- workers -------------------------------------------------------------------------------

    def spawn(self, tenant: str | None = None) -> Worker:
        """A fresh worker with a zygote of its own (a spare) for the tenant."""
        from .contract import DEFAULT_TENANT_ID

        return self.take_idle(tenant if tenant is not None else DEFAULT_TENANT_ID)

    def _spawn_from(self, zygote: ZygoteClient) -> Worker:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_fd = os.memfd_create("stdout", os.MFD_CLOEXEC)
        err_fd = os.memfd_create("stderr", os.MFD_CLOEXEC)
        for fd in (out_fd, err_fd):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        uid: int | None = None
        group: cgroups.WorkerGroup | None = None
        seq = next(self._seq)
        try:
            with self.lock:
                if self.privileged:
                    if not self._free_uids:
                        raise RuntimeFailure("no free worker uid")
                    uid = self._free_uids.pop()
            if self.cgroups is not None:
                group = self.cgroups.new_group(f"w{seq}")
        except BaseException:
            for fd in (out_fd, err_fd):
                os.close(fd)
            parent_sock.close()
            child_sock.close()
            if uid is not None:
                self._release_uid(uid)
            raise
        workdir = os.path.join(self.work_root, f"w{seq}")
        with self.lock:
            self._workdir_names.add(f"w{seq}")
        # Each tmpfs fits within the largest memory limit a step may ask for (its pages count
        # toward the worker's memory group too).
        from .contract import max_memory_mb

        tmp_bytes = min(self.opts.tmp_bytes, max_memory_mb() * 2**20)
        spec = {
            "workdir": workdir,
            "uid": uid,
            "gid": uid,
            "max_file_bytes": self.opts.max_file_bytes,
            "max_processes": self.opts.max_processes,
            "max_open_files": self.opts.max_open_files,
            "max_cpu_seconds": self.opts.max_cpu_seconds,
            "private_mounts": self.privileged and self.opts.private_mounts,
            "private_network": self.privileged and self.opts.private_mounts and self.opts.private_network,
            "private_ipc": self.privileged and self.opts.private_mounts and self.opts.private_ipc,
            "tmp_bytes": tmp_bytes,
            "cgroup_join": 0,
        }
        group_fds: list[int] = []
        try:
            if group is not None:
                procs_fds, state_fd = group.join_fds()
                group_fds = [*procs_fds, state_fd]
                spec.update(cgroup_join=len(procs_fds), freezer_v2=group.freezer_v2)
            with self.lock:
                # Not retired for the zygote cap while it forks (a zygote still starting up
                # answers late; the worker is not live yet).
                zygote.spawning += 1
            with self._children_lock:
                try:
                    pid = zygote.spawn(spec, [child_sock.fileno(), out_fd, err_fd, *group_fds])
                finally:
                    with self.lock:
                        zygote.spawning -= 1
                worker = Worker(pid, parent_sock, out_fd, err_fd, workdir, uid, group=group, zygote=zygote)
                with self.lock:
                    self.live[pid] = worker
        except BaseException:
            for fd in (out_fd, err_fd):
                os.close(fd)
            parent_sock.close()
            if group is not None:
                group.remove()
            if uid is not None:
                self._release_uid(uid)
            raise
        finally:
            child_sock.close()
            for fd in group_fds:
                os.close(fd)
        try:
            hello, _ = recv_frame(
                parent_sock, deadline=time.monotonic() + 30.0, max_header=MAX_REPLY_HEADER, max_payload=0
            )
            if hello.get("op") != "ready":
                raise WireError("unexpected first frame")
        except WireError as exc:
            from .runtime import describe_exit

            status = zygote.wait_exit(pid, 1.0)
            self.discard(worker, reaped=status is not None)
            raise RuntimeFailure(f"a new worker failed to start ({describe_exit(status)[1]})") from exc
        if spec["private_mounts"]:
            worker.scratch_dirs = tuple(f"/proc/{pid}/root{d}" for d in ("/tmp", "/dev/shm"))
        else:
            worker.scratch_dirs = (workdir,)
        open_check_files(worker)
        if group is None:
            worker.traits = worker_traits(zygote.traits, spec) if zygote.traits else process_traits(worker.pid)
        return worker

    def kill_processes(self, worker: Worker) -> None:
        """SIGKILL the worker and everything it started, now (frozen or not)."""
        if worker.group is not None:
            worker.group.kill_now()  # the group is emptied and removed in the background
        else:
            sandbox.kill_tree([worker.pid])
            if worker.frozen:
                try:
                    os.kill(worker.pid, signal.SIGCONT)
                except OSError:
                    pass

    def _close_files(self, worker: Worker) -> None:
        for fd in (*worker.scratch_fds, worker.stat_fd, worker.syscall_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        worker.scratch_fds, worker.stat_fd, worker.syscall_fd = (), -1, -1
        try:
            worker.sock.close()
        except OSError:
            pass
        for fd in (worker.out_fd, worker.err_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(worker.workdir, ignore_errors=True)
        with self.lock:
            self._workdir_names.discard(os.path.basename(worker.workdir))

    def _release_uid(self, uid: int, *, processes_gone: bool = False) -> None:
        """A uid goes back to the free list only when nothing of it is left on the machine."""
        residue = hygiene.uid_has_residue(uid, scan_processes=not processes_gone) if self.privileged else None
        if residue is not None:
            print(f"coding-env runtime: uid {uid} retired ({residue} left)", file=sys.stderr, flush=True)
            return
        with self.lock:
            self._free_uids.insert(0, uid)

    def discard(self, worker: Worker, *, wait: bool = False, reaped: bool = False, keep_zygote: bool = False) -> None:
        """Kill the worker and everything it started (at once: its memory is released now);
        free its uid and group once all of it is gone.

        It stays in ``live`` until the zygote has reaped it, so its zombie is never a "stray".
        """
        with self.lock:
            if worker.discarded:
                return
            worker.discarded = True
        self.kill_processes(worker)
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
                self._keep_or_drop_zygote(worker)
            emptied = worker.group.remove() if worker.group is not None else False
            with self.lock:
                self.live.pop(worker.pid, None)
            zygote.forget_exit(worker.pid)
            self._close_files(worker)
            if worker.uid is not None:
                self._release_uid(worker.uid, processes_gone=emptied)

        if wait:
            finish()
        else:
            threading.Thread(target=finish, name="worker-cleanup", daemon=True).start()

    def release_unused(self, worker: Worker) -> None:
        """Give back a fresh worker that ran nothing (e.g. the snapshot was refused): it is a
        spare again, its zygote (and hash seed) not yet any episode's."""
        with self.lock:
            # Not a zygote kept for its episode: its seed is that episode's, never a spare's.
            if not self.closed and not worker.zygote.seed_used and len(self.idle) < max(self.opts.idle_workers, 1):
                worker.zygote.tenant = worker.episode = None
                self.idle.append(worker)
                self._spare_changed.notify_all()
                return
        self.discard(worker)

    def _maintain(self) -> None:
        while True:
            self._refill.wait(timeout=5.0)
            self._refill.clear()
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
            # Spares whose zygote died (user code of the same uid in Lambda mode) are replaced.
            with self.lock:
                dead = [w for w in self.idle if not w.zygote.alive or w.zygote.process.poll() is not None]
                self.idle[:] = [w for w in self.idle if w not in dead]
            for worker in dead:
                self.discard(worker)
            # One spare at a time: a refill costs one interpreter start (0.1-1 s of CPU), so
            # at most one CPU goes to it however many episodes start at once.
            while True:
                with self.lock:
                    if self.closed or len(self.idle) >= self.opts.idle_workers:
                        break
                if not self._refill_one():
                    break
            if self.closed:
                return

    def _refill_one(self) -> bool:
        """Start one spare and add it to ``idle``; False if it failed. At a low priority only
        while another spare is ready (none ready: a step may need this one soon)."""
        with self.lock:
            background = bool(self.idle)
            zygote = self._refilling
        if zygote is None:
            zygote = self._new_zygote(background=background)
            with self.lock:
                self._refilling = zygote
        worker: Worker | None = None
        try:
            if not zygote.wait_ready(60.0):
                raise RuntimeFailure("the worker factory (zygote) did not start")
            worker = self._spawn_from(zygote)
        except RuntimeFailure:
            self._drop_zygote(zygote)
        with self.lock:
            self._refilling = None
            closed = self.closed
            if worker is not None and not closed:
                self.idle.append(worker)
            self._spare_changed.notify_all()
        if worker is not None and closed:
            self.discard(worker)
        return worker is not None and not closed

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
                self._spare_changed.wait_for(lambda: self.idle or self._refilling is not starting or self.closed,
                                             timeout=60.0)
                return self.idle.pop() if self.idle and not self.closed else None
        finally:
            with self.lock:
                self._spare_waited = False

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """Wait until a spare is ready (Lambda's init phase: the first step then finds one)."""
        if self.opts.idle_workers <= 0:
            return False
        with self.lock:
            return self._spare_changed.wait_for(lambda: bool(self.idle) or self.closed, timeout=timeout_s)

    def take_warm(self, key: WarmKey) -> Worker | None:
        with self.lock:
            return self.warm.pop(key, None)

    def take_idle(self, tenant: str, episode: tuple[str, str, str] | None = None) -> Worker:
        """A worker for a cold step of ``tenant``'s ``episode`` (tenant, episode id,
        incarnation): from the episode's kept zygote, or a spare's, whose zygote, never used
        before, is the episode's from now on (beyond ``interpreters_per_tenant`` of the tenant's,
        from its most recently used zygote instead); with neither, from a zygote of an earlier episode
        of the tenant (``_from_tenant``: its seed, no interpreter start on the step) while the
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
            worker = self._from_kept(episode)
            if worker is not None:
                worker.zygote.tenant, worker.episode = tenant, episode
            return worker

        if not kept_tried and not self.privileged:
            worker = from_kept()
            if worker is not None:
                return worker
        if self._tenant_interpreters(tenant) >= max(self.opts.interpreters_per_tenant, 1):
            if not kept_tried:
                worker = from_kept()
                if worker is not None:
                    return worker
            worker = self._from_tenant(tenant)
            if worker is not None:
                worker.episode = episode
                return worker
        while True:
            with self.lock:
                if self.closed:
                    raise RuntimeFailure("the runtime is shut down")
                idle = self.idle.pop() if self.idle else None
            self._refill.set()
            if idle is None and not kept_tried:
                worker = from_kept()
                if worker is not None:
                    return worker
            if idle is None:
                worker = self._from_tenant(tenant)
                if worker is not None:
                    worker.episode = episode
                    return worker
                idle = self._wait_for_refill()
            if idle is None:
                with self.lock:
                    self.spares_started_on_step += 1
                idle = self._new_spare(background=False)
                break
            zygote = idle.zygote
            if not zygote.alive or zygote.process.poll() is not None:
                self.discard(idle)
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
                    self.discard(idle)
                    continue
            break
        idle.zygote.tenant, idle.episode = tenant, episode
        return idle

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
            self._drop_kept(keep)
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
                found = hygiene.sweep_orphans(_ZYGOTE_PIDS.__contains__)
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
        if self.shared_dirs:
            # Lambda mode: user code's uid owns the work root and every worker's directory (a
            # worker wipes its own directory before each step, so a file planted in an idle
            # worker's directory never reaches the step that gets it).
            with self.lock:
                kept = {hygiene.OWNER_FILE, *self._workdir_names}
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
        self._refill.set()
        for worker in workers:
            self.discard(worker, wait=True)
        for zygote in zygotes:
            _stop_zygote(zygote)
        if self.cgroups is not None:
            self.cgroups.remove_bases()
        shutil.rmtree(self.work_root, ignore_errors=True)
        if self._uid_block_fd is not None:
            os.close(self._uid_block_fd)
            self._uid_block_fd = None
