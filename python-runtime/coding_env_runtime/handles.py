"""The runtime's handle on one worker process: its files, its control group, freezing it
between steps, and the checks made from outside after each of its steps."""

from __future__ import annotations

import os
import platform
import resource
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from . import cgroups, sandbox

#: (tenant_id, episode_id, incarnation, state_version)
WarmKey = tuple[str, str, str, int]


@dataclass
class Worker:
    pid: int
    sock: socket.socket
    out_fd: int
    err_fd: int
    workdir: str
    uid: int | None
    group: cgroups.WorkerGroup | None = None
    key: WarmKey | None = None
    snapshot: str | None = None
    policy: dict[str, Any] | None = None
    memory_mb: int | None = None
    #: Memory it holds while warm (its cgroup's usage; RSS without cgroups).
    memory_bytes: int = 0
    last_used: float = field(default_factory=time.monotonic)
    steps: int = 0
    frozen: bool = False
    #: Directories that must be empty after every step (seen from the runtime).
    scratch_dirs: tuple[str, ...] = ()
    #: Kept open for the checks after every step (root mode): its scratch directories,
    #: /proc/<pid>/stat (thread count) and /proc/<pid>/syscall (where its main thread waits).
    scratch_fds: tuple[int, ...] = ()
    stat_fd: int = -1
    syscall_fd: int = -1
    discarded: bool = False
    #: The zygote that forked it: a worker whose zygote died is dying too (parent-death signal).
    zygote: Any = None
    #: The episode (tenant, episode id, incarnation) it serves: its zygote is kept for it.
    episode: tuple[str, str, str] | None = None
    #: Without a group (Lambda mode): the limits, priority and CPUs it must have (``worker_traits``),
    #: which another process of the same uid can lower; checked before it gets a step.
    traits: tuple[Any, ...] = ()


class Freezer:
    """Stops every process of a worker between its steps and resumes them for the next one.

    With a cgroup (root mode) that is the freezer: nothing in the group, whatever it forked,
    runs. Without one it is SIGSTOP/SIGCONT of the worker, which a process of the same uid can
    undo: root mode without cgroups has a private uid per worker whose other processes are
    killed after every step, so nobody is left to do so; Lambda mode (one uid) additionally runs
    one episode at a time (see ``Runtime``).
    """

    @staticmethod
    def freeze(worker: Worker, *, wait: bool = True) -> bool:
        """True once every process of the worker is stopped. Without ``wait``, True once they
        are all bound to stop: none executes another user-mode instruction (a task already
        asleep is frozen at once, a running one on its way back to user mode), though a system
        call in progress completes."""
        worker.frozen = True
        if worker.group is not None:
            try:
                worker.group.freeze()
            except OSError:
                return False
            return worker.group.wait_frozen() if wait else True
        try:
            os.kill(worker.pid, signal.SIGSTOP)
        except OSError:
            return False
        return _wait_stopped(worker.pid) if wait else True

    @staticmethod
    def thaw(worker: Worker) -> None:
        worker.frozen = False
        if worker.group is not None:
            worker.group.thaw()
        else:
            os.kill(worker.pid, signal.SIGCONT)


def _all_threads_stopped(pid: int) -> bool:
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state not in (b"T", b"t"):
            return False
    return True


