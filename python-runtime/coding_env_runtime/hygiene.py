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
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        if not lines:
            continue
        columns = lines[0].split()
        try:
            uid_col, cuid_col = columns.index("uid"), columns.index("cuid")
        except ValueError:
            continue
        for line in lines[1:]:
            fields = line.split()
            if len(fields) > max(uid_col, cuid_col) and uid in (int(fields[uid_col]), int(fields[cuid_col])):
                return f"SysV {kind} object"
    return None
