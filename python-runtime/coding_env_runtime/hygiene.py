"""Cleaning up after user code from outside the worker: stray processes, shared temporary
directories (Lambda mode), work roots of runtimes that died, and a uid's last traces."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable

from . import sandbox

WORK_ROOT_PREFIX = "coding-env-runtime-"
OWNER_FILE = ".owner-pid"


def remove_stale_work_roots() -> None:
    """Delete work roots (ours by uid) of runtimes that died without closing (SIGKILL)."""
    uid = os.geteuid()
    try:
        names = [n for n in os.listdir("/tmp") if n.startswith(WORK_ROOT_PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join("/tmp", name)
        try:
            if os.lstat(path).st_uid != uid or os.path.islink(path):
                continue
            suffix = name[len(WORK_ROOT_PREFIX) :]
            if suffix.isdigit():  # older layout: the owner's pid in the name
                owner = int(suffix)
            else:
                with open(os.path.join(path, OWNER_FILE)) as fh:
                    owner = int(fh.read().strip())
        except (OSError, ValueError):
            continue  # being created right now, or not ours to judge
        if not os.path.exists(f"/proc/{owner}"):
            shutil.rmtree(path, ignore_errors=True)


def sweep_strays(zygote_pid: int, is_worker: Callable[[int], bool]) -> bool:
    """Kill processes reparented to the zygote (the subreaper) that are not workers.

    Returns True if there were any: something user code started escaped its worker's tree.
    """
    found_any = False
    for _ in range(50):  # again until none: a process may have been mid-fork during a kill
        strays = [pid for pid in sandbox.children_of(zygote_pid) if not is_worker(pid) and not sandbox.is_zombie(pid)]
        if not strays:
            break
        found_any = True
        sandbox.kill_tree(strays)
    return found_any


def _session_and_uid(pid: int) -> tuple[int, int] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return int(fields[3]), os.stat(f"/proc/{pid}").st_uid
    except (OSError, ValueError, IndexError):
        return None


def sweep_orphans(is_zygote: Callable[[int], bool]) -> bool:
    """Lambda mode, in the runtime (a child subreaper there): kill and reap processes of our
    uid reparented to us, which is what a worker's descendants become when user code kills its
    zygote (same uid). They are told apart from the runtime's own children by their session:
    a worker starts its own session before any user code runs, so nothing user code starts is
    in the runtime's session. Returns True if there were any."""
    own_pid, own_uid, own_session = os.getpid(), os.geteuid(), os.getsid(0)
    found_any = False
    for _ in range(50):  # again until none: the killed ones' children come to us in turn
        orphans = []
        for pid in sandbox.children_of(own_pid):
            if is_zygote(pid):
                continue
            seen = _session_and_uid(pid)
            if seen is not None and seen[1] == own_uid and seen[0] != own_session:
                orphans.append(pid)
        if not orphans:
            break
        found_any = True
        sandbox.kill_tree(orphans)
        for pid in orphans:
            try:
                os.waitpid(pid, 0)
            except (ChildProcessError, InterruptedError):
                pass
    return found_any


def is_other_runtime_root(path: str, own_pids: Iterable[int]) -> bool:
    """True for the work root of another live runtime (user code cannot fake one by naming our
    own processes: those are excluded)."""
    try:
        with open(os.path.join(path, OWNER_FILE)) as fh:
            owner = int(fh.read().strip())
        if owner in set(own_pids):
            return False
        with open(f"/proc/{owner}/cmdline", "rb") as fh:
            return b"coding_env_runtime" in fh.read()
    except (OSError, ValueError):
        return False


def scrub_shared_dirs(baselines: dict[str, set[str]], own_pids: Callable[[], Iterable[int]]) -> None:
    """Remove entries of our uid that user code left in shared temporary directories."""
    uid = os.geteuid()
    for directory, baseline in baselines.items():
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name in baseline:
                continue
            path = os.path.join(directory, name)
            if name.startswith(WORK_ROOT_PREFIX) and is_other_runtime_root(path, own_pids()):
                continue  # a second local server's work root, not user code's file
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if info.st_uid != uid:
                continue  # another user's file (another program on a shared machine)
            sandbox.remove_path(path)