def _wait_stopped(pid: int, timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    polls = 0
    while not _all_threads_stopped(pid):
        if time.monotonic() > deadline:
            return False
        polls += 1
        # Yield first (stopping takes one context switch), then back off.
        if polls < 50:
            os.sched_yield()
        else:
            time.sleep(min(0.00002 * 2 ** (polls - 50), 0.002))
    return True


def open_check_files(worker: Worker) -> None:
    """Open what the checks after every step read, once (a pread each then)."""
    flags = os.O_RDONLY | os.O_CLOEXEC
    try:
        worker.stat_fd = os.open(f"/proc/{worker.pid}/stat", flags)
        worker.syscall_fd = os.open(f"/proc/{worker.pid}/task/{worker.pid}/syscall", flags)
        if worker.scratch_dirs and worker.scratch_dirs[0].startswith("/proc/"):
            worker.scratch_fds = tuple(os.open(d, flags | os.O_DIRECTORY) for d in worker.scratch_dirs)
    except OSError:
        pass  # the checks fall back to paths


def thread_count(worker: Worker) -> int:
    if worker.stat_fd >= 0:
        try:
            return int(os.pread(worker.stat_fd, 1024, 0).rsplit(b")", 1)[1].split()[17])
        except (OSError, ValueError, IndexError):
            return 0
    return sandbox.thread_count(worker.pid)


#: Every limit ``prlimit`` can lower from another process of the same uid.
_LIMITS = tuple(getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_"))


def process_traits(pid: int) -> tuple[Any, ...]:
    """What a process of the same uid may change in another one without ptrace: resource
    limits (``prlimit`` needs only the same uid), scheduling priority, CPU affinity and
    scheduling policy (``sched_setscheduler`` to ``SCHED_IDLE`` or ``SCHED_BATCH``, which a
    zygote's workers inherit)."""
    try:
        return (
            tuple(resource.prlimit(pid, which) for which in _LIMITS),
            os.getpriority(os.PRIO_PROCESS, pid),
            tuple(sorted(os.sched_getaffinity(pid))),
            os.sched_getscheduler(pid),
        )
    except OSError:
        return ("gone",)


def worker_traits(zygote_traits: tuple[Any, ...], spec: dict[str, Any]) -> tuple[Any, ...]:
    """The traits a fresh worker of a zygote with ``zygote_traits`` has: the zygote's, with the
    limits the worker sets itself at start (``worker.main_after_fork``: each only lowered, to
    at most the hard limit). Derived, not read from the worker: a step running while it starts
    could have changed it before any reading."""
    if len(zygote_traits) != 4:
        return ("unknown",)
    limits = dict(zip(_LIMITS, zygote_traits[0], strict=True))
    for which, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, int(spec["max_file_bytes"])),
        (resource.RLIMIT_NOFILE, int(spec["max_open_files"])),
        (resource.RLIMIT_CPU, int(spec["max_cpu_seconds"])),
        (resource.RLIMIT_NPROC, int(spec["max_processes"])),
    ):
        hard = limits[which][1]
        if hard != resource.RLIM_INFINITY and value > hard:
            value = hard
        limits[which] = (value, value)
    return (tuple(limits[which] for which in _LIMITS), *zygote_traits[1:])


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


#: recv/recvfrom/read system call numbers: where the worker's main thread waits for its next step.
_RECV_SYSCALLS = {"x86_64": {0, 45}, "aarch64": {63, 207}}.get(platform.machine(), set())


def unexpected_bytes(worker: Worker) -> bool:
    """Anything readable on a frozen worker's channel after its one reply (more bytes, or the
    channel closed) is something the protocol does not allow."""
    # poll, not select: with many warm workers the runtime's descriptors pass select's 1024.
    poller = select.poll()
    poller.register(worker.sock, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def freeze_after_reply(worker: Worker, settle_s: float = 0.2) -> bool:
    """Freeze the worker after its reply; False if the reply must not be trusted: something
    follows it on the channel, or it may not be the worker's own.

    The genuine reply is sent by the main thread, which then waits on the channel for the next
    step. Usually it is already there when this runs (then it freezes at once) and must still be
    there once frozen (no signal handler ran user code meanwhile). If it is still on its way and
    it is the only thread, the reply can only be its own: it is frozen where it is, without
    waiting for the scheduler (a reply that the main thread sent from user code, or that a
    thread sent before it exited, only garbles its own episode's next step). With several
    threads one may have forged the reply: then the runtime waits (yielding the CPU, up to
    ``settle_s``, still within the step) until the main thread is back on the channel, and a
    reply that never brings it there is treated as a crash.
    """
    give_up = time.monotonic() + settle_s
    polls = 0
    while True:
        where = parked(worker)
        if where is None:
            # Where the main thread is cannot be seen (Lambda mode: the worker is not
            # dumpable). Stop it where it is, without waiting for the scheduler: it executes
            # no further user-mode instruction. Bytes that a system call in progress still
            # writes are found before its next step (``Runtime``), which then starts cold.
            return Freezer.freeze(worker, wait=False) and not unexpected_bytes(worker)
        if where:
            if not Freezer.freeze(worker) or unexpected_bytes(worker):
                return False
            if parked(worker) is not False:  # still there: no signal handler ran meanwhile
                return True
            Freezer.thaw(worker)
        elif polls == 0 and thread_count(worker) == 1:
            return Freezer.freeze(worker, wait=False) and not unexpected_bytes(worker)
        if time.monotonic() > give_up:
            return False
        polls += 1
        if polls < 100:
            os.sched_yield()
        else:
            time.sleep(0.0002)


def parked(worker: Worker) -> bool | None:
    """Whether the worker's main thread is in a read of its channel (fd 3); None when this
    runtime cannot see it (Lambda mode: the worker is not dumpable, /proc/<pid>/syscall is
    closed to us)."""
    if not _RECV_SYSCALLS or worker.syscall_fd < 0:
        return None
    try:
        fields = os.pread(worker.syscall_fd, 256, 0).split()
    except OSError:
        return None
    try:
        return int(fields[0]) in _RECV_SYSCALLS and int(fields[1], 16) == 3
    except (ValueError, IndexError):
        return False  # "running": not in a system call at all
