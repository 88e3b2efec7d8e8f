"""Forking one worker from a zygote and freeing what it held: its private uid, memory group,
work directory, socket and output files.

Apart from the pool (``pool.py``: which worker serves which step, warm workers, hygiene) and
the interpreter supply (``zygotes.py``: which zygote a worker comes from) because this is the
part that hands out and takes back the machine's resources: a uid goes back to the free list
only once nothing of it is left, and a worker that never said it is ready leaves nothing.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

from . import cgroups, hygiene, sandbox
from .handles import Worker, open_check_files, process_traits, worker_traits
from .options import RuntimeOpts, worker_max_memory_mb
from .wire import WireError, recv_frame
from .zygote_client import RuntimeFailure, ZygoteClient

#: A worker's reply header is small (exit code, dropped names); anything bigger is hostile.
MAX_REPLY_HEADER = 1024 * 1024


class UidBlock:
    """Root mode: a block of private uids locked for this runtime's lifetime (released when it
    exits), one per worker. ``lock`` is the pool's (the free list changes under it)."""

    def __init__(self, opts: RuntimeOpts, lock: threading.Lock) -> None:
        self._lock = lock
        self._fd: int | None = None
        first = self._claim(opts)
        self.free: list[int] = list(range(first + opts.uid_block_size - 1, first - 1, -1))

    def _claim(self, opts: RuntimeOpts) -> int:
        lock_dir = "/run/coding-env-uid-blocks" if os.path.isdir("/run") else "/tmp/coding-env-uid-blocks"
        os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        for block in range(opts.uid_blocks):
            fd = os.open(os.path.join(lock_dir, f"{block}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._fd = fd
            return opts.uid_base + block * opts.uid_block_size
        raise RuntimeFailure("every private uid block is in use by another runtime")

    def take(self) -> int:
        """A free uid; lock held."""
        if not self.free:
            raise RuntimeFailure("no free worker uid")
        return self.free.pop()

    def release(self, uid: int, *, processes_gone: bool = False) -> None:
        """A uid goes back to the free list only when nothing of it is left on the machine."""
        residue = hygiene.uid_has_residue(uid, scan_processes=not processes_gone)
        if residue is not None:
            print(f"coding-env runtime: uid {uid} retired ({residue} left)", file=sys.stderr, flush=True)
            return
        with self._lock:
            self.free.insert(0, uid)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def kill_processes(worker: Worker) -> None:
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


class WorkerFactory:
    """Forks workers from zygotes (``spawn_from``) and closes their files (``close_files``).

    Shares the pool's state, passed in explicitly: ``lock`` is the pool's one lock (``live``,
    ``zygote.spawning``, the uid free list and ``workdir_names`` change under it),
    ``children_lock`` the pool's lock held while a zygote's set of children changes (so the
    stray-process check never mistakes a worker being born for an escaped process), ``live``
    the pool's live workers, ``discard`` the pool's (a worker that failed to start)."""

    def __init__(
        self,
        opts: RuntimeOpts,
        *,
        privileged: bool,
        work_root: str,
        cgroup_manager: cgroups.CgroupManager | None,
        uids: UidBlock | None,
        lock: threading.Lock,
        children_lock: threading.Lock,
        live: dict[int, Worker],
        discard: Callable[..., None],
    ) -> None:
        self.opts = opts
        self.privileged = privileged
        self.work_root = work_root
        self.cgroups = cgroup_manager
        self.uids = uids
        self.lock = lock
        self._children_lock = children_lock
        self._live = live
        self._discard = discard
        self._seq = itertools.count(1)
        # Names of the workers' directories in the work root (registered before the worker
        # exists, so the scrub never takes one being created): anything else there is user
        # code's (Lambda mode: the work root belongs to user code's uid too).
        self.workdir_names: set[str] = set()

    def spawn_from(self, zygote: ZygoteClient) -> Worker:
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
                    assert self.uids is not None
                    uid = self.uids.take()
            if self.cgroups is not None:
                group = self.cgroups.new_group(f"w{seq}")
        except BaseException:
            for fd in (out_fd, err_fd):
                os.close(fd)
            parent_sock.close()
            child_sock.close()
            if uid is not None:
                self.release_uid(uid)
            raise
        workdir = os.path.join(self.work_root, f"w{seq}")
        with self.lock:
            self.workdir_names.add(f"w{seq}")
        # Each tmpfs fits within the largest memory limit a step may ask for (its pages count
        # toward the worker's memory group too).
        tmp_bytes = min(self.opts.tmp_bytes, worker_max_memory_mb() * 2**20)
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
            "unprivileged_namespaces": not self.privileged and self.opts.unprivileged_namespaces,
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
                    self._live[pid] = worker
        except BaseException:
            for fd in (out_fd, err_fd):
                os.close(fd)
            parent_sock.close()
            if group is not None:
                group.remove()
            if uid is not None:
                self.release_uid(uid)
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
            self._discard(worker, reaped=status is not None)
            raise RuntimeFailure(f"a new worker failed to start ({describe_exit(status)[1]})") from exc
        if spec["private_mounts"]:
            worker.scratch_dirs = tuple(f"/proc/{pid}/root{d}" for d in ("/tmp", "/dev/shm"))
        else:
            worker.scratch_dirs = (workdir,)
        open_check_files(worker)
        if group is None:
            worker.traits = worker_traits(zygote.traits, spec) if zygote.traits else process_traits(worker.pid)
        return worker

    def release_uid(self, uid: int, *, processes_gone: bool = False) -> None:
        if self.uids is not None:  # (a uid is only ever handed out in root mode)
            self.uids.release(uid, processes_gone=processes_gone)

    def close_files(self, worker: Worker) -> None:
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
            self.workdir_names.discard(os.path.basename(worker.workdir))
