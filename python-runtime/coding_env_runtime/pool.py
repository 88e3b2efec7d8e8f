"""The worker pool: the zygote, pre-forked idle workers, warm workers, their uids and groups.

A warm worker is keyed by ``(tenant_id, episode_id, incarnation, state_version)`` and reused
only with the identical snapshot string it produced. Between its steps every process of a warm
worker is frozen: a cgroup freezer per worker in root mode, else SIGSTOP (see ``Freezer``).
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

from . import cgroups, hygiene, sandbox
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
        # One zygote per tenant: each interpreter has its own string-hash seed, so no seed is
        # shared by two tenants. The first is started now (Lambda's init phase) and given to the
        # first tenant that steps; later tenants start theirs on their first step.
        self._zygotes: OrderedDict[str, ZygoteClient] = OrderedDict()
        # Root mode: each zygote leaves the host's mount table behind once (its workers inherit
        # that), instead of every worker detaching the host's mounts itself (~10 ms each).
        self._zygote_private_mounts = self.privileged and opts.private_mounts
        if not self.privileged:
            # Lambda mode: user code can kill its zygote (same uid); what its workers started
            # then comes to us instead of escaping to init, and is swept after the step.
            sandbox.best_effort(sandbox.become_subreaper, "PR_SET_CHILD_SUBREAPER")
        self._unclaimed: ZygoteClient | None = self._new_zygote()
        self._refill = threading.Event()
        self._maintainer = threading.Thread(target=self._maintain, name="worker-pool", daemon=True)
        self._maintainer.start()
        self._refill.set()

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

    # --- zygotes, one per tenant ----------------------------------------------------------------

    def zygotes(self) -> list[ZygoteClient]:
        with self.lock:
            return [*self._zygotes.values(), *([self._unclaimed] if self._unclaimed else [])]

    @property
    def zygote(self) -> ZygoteClient:
        """The default tenant's zygote (tests and benchmarks look at it)."""
        from .contract import DEFAULT_TENANT_ID

        return self.zygote_ready(DEFAULT_TENANT_ID)

    def zygote_ready(self, tenant: str) -> ZygoteClient:
        """The tenant's live zygote, started (or claimed) on its first use, restarted if it died."""
        evicted: list[ZygoteClient] = []
        with self.lock:
            if self.closed:
                raise RuntimeFailure("the runtime is shut down")
            zygote = self._zygotes.get(tenant)
            if zygote is not None and (not zygote.alive or zygote.process.poll() is not None):
                # It died (killed by user code in Lambda mode, or crashed): start anew.
                evicted.append(zygote)
                zygote = None
            if zygote is None:
                unclaimed, self._unclaimed = self._unclaimed, None
                if unclaimed is not None and unclaimed.alive and unclaimed.process.poll() is None:
                    zygote = unclaimed
                else:
                    if unclaimed is not None:
                        evicted.append(unclaimed)
                    zygote = self._new_zygote()
                self._zygotes[tenant] = zygote
                # Beyond the cap, retire the least recently used zygotes with no step running on
                # one of their workers (a tenant mid-step keeps its zygote: the cap may be
                # exceeded for that while).
                resting = {w.pid for w in self.idle} | {w.pid for w in self.warm.values()}
                stepping = {w.zygote for pid, w in self.live.items() if pid not in resting}
                for name, candidate in list(self._zygotes.items()):
                    if len(self._zygotes) <= max(self.opts.max_zygotes, 1):
                        break
                    if name != tenant and candidate not in stepping and not candidate.spawning:
                        evicted.append(self._zygotes.pop(name))
            self._zygotes.move_to_end(tenant)
        for old in evicted:
            self._retire_zygote(old)
        return zygote

    def _new_zygote(self) -> ZygoteClient:
        zygote = ZygoteClient(self.opts.python, self.opts.preload, private_mounts=self._zygote_private_mounts)
        _ZYGOTE_PIDS.add(zygote.pid)
        if not self.privileged:
            zygote.traits = process_traits(zygote.pid)
        return zygote

    def _retire_zygote(self, zygote: ZygoteClient) -> None:
        """Stop a zygote and every worker it forked (they die with it anyway)."""
        with self.lock:
            stale = [w for w in (*self.idle, *self.warm.values()) if w.zygote is zygote]
            self.idle[:] = [w for w in self.idle if w.zygote is not zygote]
            for key in [k for k, w in self.warm.items() if w.zygote is zygote]:
                del self.warm[key]
            dying = [w for w in self.live.values() if w.zygote is zygote]
        for worker in dying:
            # One in the middle of a step is cleaned up by that step (it reads its output).
            self.kill_processes(worker)
        with self.lock:
            for worker in stale:
                self.live.pop(worker.pid, None)
                worker.discarded = True
        threading.Thread(target=_stop_zygote, args=(zygote,), daemon=True).start()
        threading.Thread(target=self._forget, args=(stale,), daemon=True).start()

    def _forget(self, workers: list[Worker]) -> None:
        for worker in workers:
            self._close_files(worker)
            if worker.group is not None:
                worker.group.remove()
            if worker.uid is not None:
                try:  # anything the worker started outlived it: end it before reusing the uid
                    self._kill_uid(worker.uid)
                except RuntimeFailure:
                    continue  # keep the uid out of circulation
                self._release_uid(worker.uid)

    def _kill_uid(self, uid: int) -> None:
        """Kill every process of a private uid (through any live zygote: it forks a helper)."""
        for zygote in self.zygotes():
            if zygote.alive:
                with self._children_lock:
                    zygote.kill_uid(uid)
                return
        raise RuntimeFailure("no zygote to kill the uid's processes")

    # --- workers -------------------------------------------------------------------------------

    def spawn(self, tenant: str | None = None) -> Worker:
        """A new worker of the tenant's zygote (the default tenant's when none is given)."""
        return self._spawn_from(self.zygote_ready(tenant) if tenant is not None else self.zygote)

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

    def discard(self, worker: Worker, *, wait: bool = False, reaped: bool = False) -> None:
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
                    self._kill_uid(worker.uid)
                except RuntimeFailure:
                    pass
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
        """Give back a fresh worker that ran nothing (e.g. the snapshot was refused)."""
        with self.lock:
            if not self.closed and len(self.idle) < self.opts.idle_workers:
                self.idle.append(worker)
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
            # Every zygote (one per tenant, and the unclaimed one) keeps its own idle workers.
            for zygote in self.zygotes():
                with self.lock:
                    missing = self.opts.idle_workers - sum(1 for w in self.idle if w.zygote is zygote)
                for _ in range(max(missing, 0)):
                    if not zygote.alive or zygote.process.poll() is not None:
                        break
                    try:
                        worker = self._spawn_from(zygote)
                    except RuntimeFailure:
                        break
                    with self.lock:
                        closed = self.closed
                        # A zygote retired while this worker was being born means it is dying.
                        kept = not closed and zygote in (*self._zygotes.values(), self._unclaimed)
                        if kept:
                            self.idle.append(worker)
                    if not kept:
                        self.discard(worker)
                    if closed:
                        return

    def take_warm(self, key: WarmKey) -> Worker | None:
        with self.lock:
            return self.warm.pop(key, None)

    def take_idle(self, tenant: str) -> Worker:
        zygote = self.zygote_ready(tenant)
        if not self.privileged and process_traits(zygote.pid) != zygote.traits:
            # Lambda mode: an earlier step (same uid) lowered the zygote's limits, which every
            # worker it forks from now on would inherit: replace it (and its workers).
            zygote.process.kill()
            zygote.process.wait()
            zygote = self.zygote_ready(tenant)
        with self.lock:
            idle = next((w for w in reversed(self.idle) if w.zygote is zygote), None)
            if idle is not None:
                self.idle.remove(idle)
        self._refill.set()
        if idle is not None and idle.group is None:
            # Without a freezer group (Lambda mode) an earlier step of the same uid may have
            # stopped the idle worker (SIGSTOP: the step it gets next would time out), or
            # lowered its limits or priority (prlimit, setpriority): continue it, and replace
            # it if it was changed.
            try:
                os.kill(idle.pid, signal.SIGCONT)
            except OSError:
                pass  # gone: the step finds out and answers for it
            if process_traits(idle.pid) != idle.traits:
                self.discard(idle)
                idle = None
        return idle if idle is not None else self._spawn_from(zygote)


    def drop_warm(self, keep: Any) -> int:
        """Discard every warm worker whose key does not satisfy ``keep``; how many."""
        with self.lock:
            dropped = [self.warm.pop(k) for k in [k for k in self.warm if not keep(k)]]
        for worker in dropped:
            self.discard(worker)
        return len(dropped)

    def keep_warm(self, worker: Worker) -> None:
        """Put a frozen worker among the warm ones; evict the least recently used beyond the
        count and memory caps."""
        worker.memory_bytes = worker.group.memory_bytes() if worker.group is not None else rss_bytes(worker.pid)
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
        found = not self.privileged and hygiene.sweep_orphans(_ZYGOTE_PIDS.__contains__)
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
