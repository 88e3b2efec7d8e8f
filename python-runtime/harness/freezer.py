"""Freezing a process tree as Lambda freezes an execution environment between invocations
(and capping its memory, as the microVM's size does).

cgroup v1 (the ``freezer`` controller: ``freezer.state``) or v2 (``cgroup.freeze``). Groups
are created only below this process's own current group (``/proc/self/cgroup``), never
elsewhere in the hierarchy.
"""

from __future__ import annotations

import os
import signal
import time

_ROOT_PREFIX = "coding-env-lambda-"


class FreezerUnavailable(RuntimeError):
    """Neither a v1 freezer hierarchy nor a writable v2 hierarchy is available."""


def _unescape(field: str) -> str:
    """mountinfo escapes spaces and friends as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point, filesystem type, super options) of every cgroup mount."""
    mounts = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                mounts.append((_unescape(fields[4]), tail[0], tail[2]))
    return mounts


def _own_groups() -> dict[str, str]:
    """Controller list (``"freezer"``, ``""`` for v2) -> this process's group path."""
    groups = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            groups[controllers] = path
    return groups


class Group:
    """One cgroup used as a freezer; ``version`` is 1 or 2."""

    def __init__(self, path: str, version: int) -> None:
        self.path = path
        self.version = version

    def create(self) -> Group:
        os.makedirs(self.path, exist_ok=True)
        return self

    def child(self, name: str) -> Group:
        return Group(os.path.join(self.path, name), self.version).create()

    def add(self, pid: int) -> None:
        with open(os.path.join(self.path, "cgroup.procs"), "w") as fh:
            fh.write(str(pid))

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as fh:
                return [int(x) for x in fh.read().split()]
        except OSError:
            return []

    def _write(self, name: str, value: str) -> None:
        with open(os.path.join(self.path, name), "w") as fh:
            fh.write(value)

    def _read(self, name: str) -> str:
        with open(os.path.join(self.path, name)) as fh:
            return fh.read()

    def state(self) -> str:
        """``"FROZEN"``, ``"FREEZING"`` or ``"THAWED"`` (v2 is mapped onto v1's words)."""
        if self.version == 1:
            return self._read("freezer.state").strip()
        frozen = "frozen 1" in self._read("cgroup.events").splitlines()
        wanted = self._read("cgroup.freeze").strip() == "1"
        return "FROZEN" if frozen else ("FREEZING" if wanted else "THAWED")

    def freeze(self, timeout_s: float = 10.0) -> None:
        """Stop every task of the group and wait until the kernel says all are stopped."""
        self._write("freezer.state" if self.version == 1 else "cgroup.freeze", "FROZEN" if self.version == 1 else "1")
        deadline = time.monotonic() + timeout_s
        delay = 0.0002
        while self.state() != "FROZEN":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path} did not freeze within {timeout_s} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def limit_memory(self, limit_bytes: int) -> None:
        self._write("memory.limit_in_bytes" if self.version == 1 else "memory.max", str(limit_bytes))

    @property
    def freeze_file(self) -> str:
        return os.path.join(self.path, "freezer.state" if self.version == 1 else "cgroup.freeze")

    @property
    def thaw_value(self) -> str:
        return "THAWED" if self.version == 1 else "0"

    def thaw(self) -> None:
        self._write(os.path.basename(self.freeze_file), self.thaw_value)

    def kill(self, timeout_s: float = 10.0) -> None:
        """SIGKILL every task (frozen ones included) and wait until the group is empty."""
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:  # a frozen v1 task only dies once thawed
                self.thaw()
            except OSError:
                pass
            if not pids or time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill and remove this group and every group below it."""
        for entry in os.scandir(self.path) if os.path.isdir(self.path) else []:
            if entry.is_dir(follow_symlinks=False):
                Group(entry.path, self.version).remove()
        self.kill()
        for _ in range(100):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _own_v1_base(controller: str) -> Group | None:
    groups = _own_groups()
    for controllers, path in groups.items():
        if controller in controllers.split(","):
            for point, fstype, options in _cgroup_mounts():
                if fstype == "cgroup" and controller in options.split(","):
                    return Group(os.path.join(point, path.lstrip("/")), 1)
    return None


def _remove_stale_roots(base: Group) -> None:
    for entry in os.scandir(base.path):
        if entry.is_dir() and entry.name.startswith(_ROOT_PREFIX):
            owner = entry.name[len(_ROOT_PREFIX) :]
            if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                Group(entry.path, base.version).remove()


def create_memory_root(freezer_root: Group) -> Group | None:
    """Where environments get a memory limit (Lambda's memory size caps the whole microVM):
    the v1 ``memory`` hierarchy, or the freezer groups themselves on v2 when the memory
    controller can be enabled below our root; None when neither is possible (no limit)."""
    if freezer_root.version == 2:
        try:
            with open(os.path.join(freezer_root.path, "cgroup.subtree_control"), "w") as fh:
                fh.write("+memory")
            return freezer_root
        except OSError:
            return None
    base = _own_v1_base("memory")
    if base is None:
        return None
    _remove_stale_roots(base)
    return base.child(f"{_ROOT_PREFIX}{os.getpid()}")


def own_freezer_base() -> Group:
    """The group this process is in, in the hierarchy that can freeze (v1 freezer, else v2)."""
    v1 = _own_v1_base("freezer")
    if v1 is not None:
        return v1
    groups = _own_groups()
    if "" in groups:
        for point, fstype, _ in _cgroup_mounts():
            if fstype == "cgroup2":
                base = os.path.join(point, groups[""].lstrip("/"))
                if os.path.exists(os.path.join(base, "cgroup.procs")):
                    return Group(base, 2)
    raise FreezerUnavailable("no cgroup freezer (v1 freezer controller or v2 hierarchy) is mounted")


def create_root() -> Group:
    """A fresh group for this process's environments, below its own group; groups left by a
    previous harness that died (its pid gone) are removed first."""
    base = own_freezer_base()
    _remove_stale_roots(base)
    root = base.child(f"{_ROOT_PREFIX}{os.getpid()}")
    if root.version == 2 and not os.path.exists(os.path.join(root.path, "cgroup.freeze")):
        root.remove()
        raise FreezerUnavailable("this cgroup v2 hierarchy has no cgroup.freeze (kernel before 5.2)")
    return root