def scrub_work_root(work_root: str, kept: set[str]) -> None:
    """Lambda mode: remove what user code put in the runtime's work root (the parent of its
    working directory, owned by its uid) besides the workers' directories: the next episode's
    worker has its directory there too. The owner file is rewritten if user code changed it
    (another runtime's start-up deletes the work roots of owners that are gone)."""
    try:
        names = os.listdir(work_root)
    except OSError:
        return
    for name in names:
        if name not in kept:
            sandbox.remove_path(os.path.join(work_root, name))
    if OWNER_FILE not in names:
        return  # a work root given by the caller has none
    owner = os.path.join(work_root, OWNER_FILE)
    try:
        if os.path.islink(owner) or not os.path.isfile(owner):
            sandbox.remove_path(owner)
        with open(owner) as fh:
            if fh.read().strip() == str(os.getpid()):
                return
    except OSError:
        pass
    try:
        with open(owner, "w") as fh:
            fh.write(str(os.getpid()))
    except OSError:
        pass


def uid_has_residue(uid: int, *, scan_processes: bool = True) -> str | None:
    """What is left of ``uid`` on the machine (a process, a SysV IPC object of the host's IPC
    namespace), or None: a private uid is handed out again only when nothing is.
    ``scan_processes=False`` when the uid's control group was seen empty (a cheaper proof)."""
    for name in os.listdir("/proc") if scan_processes else ():
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid and not sandbox.is_zombie(int(name)):
                            return f"process {name}"
                        break
        except (OSError, ValueError, IndexError):
            continue
    for kind, _ident, owner, _ctime in _sysv_objects():
        if owner == uid:
            return f"SysV {kind} object"
    return None


_IPC_RMID = 0
_IPC_ID_COLUMNS = {"shm": "shmid", "msg": "msqid", "sem": "semid"}


def _sysv_objects() -> list[tuple[str, int, int, int]]:
    """(kind, id, owner or creator uid, change time) of every SysV IPC object of our namespace."""
    found = []
    for kind, id_column in _IPC_ID_COLUMNS.items():
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        if not lines:
            continue
        columns = lines[0].split()
        try:
            at = [columns.index(c) for c in (id_column, "uid", "cuid", "ctime")]
        except ValueError:
            continue
        for line in lines[1:]:
            fields = line.split()
            try:
                ident, uid, cuid, ctime = (int(fields[i]) for i in at)
            except (ValueError, IndexError):
                continue
            found.extend((kind, ident, owner, ctime) for owner in {uid, cuid})
    return found


_SHM_INFO, _MSG_INFO, _SEM_INFO = 14, 12, 19
_libc = None


def sysv_signature() -> tuple[int, ...]:
    """How many SysV objects of each kind exist and the highest index in use: three cheap
    system calls, so the full listing (/proc/sysvipc) is read only when something changed."""
    import ctypes

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    info = ctypes.create_string_buffer(256)  # shm_info / msginfo / seminfo: ints first
    ints = ctypes.cast(info, ctypes.POINTER(ctypes.c_int))
    shm_top = _libc.shmctl(0, _SHM_INFO, info)
    shm_used = ints[0]  # shm_info.used_ids
    msg_top = _libc.msgctl(0, _MSG_INFO, info)
    msg_used = ints[0]  # msginfo.msgpool: queues in use
    sem_top = _libc.semctl(0, 0, _SEM_INFO, info)
    sem_used = ints[7]  # seminfo.semusz: sets in use
    return (shm_top, shm_used, msg_top, msg_used, sem_top, sem_used)


def sysv_baseline() -> set[tuple[str, int]]:
    return {(kind, ident) for kind, ident, _uid, _ctime in _sysv_objects()}


def remove_sysv_objects(uid: int, baseline: set[tuple[str, int]], since: float) -> None:
    """Lambda mode (one uid, the host's IPC namespace): remove SysV shared memory, message
    queues and semaphores of our uid that user code created (not there when the runtime
    started, changed since), so none outlives its step or reaches another episode."""
    import ctypes

    stale = [
        (kind, ident)
        for kind, ident, owner, ctime in _sysv_objects()
        if owner == uid and (kind, ident) not in baseline and ctime >= int(since)
    ]
    if not stale:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for kind, ident in dict.fromkeys(stale):
        if kind == "shm":
            libc.shmctl(ident, _IPC_RMID, None)
        elif kind == "msg":
            libc.msgctl(ident, _IPC_RMID, None)
        else:
            libc.semctl(ident, 0, _IPC_RMID)
