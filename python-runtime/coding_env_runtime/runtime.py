"""The runtime parent: owns the zygote, the pool of pre-forked idle workers and the warm workers.

A step takes the warm worker that already holds exactly the episode's input state (same
``(episode_id, state_version)`` *and* the identical snapshot string it produced), else a
pre-forked idle worker that restores the snapshot. The parent enforces the deadline with
SIGKILL, reads the capped output files itself, and never unpickles anything.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import CONTRACT_VERSION, RUNTIME_VERSION, sandbox, snapshot
from .contract import StepRequest
from .wire import FrameTooLarge, PeerClosed, WireError, WireTimeout, recv_frame, send_frame

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)

#: The zygote's whole environment: nothing of the parent's (no AWS credentials) gets through.
CLEAN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/tmp",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

_ZYGOTE_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[2]); "
    "from coding_env_runtime.zygote import main; main(int(sys.argv[1]), sys.argv[3])"
)


#: A worker's reply header is small (exit code, dropped names); anything bigger is hostile.
_MAX_REPLY_HEADER = 1024 * 1024


_WORK_ROOT_PREFIX = "coding-env-runtime-"
_OWNER_FILE = ".owner-pid"


def _remove_stale_work_roots() -> None:
    """Delete work roots (ours by uid) of runtimes that died without closing (SIGKILL)."""
    uid = os.geteuid()
    try:
        names = [n for n in os.listdir("/tmp") if n.startswith(_WORK_ROOT_PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join("/tmp", name)
        try:
            if os.lstat(path).st_uid != uid or os.path.islink(path):
                continue
            suffix = name[len(_WORK_ROOT_PREFIX) :]
            if suffix.isdigit():  # older layout: the owner's pid in the name
                owner = int(suffix)
            else:
                with open(os.path.join(path, _OWNER_FILE)) as fh:
                    owner = int(fh.read().strip())
        except (OSError, ValueError):
            continue  # being created right now, or not ours to judge
        if not os.path.exists(f"/proc/{owner}"):
            shutil.rmtree(path, ignore_errors=True)


class RuntimeFailure(RuntimeError):
    """The runtime itself is broken (not the user's code): reported as a Lambda function error."""


def _check_interpreter_reachable(python: str) -> None:
    """Root mode runs user code as unprivileged uids, which must be able to read the
    interpreter's standard library (an interpreter under /root, say pyenv's, is not)."""
    path = os.path.dirname(os.path.realpath(python))
    while True:
        if not os.stat(path).st_mode & 0o001:
            raise RuntimeFailure(
                f"the interpreter {python} is under {path}, which the sandbox's unprivileged users "
                "cannot enter; use a system-wide Python (e.g. /usr/bin/python3 with "
                "python3-cloudpickle) via CODING_ENV_PYTHON, or run the runtime as a non-root user"
            )
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


@dataclass
class RuntimeOpts:
    """Options of the runtime; defaults suit one Lambda execution environment or a laptop."""

    #: Interpreter for the zygote (needs cloudpickle). @default the current interpreter
    python: str = sys.executable
    #: Pre-forked idle workers kept ready. @default 2
    idle_workers: int = 2
    #: Warm workers kept after a step (LRU beyond). @default 16
    max_warm_workers: int = 16
    #: A warm worker unused this long is discarded. @default 600
    warm_ttl_s: float = 600.0
    #: RLIMIT_FSIZE of user code. @default 64 MiB
    max_file_bytes: int = 64 * 1024 * 1024
    #: RLIMIT_NPROC: processes per worker uid (root mode) or per runtime uid. @default 64 / 256
    max_processes: int | None = None
    max_open_files: int = 256
    #: RLIMIT_CPU backstop over a worker's life; the deadline is the real per-step limit.
    max_cpu_seconds: int = 3600
    #: Largest snapshot a worker may return. @default 256 MiB
    max_snapshot_bytes: int = 256 * 1024 * 1024
    #: Where workers' private directories live. @default a new /tmp/coding-env-runtime-XXXX
    work_root: str | None = None
    #: Run user code as unprivileged uids (only possible when the runtime is root). @default True
    drop_privileges: bool = True
    #: Root mode: private mount namespace per worker (tmpfs on /tmp, /var/tmp, /dev/shm,
    #: /run/lock; /proc with hidepid). @default True
    private_mounts: bool = True
    #: Size of each private tmpfs. @default 256 MiB
    tmp_bytes: int = 256 * 1024 * 1024
    #: Extra modules the zygote imports so workers get them for free (e.g. ``("numpy",)``);
    #: they count toward every worker's address space (``memory_mb``). The reference's
    #: allow-list and common stdlib modules are always preloaded. @default ()
    preload: tuple[str, ...] = ()
    #: Private uids (root mode) come from blocks of ``uid_block_size`` starting at ``uid_base``;
    #: each runtime on the machine claims a free block with a lock file, so two runtimes (say,
    #: two local servers) never hand out the same uid. @default 200000, 1000 per block
    uid_base: int = 200_000
    uid_block_size: int = 1_000
    uid_blocks: int = 1_000


@dataclass
class _Worker:
    pid: int
    sock: socket.socket
    out_fd: int
    err_fd: int
    workdir: str
    uid: int | None
    key: tuple[str, int] | None = None
    snapshot: str | None = None
    policy: dict[str, Any] | None = None
    memory_mb: int | None = None
    last_used: float = field(default_factory=time.monotonic)
    steps: int = 0
    #: Directories that must be empty after every step (seen from the runtime).
    scratch_dirs: tuple[str, ...] = ()
    discarded: bool = False
    #: The zygote that forked it: a worker whose zygote died is dying too (parent-death signal).
    zygote: Any = None


class _Zygote:
    def __init__(self, opts: RuntimeOpts) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = parent_end
        self.process = subprocess.Popen(
            [opts.python, "-I", "-c", _ZYGOTE_BOOT, str(child_end.fileno()), PACKAGE_ROOT, ",".join(opts.preload)],
            env=CLEAN_ENV,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(child_end.fileno(),),
            cwd="/",
            start_new_session=True,
        )
        child_end.close()
        self.pid = self.process.pid
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self.alive = True
        self._reader = threading.Thread(target=self._read_loop, name="zygote-reader", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        import json

        while True:
            try:
                data = self._control.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self.alive = False
                    self._cond.notify_all()
                return
            message = json.loads(data)
            with self._cond:
                if message.get("op") == "exit":
                    self._exits[int(message["pid"])] = int(message["status"])
                else:
                    self._replies[int(message["id"])] = message
                self._cond.notify_all()

    def _request(self, message: dict[str, Any], fds: list[int], timeout_s: float = 10.0) -> dict[str, Any]:
        import json

        request_id = next(self._ids)
        message["id"] = request_id
        with self._send_lock:
            if not self.alive:
                raise RuntimeFailure("the worker factory (zygote) is not running")
            try:
                socket.send_fds(self._control, [json.dumps(message).encode()], fds)
            except OSError as exc:
                raise RuntimeFailure(f"the worker factory (zygote) is unreachable: {exc}") from exc
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while request_id not in self._replies:
                remaining = deadline - time.monotonic()
                if not self.alive or remaining <= 0:
                    raise RuntimeFailure("the worker factory (zygote) did not answer")
                self._cond.wait(remaining)
            return self._replies.pop(request_id)

    def spawn(self, spec: dict[str, Any], fds: list[int]) -> int:
        return int(self._request({"op": "spawn", "spec": spec}, fds)["pid"])

    def kill_uid(self, uid: int) -> None:
        self._request({"op": "kill_uid", "uid": uid}, [])

    def wait_exit(self, pid: int, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while pid not in self._exits:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.alive:
                    return None
                self._cond.wait(remaining)
            return self._exits[pid]  # kept until forget_exit: several waiters may ask

    def forget_exit(self, pid: int) -> None:
        with self._cond:
            self._exits.pop(pid, None)

    def stop(self) -> None:
        try:
            # shutdown() first: close() alone does not wake the reader thread blocked in recv,
            # and the zygote would not see EOF until then.
            self._control.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._control.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _describe_exit(status: int | None) -> tuple[int, str]:
    """(exit_code, sentence) for a worker that died during a step."""
    if status is None:
        return 1, "The Python process died during this step"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        what = {
            "SIGSEGV": " (segmentation fault)",
            "SIGKILL": " (killed: the memory limit or another process)",
            "SIGABRT": " (aborted)",
            "SIGBUS": " (bus error)",
        }.get(name, "")
        return 1, f"The Python process was killed by {name}{what} during this step"
    code = os.WEXITSTATUS(status)
    return code, f"The Python process exited with status {code} (os._exit or a fatal error) during this step"


class Runtime:
    """Runs steps; thread-safe (the local server calls it from many threads)."""

    def __init__(self, opts: RuntimeOpts | None = None) -> None:
        self.opts = opts or RuntimeOpts()
        self.privileged = os.geteuid() == 0 and self.opts.drop_privileges
        if self.opts.max_processes is None:
            self.opts.max_processes = 64 if self.privileged else 256
        if self.privileged:
            _check_interpreter_reachable(self.opts.python)
        if self.opts.work_root:
            self.work_root = self.opts.work_root
            os.makedirs(self.work_root, mode=0o711, exist_ok=True)
        else:  # unique and ours, whatever a crashed runtime left behind
            _remove_stale_work_roots()
            self.work_root = tempfile.mkdtemp(prefix=_WORK_ROOT_PREFIX, dir="/tmp")
            with open(os.path.join(self.work_root, _OWNER_FILE), "w") as fh:
                fh.write(str(os.getpid()))
        os.chmod(self.work_root, 0o711)
        sandbox.best_effort(sandbox.make_undumpable, "PR_SET_DUMPABLE")
        self._lock = threading.Lock()
        # Held while the zygote's set of children changes (spawn + registration, uid kills) so
        # the stray-process check never mistakes a worker being born for an escaped process.
        self._children_lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._warm: OrderedDict[tuple[str, int], _Worker] = OrderedDict()
        self._live: dict[int, _Worker] = {}
        self._uid_block_fd: int | None = None
        self._free_uids: list[int] = []
        if self.privileged:
            first = self._claim_uid_block()
            self._free_uids = list(range(first + self.opts.uid_block_size - 1, first - 1, -1))
        self._seq = itertools.count(1)
        self._closed = False
        self._empty_snapshot: str | None = None
        # Lambda mode: user code shares /tmp (and friends) with the runtime. Whatever of our uid
        # appears there besides the workers' own directories is removed after every step, so no
        # file outlives its step or reaches the next episode of this execution environment.
        self._shared_dirs: dict[str, set[str]] = {}
        if not (self.privileged and self.opts.private_mounts):
            for directory in sandbox.PRIVATE_TMP_DIRS:
                try:
                    self._shared_dirs[directory] = set(os.listdir(directory))
                except OSError:
                    continue
            self._shared_dirs.setdefault(os.path.dirname(self.work_root), set()).add(
                os.path.basename(self.work_root)
            )
        self._zygote = _Zygote(self.opts)
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

    # --- worker lifecycle --------------------------------------------------------------------

    def _zygote_ready(self) -> _Zygote:
        with self._lock:
            if self._closed:
                raise RuntimeFailure("the runtime is shut down")
            if not self._zygote.alive or self._zygote.process.poll() is not None:
                # The zygote died (killed by user code in non-root mode, or crashed): start anew.
                old = self._zygote
                self._zygote = _Zygote(self.opts)
                # Its workers died with it (parent-death signal); forget them.
                # Idle and warm ones are cleaned up here; one in the middle of a step is cleaned
                # up by that step (it still reads its output files).
                stale = [*self._idle, *self._warm.values()]
                sandbox.kill_all([worker.pid for worker in self._live.values()])
                self._live.clear()
                self._idle.clear()
                self._warm.clear()
                threading.Thread(target=old.stop, daemon=True).start()
                threading.Thread(target=self._forget, args=(stale,), daemon=True).start()
            return self._zygote

    def _forget(self, workers: list[_Worker]) -> None:
        for worker in workers:
            for closable in (worker.sock.close, lambda w=worker: os.close(w.out_fd), lambda w=worker: os.close(w.err_fd)):
                try:
                    closable()
                except OSError:
                    pass
            shutil.rmtree(worker.workdir, ignore_errors=True)
            if worker.uid is not None:
                try:  # anything the worker started outlived it: end it before reusing the uid
                    with self._children_lock:
                        self._zygote.kill_uid(worker.uid)
                except RuntimeFailure:
                    continue  # keep the uid out of circulation
                with self._lock:
                    self._free_uids.insert(0, worker.uid)

    def _spawn(self) -> _Worker:
        zygote = self._zygote_ready()
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_fd = os.memfd_create("stdout", os.MFD_CLOEXEC)
        err_fd = os.memfd_create("stderr", os.MFD_CLOEXEC)
        for fd in (out_fd, err_fd):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        uid: int | None = None
        with self._lock:
            if self.privileged:
                if not self._free_uids:
                    raise RuntimeFailure("no free worker uid")
                uid = self._free_uids.pop()
        seq = next(self._seq)
        workdir = os.path.join(self.work_root, f"w{seq}")
        spec = {
            "workdir": workdir,
            "uid": uid,
            "gid": uid,
            "max_file_bytes": self.opts.max_file_bytes,
            "max_processes": self.opts.max_processes,
            "max_open_files": self.opts.max_open_files,
            "max_cpu_seconds": self.opts.max_cpu_seconds,
            "private_mounts": self.privileged and self.opts.private_mounts,
            "tmp_bytes": self.opts.tmp_bytes,
        }
        try:
            with self._children_lock:
                pid = zygote.spawn(spec, [child_sock.fileno(), out_fd, err_fd])
                worker = _Worker(pid, parent_sock, out_fd, err_fd, workdir, uid, zygote=zygote)
                with self._lock:
                    self._live[pid] = worker
        except BaseException:
            for fd in (out_fd, err_fd):
                os.close(fd)
            parent_sock.close()
            if uid is not None:
                with self._lock:
                    self._free_uids.append(uid)
            raise
        finally:
            child_sock.close()
        try:
            hello, _ = recv_frame(
                parent_sock, deadline=time.monotonic() + 30.0, max_header=_MAX_REPLY_HEADER, max_payload=0
            )
            if hello.get("op") != "ready":
                raise WireError("unexpected first frame")
        except WireError as exc:
            status = zygote.wait_exit(pid, 1.0)
            self._discard(worker, reaped=status is not None)
            raise RuntimeFailure(f"a new worker failed to start ({_describe_exit(status)[1]})") from exc
        if spec["private_mounts"]:
            worker.scratch_dirs = tuple(f"/proc/{pid}/root{d}" for d in ("/tmp", "/dev/shm"))
        else:
            worker.scratch_dirs = (workdir,)
        return worker

    def _discard(self, worker: _Worker, *, wait: bool = False, reaped: bool = False) -> None:
        """Kill the worker and everything it started; free its uid once all of it is gone.

        It stays in ``_live`` until the zygote has reaped it, so its zombie is never a "stray".
        """
        with self._lock:
            if worker.discarded:
                return
            worker.discarded = True
        sandbox.kill_tree([worker.pid])
        self._sweep_strays()
        zygote = self._zygote

        def finish() -> None:
            if not reaped:
                zygote.wait_exit(worker.pid, 5.0)
            if worker.uid is not None:
                try:
                    with self._children_lock:
                        zygote.kill_uid(worker.uid)
                except RuntimeFailure:
                    pass
            with self._lock:
                self._live.pop(worker.pid, None)
            zygote.forget_exit(worker.pid)
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
            if worker.uid is not None:
                with self._lock:
                    self._free_uids.insert(0, worker.uid)

        if wait:
            finish()
        else:
            threading.Thread(target=finish, name="worker-cleanup", daemon=True).start()

    def _maintain(self) -> None:
        while True:
            self._refill.wait(timeout=5.0)
            self._refill.clear()
            if self._closed:
                return
            now = time.monotonic()
            expired: list[_Worker] = []
            with self._lock:
                for key, worker in list(self._warm.items()):
                    if now - worker.last_used > self.opts.warm_ttl_s:
                        expired.append(self._warm.pop(key))
                missing = self.opts.idle_workers - len(self._idle)
            for worker in expired:
                self._discard(worker)
            for _ in range(max(missing, 0)):
                try:
                    worker = self._spawn()
                except RuntimeFailure:
                    break
                with self._lock:
                    closed = self._closed
                    # A zygote replaced while this worker was being born means it is dying.
                    kept = not closed and worker.zygote is self._zygote
                    if kept:
                        self._idle.append(worker)
                if not kept:
                    self._discard(worker)
                if closed:
                    return

    def _acquire(self, request: StepRequest) -> tuple[_Worker, bool]:
        policy = request.policy.to_json()
        if not self._zygote.alive or self._zygote.process.poll() is not None:
            self._zygote_ready()  # its workers are dying with it: start over before picking one
        with self._lock:
            warm = self._warm.pop((request.episode_id, request.state_version), None)
        if warm is not None:
            if (
                warm.zygote is self._zygote
                and warm.snapshot == request.snapshot
                and warm.policy == policy
                and warm.memory_mb == request.memory_mb
            ):
                return warm, True
            self._discard(warm)
        with self._lock:
            idle = self._idle.pop() if self._idle else None
        self._refill.set()
        if idle is not None and idle.zygote is not self._zygote:
            self._discard(idle)  # forked by a zygote that has since died: it is dying too
            idle = None
        return (idle if idle is not None else self._spawn()), False

    def _sweep_strays(self) -> bool:
        """Kill processes reparented to the zygote (the subreaper) that are not workers.

        Returns True if there were any: something user code started escaped its worker's tree.
        """
        found_any = False
        for _ in range(50):  # again until none: a process may have been mid-fork during a kill
            with self._children_lock:
                strays = [
                    pid
                    for pid in sandbox.children_of(self._zygote.pid)
                    if pid not in self._live and not sandbox.is_zombie(pid)
                ]
            if not strays:
                break
            found_any = True
            sandbox.kill_tree(strays)
        return found_any

    def _scrub_shared_dirs(self) -> None:
        """Remove entries of our uid that user code left in shared temporary directories."""
        uid = os.geteuid()
        for directory, baseline in self._shared_dirs.items():
            try:
                names = os.listdir(directory)
            except OSError:
                continue
            for name in names:
                if name in baseline:
                    continue
                path = os.path.join(directory, name)
                if name.startswith(_WORK_ROOT_PREFIX) and self._is_other_runtime_root(path):
                    continue  # a second local server's work root, not user code's file
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if info.st_uid != uid:
                    continue  # another user's file (another program on a shared machine)
                sandbox.remove_path(path)

    def _is_other_runtime_root(self, path: str) -> bool:
        """True for the work root of another live runtime (user code cannot fake one by
        naming our own processes: those are excluded)."""
        try:
            with open(os.path.join(path, _OWNER_FILE)) as fh:
                owner = int(fh.read().strip())
            if owner in (os.getpid(), self._zygote.pid) or owner in self._live:
                return False
            with open(f"/proc/{owner}/cmdline", "rb") as fh:
                return b"coding_env_runtime" in fh.read()
        except (OSError, ValueError):
            return False

    def _release_unused(self, worker: _Worker) -> None:
        """Give back a fresh worker that ran nothing (e.g. the snapshot was refused)."""
        with self._lock:
            if not self._closed and len(self._idle) < self.opts.idle_workers:
                self._idle.append(worker)
                return
        self._discard(worker)

    def _healthy_after_step(self, worker: _Worker) -> bool:
        """Trust nothing the worker says: check from outside that it is alone and clean."""
        # First, so escaped daemons die even when another check already condemns the worker;
        # the worker that just ran is the suspect, since it ran code since the last sweep.
        escaped = self._sweep_strays()
        self._scrub_shared_dirs()
        if escaped or sandbox.thread_count(worker.pid) != 1 or sandbox.children_of(worker.pid):
            return False
        try:
            if any(os.listdir(d) for d in worker.scratch_dirs):
                return False
        except OSError:
            return False
        return True

    # --- the step ----------------------------------------------------------------------------

    def empty_snapshot(self) -> str:
        if self._empty_snapshot is None:
            from . import cell
            from .policy import ImportPolicy

            self._empty_snapshot = snapshot.encode(
                cell.save_namespace(cell.new_namespace(ImportPolicy())).payload
            )
        return self._empty_snapshot

    def run_step(self, request: StepRequest) -> dict[str, Any]:
        """Run one step; user-code failures are data in the result, runtime failures raise."""
        try:
            return self._run_step(request)
        except RuntimeFailure:
            raise
        except Exception as exc:  # a bug or an OS failure here: report it as a runtime failure
            raise RuntimeFailure(f"the runtime failed during the step: {type(exc).__name__}: {exc}") from exc

    def _run_step(self, request: StepRequest) -> dict[str, Any]:
        started = time.perf_counter()
        deadline = time.monotonic() + request.timeout_ms / 1000.0
        result: dict[str, Any] = {
            "contract_version": CONTRACT_VERSION,
            "runtime_version": RUNTIME_VERSION,
            "stdout": "",
            "stderr": "",
            "exit_code": 0,
            "snapshot": request.snapshot,
            "state_version": request.state_version + 1,
            "snapshot_bytes": 0,
            "dropped": [],
            "duration_ms": 0.0,
            "timed_out": False,
            "out_of_memory": False,
            "crashed": False,
            "stdout_truncated": False,
            "stderr_truncated": False,
            "warm": False,
            "error_code": None,
        }
        header = {
            "op": "step",
            "code": request.code,
            "cell_name": f"<cell {request.state_version + 1}>",
            "policy": request.policy.to_json(),
            "memory_mb": request.memory_mb,
            "max_output_bytes": request.max_output_bytes,
        }
        worker, warm = self._acquire(request)
        payload = b""
        if request.snapshot is not None and not warm:
            # Only the envelope is read here; the pickle is loaded inside the sandboxed worker.
            try:
                payload = snapshot.decode(request.snapshot).payload
            except snapshot.SnapshotIncompatibleError as exc:
                self._release_unused(worker)
                result.update(
                    exit_code=1,
                    stderr=f"SnapshotIncompatibleError: {exc}\n",
                    error_code=exc.error_code,
                )
                return self._finish(result, started)
        for attempt in range(2):
            os.ftruncate(worker.out_fd, 0)
            os.ftruncate(worker.err_fd, 0)
            try:
                worker.sock.settimeout(max(deadline - time.monotonic(), 0.001))
                send_frame(worker.sock, header, b"" if warm else payload)
                break
            except OSError:
                # The worker died while idle or warm (before running anything): use a fresh one.
                self._discard(worker)
                if attempt == 1:
                    raise RuntimeFailure("could not hand the step to a worker") from None
                worker, warm = self._spawn(), False
                if request.snapshot is not None and not payload:
                    try:
                        payload = snapshot.decode(request.snapshot).payload
                    except snapshot.SnapshotIncompatibleError as exc:
                        raise RuntimeFailure(str(exc)) from None
        result["warm"] = warm
        worker.steps += 1
        try:
            return self._await_reply(worker, request, header, result, started, deadline)
        except BaseException:
            self._discard(worker)  # never leave a worker in an unknown state behind
            raise

    def _await_reply(
        self,
        worker: _Worker,
        request: StepRequest,
        header: dict[str, Any],
        result: dict[str, Any],
        started: float,
        deadline: float,
    ) -> dict[str, Any]:
        try:
            reply, new_payload = recv_frame(
                worker.sock,
                deadline=deadline,
                max_header=_MAX_REPLY_HEADER,
                max_payload=self.opts.max_snapshot_bytes,
            )
        except WireTimeout:
            sandbox.kill_tree([worker.pid])
            # Read the output before _discard: it closes the output files (in the background).
            self._collect_output(worker, request, result)
            self._discard(worker)
            result.update(
                exit_code=1,
                timed_out=True,
                error_code="timeout",
            )
            self._append_stderr(
                result,
                f"TimeoutError: the step exceeded its time limit of {request.timeout_ms / 1000:g} s "
                "and was stopped; the episode's state is as it was before this step.\n",
            )
            return self._finish(result, started)
        except FrameTooLarge as exc:
            sandbox.kill_tree([worker.pid])
            self._collect_output(worker, request, result)
            self._discard(worker)
            result.update(exit_code=1, error_code="state_too_large")
            self._append_stderr(
                result,
                f"MemoryError: the episode's state would be {_size(exc.payload_len)} after this "
                f"step, above the {_size(self.opts.max_snapshot_bytes)} limit; the episode's "
                "state is as it was before this step. Delete large variables (del name) and retry.\n",
            )
            return self._finish(result, started)
        except WireError as exc:
            # Usually the worker died (EOF); otherwise it sent garbage on the runtime's socket
            # (user code can write to it) and is stopped here.
            protocol_broken = not isinstance(exc, PeerClosed)
            sandbox.kill_tree([worker.pid])
            status = self._zygote.wait_exit(worker.pid, 2.0)
            self._collect_output(worker, request, result)
            self._discard(worker, reaped=status is not None)
            if self._zygote.process.poll() is not None:
                self._zygote_ready()  # user code killed the zygote (same uid in Lambda mode)
            exit_code, sentence = _describe_exit(status)
            if protocol_broken:
                exit_code, sentence = 1, "The step wrote to the runtime's private channel (fd 3) and was stopped"
            result.update(exit_code=exit_code, crashed=True, error_code="crashed")
            self._append_stderr(
                result, f"{sentence}; the episode's state is as it was before this step.\n"
            )
            return self._finish(result, started)

        self._collect_output(worker, request, result)
        exit_code = reply.get("exit_code")
        result["exit_code"] = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else 1
        error_code = reply.get("error_code")
        result["error_code"] = error_code if isinstance(error_code, str) else None
        if reply.get("out_of_memory") or error_code == "snapshot_restore_failed":
            self._discard(worker)
            if reply.get("out_of_memory"):
                result.update(out_of_memory=True, exit_code=1, error_code="out_of_memory")
                self._append_stderr(
                    result,
                    f"MemoryError: the step exceeded its memory limit of {request.memory_mb} MB; "
                    "the episode's state is as it was before this step.\n",
                )
            return self._finish(result, started)

        result["snapshot"] = snapshot.encode(new_payload)
        result["dropped"] = _clean_dropped(reply.get("dropped"))
        # The worker's own report that its fds 1/2 are no longer our output files (user code
        # closed or replaced them) only concerns this episode, so trusting it is safe.
        reusable = reply.get("reusable", True) is True
        if reusable and self._healthy_after_step(worker) and not self._closed:
            worker.key = (request.episode_id, request.state_version + 1)
            worker.snapshot = result["snapshot"]
            worker.policy = header["policy"]
            worker.memory_mb = request.memory_mb
            worker.last_used = time.monotonic()
            evicted: list[_Worker] = []
            with self._lock:
                previous = self._warm.pop(worker.key, None)
                if previous is not None:
                    evicted.append(previous)
                self._warm[worker.key] = worker
                while len(self._warm) > self.opts.max_warm_workers:
                    evicted.append(self._warm.popitem(last=False)[1])
            for old in evicted:
                self._discard(old)
        else:
            self._discard(worker)
        return self._finish(result, started)

    def _finish(self, result: dict[str, Any], started: float) -> dict[str, Any]:
        if result["snapshot"] is None:
            result["snapshot"] = self.empty_snapshot()
        result["snapshot_bytes"] = len(result["snapshot"])
        result["duration_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
        return result

    @staticmethod
    def _append_stderr(result: dict[str, Any], text: str) -> None:
        current = result["stderr"]
        result["stderr"] = (current + ("" if not current or current.endswith("\n") else "\n") + text)

    @staticmethod
    def _read_capped(fd: int, cap: int) -> tuple[str, bool]:
        size = os.fstat(fd).st_size
        data = os.pread(fd, min(size, cap), 0) if size else b""
        return data.decode("utf-8", "replace"), size > cap

    def _collect_output(self, worker: _Worker, request: StepRequest, result: dict[str, Any]) -> None:
        cap = request.max_output_bytes
        result["stdout"], result["stdout_truncated"] = self._read_capped(worker.out_fd, cap)
        result["stderr"], result["stderr_truncated"] = self._read_capped(worker.err_fd, cap)

    # --- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._live.values())
            self._idle.clear()
            self._warm.clear()
        self._refill.set()
        for worker in workers:
            self._discard(worker, wait=True)
        self._zygote.stop()
        shutil.rmtree(self.work_root, ignore_errors=True)
        if self._uid_block_fd is not None:
            os.close(self._uid_block_fd)
            self._uid_block_fd = None


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _clean_dropped(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    cleaned = []
    for item in value[:1000]:
        if isinstance(item, dict):
            cleaned.append({"name": str(item.get("name", ""))[:200], "type": str(item.get("type", ""))[:200]})
    return cleaned
