"""Per-worker control groups (root mode): a freezer and a memory limit over every process of a
worker, whatever it forks, setsids or leaves behind.

cgroup v1 (a ``freezer`` and a ``memory`` hierarchy, as on this project's CI machine) and v2
(``cgroup.freeze``, ``memory.max``) are both handled. Groups are only ever created below the
runtime's own current group (``/proc/self/cgroup``), in one directory per runtime
(``coding-env-<pid>-<n>``), and removed when the worker is gone.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass

_PREFIX = "coding-env-"
_bases = itertools.count(1)


@dataclass(frozen=True)
class _Hierarchy:
    """Where one controller lives for this process: the directory of our own group in it."""

    own_dir: str
    v2: bool


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount point, root inside the hierarchy, fstype, options) of every cgroup mount."""
    found = []
    try:
        with open("/proc/self/mountinfo") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = set(tail[2].split(",")) | set(fields[5].split(",") if len(fields) > 5 else ())
        found.append((fields[4], fields[3], tail[0], options))
    return found


def _own_paths() -> tuple[dict[str, str], str | None]:
    """Our group per v1 controller, and our v2 group (``0::/path``)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    try:
        with open("/proc/self/cgroup") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return v1, v2
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        for controller in parts[1].split(","):
            if controller:
                v1[controller] = parts[2]
    return v1, v2


def _join(mount_point: str, mount_root: str, path: str) -> str | None:
    if mount_root != "/" and not (path == mount_root or path.startswith(mount_root + "/")):
        return None  # our group is outside what this mount shows
    relative = path[len(mount_root) :] if mount_root != "/" else path
    return os.path.normpath(os.path.join(mount_point, relative.lstrip("/")))


def _writable_dir(path: str | None) -> bool:
    return path is not None and os.path.isdir(path) and os.access(path, os.W_OK)


def find_hierarchy(controller: str) -> _Hierarchy | None:
    """Our own group for ``controller`` ("freezer" or "memory"), v1 first, else v2."""
    v1_paths, v2_path = _own_paths()
    mounts = _mounts()
    if controller in v1_paths:
        for point, root, fstype, options in mounts:
            if fstype == "cgroup" and controller in options:
                own = _join(point, root, v1_paths[controller])
                if _writable_dir(own):
                    return _Hierarchy(own, False)
    if v2_path is not None:
        for point, root, fstype, _options in mounts:
            if fstype != "cgroup2":
                continue
            own = _join(point, root, v2_path)
            if not _writable_dir(own):
                continue
            if controller == "freezer":
                return _Hierarchy(own, True)  # cgroup.freeze is core v2, no controller needed
            try:
                with open(os.path.join(own, "cgroup.controllers")) as fh:
                    if controller in fh.read().split():
                        return _Hierarchy(own, True)
            except OSError:
                continue
    return None


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _kv(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class CgroupManager:
    """Creates the per-runtime base groups; ``available`` when both a freezer and a memory
    controller can be used (root, a writable hierarchy)."""

    def __init__(self) -> None:
        self.freezer: _Hierarchy | None = None
        self.memory: _Hierarchy | None = None
        self._bases: list[str] = []
        self.problem: str | None = None
        try:
            self._setup()
        except OSError as exc:
            self.problem = f"control groups unavailable: {exc}"
            self.remove_bases()
            self.freezer = self.memory = None

    @property
    def available(self) -> bool:
        return self.freezer is not None and self.memory is not None

    def _setup(self) -> None:
        freezer = find_hierarchy("freezer")
        memory = find_hierarchy("memory")
        if freezer is None or memory is None:
            self.problem = "no writable freezer and memory control groups (not root, or no cgroupfs)"
            return
        # Unique per runtime (two runtimes may live in one process, e.g. in tests).
        name = f"{_PREFIX}{os.getpid()}-{next(_bases)}"
        for hierarchy in {freezer.own_dir: freezer, memory.own_dir: memory}.values():
            base = os.path.join(hierarchy.own_dir, name)
            if hierarchy.v2 and hierarchy is memory:
                # v2 needs the controller enabled for children at every level we create.
                _enable_v2_memory(hierarchy.own_dir)
            os.makedirs(base, exist_ok=True)
            self._bases.append(base)
            if hierarchy.v2 and hierarchy is memory:
                _enable_v2_memory(base)
        self.freezer = _Hierarchy(os.path.join(freezer.own_dir, name), freezer.v2)
        self.memory = _Hierarchy(os.path.join(memory.own_dir, name), memory.v2)
        _remove_stale_bases({freezer.own_dir, memory.own_dir})

    def new_group(self, name: str) -> WorkerGroup:
        assert self.freezer is not None and self.memory is not None
        return WorkerGroup(self.freezer, self.memory, name)

    def remove_bases(self) -> None:
        for base in self._bases:
            _remove_tree(base)
        self._bases = []


def _enable_v2_memory(directory: str) -> None:
    with open(os.path.join(directory, "cgroup.subtree_control")) as fh:
        if "memory" in fh.read().split():
            return
    _write(os.path.join(directory, "cgroup.subtree_control"), "+memory")


def _remove_stale_bases(own_dirs: set[str]) -> None:
    """Base groups of runtimes that died without cleaning up (SIGKILL)."""
    for own in own_dirs:
        try:
            names = os.listdir(own)
        except OSError:
            continue
        for name in names:
            pid = name[len(_PREFIX) :].split("-")[0]
            if name.startswith(_PREFIX) and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                _remove_tree(os.path.join(own, name))


def _remove_tree(directory: str) -> None:
    """rmdir a group and its children (kill what is left in them first)."""
    try:
        children = [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for child in children:
        _remove_tree(child)
    for _ in range(50):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError:
            for pid in _procs(directory):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            _thaw_dir(directory)
            time.sleep(0.01)


def _procs(directory: str) -> list[int]:
    try:
        return [int(x) for x in _read(os.path.join(directory, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return []


def _thaw_dir(directory: str) -> None:
    for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            try:
                _write(path, value)
            except OSError:
                pass


class WorkerGroup:
    """One worker's freezer group and memory group (the same directory on a v2 system)."""

    def __init__(self, freezer: _Hierarchy, memory: _Hierarchy, name: str) -> None:
        self.freezer_dir = os.path.join(freezer.own_dir, name)
        self.memory_dir = os.path.join(memory.own_dir, name)
        self._freezer_v2 = freezer.v2
        self._memory_v2 = memory.v2
        os.makedirs(self.freezer_dir, exist_ok=True)
        if self.memory_dir != self.freezer_dir:
            os.makedirs(self.memory_dir, exist_ok=True)
        state = "cgroup.freeze" if freezer.v2 else "freezer.state"
        # Kept open: freeze and thaw are one pwrite each on the step's path.
        self._state_fd = os.open(os.path.join(self.freezer_dir, state), os.O_RDWR | os.O_CLOEXEC)
        self._events_fd = (
            os.open(os.path.join(self.freezer_dir, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
            if freezer.v2
            else -1
        )
        self._usage_fd = os.open(
            os.path.join(self.memory_dir, "memory.current" if memory.v2 else "memory.usage_in_bytes"),
            os.O_RDONLY | os.O_CLOEXEC,
        )
        self._procs_fd = os.open(os.path.join(self.freezer_dir, "cgroup.procs"), os.O_RDONLY | os.O_CLOEXEC)
        self._memsw = not memory.v2 and os.path.exists(os.path.join(self.memory_dir, "memory.memsw.limit_in_bytes"))
        self.limit_bytes: int | None = None
        self.removed = False

    def join_fds(self) -> tuple[list[int], int]:
        """Open files a new worker writes "0" to, to join its groups (its ``cgroup.procs``; the
        zygote and worker need not see /sys/fs/cgroup), and its freezer state file (for the
        zygote to thaw it if the runtime dies). The caller closes them."""
        fds = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in self.procs_files]
        state = "cgroup.freeze" if self._freezer_v2 else "freezer.state"
        return fds, os.open(os.path.join(self.freezer_dir, state), os.O_WRONLY | os.O_CLOEXEC)

    @property
    def freezer_v2(self) -> bool:
        return self._freezer_v2

    @property
    def procs_files(self) -> list[str]:
        """Files a new worker writes its pid to (as root, before it drops privileges)."""
        files = [os.path.join(self.freezer_dir, "cgroup.procs")]
        if self.memory_dir != self.freezer_dir:
            files.append(os.path.join(self.memory_dir, "cgroup.procs"))
        return files

    # --- freezing ------------------------------------------------------------------------------

    def freeze(self) -> None:
        os.pwrite(self._state_fd, b"1" if self._freezer_v2 else b"FROZEN", 0)

    def thaw(self) -> None:
        os.pwrite(self._state_fd, b"0" if self._freezer_v2 else b"THAWED", 0)

    def is_frozen(self) -> bool:
        if self._freezer_v2:
            return b"frozen 1" in os.pread(self._events_fd, 4096, 0)
        return os.pread(self._state_fd, 64, 0).startswith(b"FROZEN")

    def wait_frozen(self, timeout_s: float = 2.0) -> bool:
        """True once every process of the group is stopped in the freezer."""
        if self.is_frozen():
            return True
        deadline = time.monotonic() + timeout_s
        delay = 0.00002
        while time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 0.002)
            if self.is_frozen():
                return True
        return False

    # --- memory ----------------------------------------------------------------------------------

    def set_memory_limit(self, limit_bytes: int) -> None:
        if limit_bytes == self.limit_bytes:
            return
        if self._memory_v2:
            _write(os.path.join(self.memory_dir, "memory.max"), str(limit_bytes))
            try:  # no swap beyond the limit either
                _write(os.path.join(self.memory_dir, "memory.swap.max"), "0")
            except OSError:
                pass
        else:
            memory = os.path.join(self.memory_dir, "memory.limit_in_bytes")
            memsw = os.path.join(self.memory_dir, "memory.memsw.limit_in_bytes")
            # memsw (memory + swap) may never be below the memory limit: order the writes
            # (a new group starts unlimited, so its first limit lowers both).
            raising = self.limit_bytes is not None and limit_bytes > self.limit_bytes
            order = [memsw, memory] if raising else [memory, memsw]
            for path in order:
                if path == memsw and not self._memsw:
                    continue
                _write(path, str(limit_bytes))
        self.limit_bytes = limit_bytes

    def memory_bytes(self) -> int:
        try:
            return int(os.pread(self._usage_fd, 64, 0))
        except (OSError, ValueError):
            return 0

    def oom_kills(self) -> int:
        """How many processes the kernel killed for this group's memory limit so far."""
        name = "memory.events" if self._memory_v2 else "memory.oom_control"
        try:
            return _kv(_read(os.path.join(self.memory_dir, name)), "oom_kill")
        except OSError:
            return 0

    # --- the end -------------------------------------------------------------------------------

    def only_process(self) -> int | None:
        """The group's single process, or None when it has none or several (one pread)."""
        try:
            pids = os.pread(self._procs_fd, 256, 0).split()
        except OSError:
            return None
        return int(pids[0]) if len(pids) == 1 else None

    def pids(self) -> list[int]:
        found = set(_procs(self.freezer_dir))
        if self.memory_dir != self.freezer_dir:
            found.update(_procs(self.memory_dir))
        return sorted(found)

    def kill_now(self) -> None:
        """SIGKILL every process of the group in one pass: frozen first (nothing forks once it
        is), killed, thawed (a frozen process only dies once thawed; with SIGKILL pending it
        runs no further instruction). Does not wait for them to exit (``kill_all`` does)."""
        try:
            self.freeze()
            self.wait_frozen(1.0)
        except OSError:
            pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.thaw()
        except OSError:
            pass

    def kill_all(self, timeout_s: float = 5.0) -> bool:
        """SIGKILL every process of the group (frozen first, so nothing forks meanwhile);
        True once the group is empty."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.freeze()
            except OSError:
                pass
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.thaw()  # a frozen process only dies once thawed
            except OSError:
                pass
            if not pids:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)

    def remove(self) -> bool:
        """Kill what is left and delete the group (and its fds); True if no process was left
        behind (then none of the worker's uid is left anywhere: no process leaves its group)."""
        if self.removed:
            return True
        self.removed = True
        emptied = self.kill_all()
        for fd in (self._state_fd, self._events_fd, self._usage_fd, self._procs_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for directory in dict.fromkeys((self.freezer_dir, self.memory_dir)):
            _remove_tree(directory)
        return emptied
