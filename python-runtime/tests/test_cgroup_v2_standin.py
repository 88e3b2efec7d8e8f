"""The cgroup v2 memory path of cgroups.py against a stand-in for cgroupfs (issue 10 point 6).

This machine has cgroup v1, and its memory controller is bound there: a cgroup2 hierarchy mounts
(`unshare -m` + `mount -t cgroup2`) but offers only `hugetlb`, never `memory`, so no real v2
`memory.max` test can run here (CgroupV2FreezerTest in test_isolation_root.py covers the v2
freezer, which needs no controller). The stand-in is a directory tree with the interface files a
v2 kernel creates in every group (`cgroup.procs`, `cgroup.controllers`, `cgroup.subtree_control`,
`cgroup.freeze`, `cgroup.events`, `memory.max`, `memory.swap.max`, `memory.current`,
`memory.events`) and their write semantics (a write replaces the value; `+memory` in
`subtree_control` enables the controller in the children): what the kernel does with the limit
(charging every process of the group and its tmpfs pages) is the kernel's, asserted on v1 by
MemoryGroupTest in test_isolation_root.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import types
import unittest
from typing import Any
from unittest import mock

from coding_env_runtime import cgroups

MIB = 2**20


class StandInCgroupfs:
    """A cgroup v2 tree in a temporary directory, and an `os` for cgroups.py that behaves on it
    as on cgroupfs: mkdir creates a group's interface files, rmdir removes a group, a write
    replaces a file's value. Every write is logged as (path below the mount, value)."""

    def __init__(self, own: str, controllers: str = "memory hugetlb") -> None:
        self.root = tempfile.mkdtemp(prefix="cgroup2-stand-in-")
        self.mount = os.path.join(self.root, "sys", "fs", "cgroup")
        self.writes: list[tuple[str, str]] = []
        self._fds: dict[int, str] = {}
        os.makedirs(self.mount)
        self._populate(self.mount, controllers)
        parts = [p for p in own.split("/") if p]
        for depth in range(1, len(parts) + 1):
            self._group(os.path.join(self.mount, *parts[:depth]), controllers)
        self.own_dir = os.path.join(self.mount, *parts)
        self.before = set(self.groups())
        self.os = self._os()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def below(self, path: str) -> bool:
        return os.path.abspath(path).startswith(self.root + os.sep)

    def relative(self, path: str) -> str:
        return "/" + os.path.relpath(path, self.mount)

    def groups(self) -> list[str]:
        return sorted(self.relative(d) for d, _subdirs, _files in os.walk(self.mount))

    def value(self, group_dir: str, name: str) -> str:
        with open(os.path.join(group_dir, name)) as fh:
            return fh.read()

    # --- what the kernel does ------------------------------------------------------------------

    @staticmethod
    def _populate(directory: str, controllers: str) -> None:
        files = {
            "cgroup.controllers": controllers + "\n",
            "cgroup.subtree_control": "",
            "cgroup.freeze": "0\n",
            "cgroup.events": "populated 0\nfrozen 0\n",
            "memory.max": "max\n",
            "memory.swap.max": "max\n",
            "memory.current": "0\n",
            "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
        }
        for name, value in files.items():
            with open(os.path.join(directory, name), "w") as fh:
                fh.write(value)
        # Writes of a pid are accepted; reading lists nothing (no process of this test joins a
        # stand-in group, so nothing is ever signalled from its contents).
        os.symlink(os.devnull, os.path.join(directory, "cgroup.procs"))

    def _group(self, directory: str, controllers: str | None = None) -> None:
        os.mkdir(directory)
        if controllers is None:
            with open(os.path.join(os.path.dirname(directory), "cgroup.subtree_control")) as fh:
                controllers = " ".join(fh.read().split())
        self._populate(directory, controllers)

    def _write_value(self, path: str, data: bytes) -> int:
        text = data.decode()
        self.writes.append((self.relative(path), text))
        if os.path.basename(path) == "cgroup.procs":
            return len(data)
        if os.path.basename(path) == "cgroup.subtree_control":
            with open(os.path.join(os.path.dirname(path), "cgroup.controllers")) as fh:
                available = fh.read().split()
            with open(path) as fh:
                enabled = fh.read().split()
            for word in text.split():
                name = word[1:]
                if name not in available:
                    raise OSError(22, "Invalid argument", path)
                if word[0] == "+" and name not in enabled:
                    enabled.append(name)
                elif word[0] == "-" and name in enabled:
                    enabled.remove(name)
            text = " ".join(enabled)
        with open(path, "w") as fh:
            fh.write(text)
        return len(data)

    def _os(self) -> Any:
        real = os
        stand_in = self

        def makedirs(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
            if not stand_in.below(name):
                return real.makedirs(name, mode, exist_ok)
            if real.path.isdir(name):
                if not exist_ok:
                    raise FileExistsError(name)
                return None
            makedirs(real.path.dirname(name), mode, exist_ok=True)
            stand_in._group(name)
            return None

        def rmdir(path: str) -> None:
            if not stand_in.below(path):
                return real.rmdir(path)
            if any(e.is_dir(follow_symlinks=False) for e in real.scandir(path)):
                raise OSError(16, "Device or resource busy", path)
            shutil.rmtree(path)
            return None

        def open_(path: str, flags: int, mode: int = 0o777) -> int:
            fd = real.open(path, flags, mode)
            if stand_in.below(path):
                stand_in._fds[fd] = path
            return fd

        def write(fd: int, data: bytes) -> int:
            path = stand_in._fds.get(fd)
            return real.write(fd, data) if path is None else stand_in._write_value(path, data)

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            path = stand_in._fds.get(fd)
            return real.pwrite(fd, data, offset) if path is None else stand_in._write_value(path, data)

        def close(fd: int) -> None:
            stand_in._fds.pop(fd, None)
            real.close(fd)

        namespace = types.SimpleNamespace(makedirs=makedirs, rmdir=rmdir, open=open_, write=write, pwrite=pwrite, close=close)

        class _Os(types.ModuleType):
            def __getattr__(self, name: str) -> Any:
                return getattr(namespace, name, None) or getattr(real, name)

        return _Os("os")

    def patches(self, own: str, mount_root: str = "/") -> list[Any]:
        """cgroups.py sees this tree as its only cgroup2 mount and `own` as its v2 group."""
        mounts = [(self.mount, mount_root, "cgroup2", {"rw"})]
        return [
            mock.patch.object(cgroups, "os", self.os),
            mock.patch.object(cgroups, "_mounts", lambda: mounts),
            mock.patch.object(cgroups, "_own_paths", lambda: ({}, own)),
        ]


class StandInCgroupV2MemoryTest(unittest.TestCase):
    OWN = "/system.slice/coding-env.service"

    def setUp(self) -> None:
        self.fs = StandInCgroupfs(self.OWN)
        self.addCleanup(self.fs.close)
        os.mkdir(os.path.join(self.fs.mount, "system.slice", "neighbour.service"))
        self.fs.before = set(self.fs.groups())
        for patch in self.fs.patches(self.OWN):
            patch.start()
            self.addCleanup(patch.stop)

    def test_stand_in_v2_worker_group_gets_the_steps_memory_limit_and_no_swap(self) -> None:
        manager = cgroups.CgroupManager()
        self.addCleanup(manager.remove_bases)
        self.assertTrue(manager.available, manager.problem)
        assert manager.memory is not None
        self.assertTrue(manager.memory.v2)
        group = manager.new_group("worker-1")
        self.addCleanup(group.remove)
        # The freezer and the memory group are one directory on v2.
        self.assertEqual(group.memory_dir, group.freezer_dir)
        # Act: what the runtime does before a step of memory_mb=256, then of 512 (runtime.py)
        group.set_memory_limit(256 * MIB)
        at_256 = (self.fs.value(group.memory_dir, "memory.max"), self.fs.value(group.memory_dir, "memory.swap.max"))
        group.set_memory_limit(512 * MIB)
        # Assert
        self.assertEqual(at_256, (str(256 * MIB), "0"))
        self.assertEqual(self.fs.value(group.memory_dir, "memory.max"), str(512 * MIB))
        # The memory controller is enabled for the children at every level created (else the
        # worker's group would have no memory.max to obey).
        self.assertIn("memory", self.fs.value(self.fs.own_dir, "cgroup.subtree_control").split())
        self.assertIn("memory", self.fs.value(os.path.dirname(group.memory_dir), "cgroup.subtree_control").split())
        # usage and OOM kills are read from the v2 files
        self.assertEqual((group.memory_bytes(), group.oom_kills()), (0, 0))

    def test_stand_in_v2_groups_are_created_only_below_the_processs_own_group_and_removed(self) -> None:
        manager = cgroups.CgroupManager()
        group = manager.new_group("worker-1")
        group.set_memory_limit(128 * MIB)
        created = set(self.fs.groups()) - self.fs.before
        written = {path for path, _value in self.fs.writes}
        group.remove()
        manager.remove_bases()
        # Assert: every group made and every file written is below our own group
        self.assertTrue(created)
        for path in created | written:
            self.assertTrue(path.startswith(self.OWN + "/") or os.path.dirname(path) == self.OWN, path)
        bases = {p for p in created if os.path.dirname(p) == self.OWN}
        self.assertEqual([os.path.basename(b).startswith(f"coding-env-{os.getpid()}-") for b in bases], [True])
        # ... in one directory per runtime, removed with it; the neighbour is untouched
        self.assertEqual(set(self.fs.groups()), self.fs.before)

    def test_stand_in_v2_stale_bases_of_dead_runtimes_are_removed_only_below_our_group(self) -> None:
        dead = "coding-env-999999999-1"  # above pid_max: no such process
        ours = os.path.join(self.fs.own_dir, dead)
        theirs = os.path.join(self.fs.mount, "system.slice", "neighbour.service", dead)
        os.mkdir(ours)
        os.mkdir(theirs)
        manager = cgroups.CgroupManager()
        manager.remove_bases()
        self.assertFalse(os.path.exists(ours))
        self.assertTrue(os.path.isdir(theirs))


class StandInCgroupV2RefusalTest(unittest.TestCase):
    def test_stand_in_v2_without_the_memory_controller_creates_nothing(self) -> None:
        own = "/user.slice/app"
        fs = StandInCgroupfs(own, controllers="hugetlb")  # what this machine's cgroup2 offers
        self.addCleanup(fs.close)
        with fs.patches(own)[0], fs.patches(own)[1], fs.patches(own)[2]:
            manager = cgroups.CgroupManager()
        self.assertFalse(manager.available)
        self.assertIn("no writable freezer and memory", manager.problem or "")
        self.assertEqual(set(fs.groups()), fs.before)
        self.assertEqual(fs.writes, [])

    def test_stand_in_v2_own_group_outside_the_mount_creates_nothing(self) -> None:
        # A cgroup namespace's mount shows only its own subtree: our group must lie inside it.
        fs = StandInCgroupfs("/lxc/guest")
        self.addCleanup(fs.close)
        patches = fs.patches("/elsewhere/app", mount_root="/lxc/guest")
        with patches[0], patches[1], patches[2]:
            manager = cgroups.CgroupManager()
        self.assertFalse(manager.available)
        self.assertEqual(set(fs.groups()), fs.before)
        self.assertEqual(fs.writes, [])


@unittest.skipUnless(os.geteuid() == 0, "the runtime's control groups need root")
class StandInCgroupV2RuntimeTest(unittest.TestCase):
    """A real runtime whose memory groups are on the stand-in v2 tree (its freezer stays on this
    machine's real v1 hierarchy, so workers really start, freeze and die): the worker of a step
    gets the step's ``memory_mb`` as its ``memory.max``."""

    def test_stand_in_v2_memory_max_of_the_worker_is_the_steps_memory_limit(self) -> None:
        from coding_env_runtime.runtime import Runtime, RuntimeOpts
        from tests.support import Episode

        own = "/system.slice/coding-env.service"
        fs = StandInCgroupfs(own)
        self.addCleanup(fs.close)
        real_v1, _real_v2 = cgroups._own_paths()
        if "freezer" not in real_v1:
            self.skipTest("no cgroup v1 freezer on this machine")
        real_v1_mounts = [m for m in cgroups._mounts() if m[2] == "cgroup" and "memory" not in m[3]]
        mounts = [*real_v1_mounts, (fs.mount, "/", "cgroup2", {"rw"})]
        v1 = {name: path for name, path in real_v1.items() if name != "memory"}
        with (
            mock.patch.object(cgroups, "os", fs.os),
            mock.patch.object(cgroups, "_mounts", lambda: mounts),
            mock.patch.object(cgroups, "_own_paths", lambda: (v1, own)),
        ):
            runtime = Runtime(RuntimeOpts(idle_workers=1))
            try:
                manager = runtime.pool.cgroups
                assert manager is not None and manager.memory is not None and manager.freezer is not None
                self.assertTrue(manager.memory.v2)
                self.assertFalse(manager.freezer.v2)
                episode = Episode(runtime, {"mode": "full"}, memory_mb=300)
                result = episode.step("6 * 7")
                worker = next(iter(runtime._warm.values()))
                limit = fs.value(worker.group.memory_dir, "memory.max")
                swap = fs.value(worker.group.memory_dir, "memory.swap.max")
            finally:
                runtime.close()
        self.assertEqual(result["stdout"], "42", result["stderr"])
        self.assertEqual((limit, swap), (str(300 * MIB), "0"))
        self.assertTrue(worker.group.memory_dir.startswith(fs.own_dir + os.sep))
        self.assertEqual(set(fs.groups()), fs.before)  # removed with the runtime


if __name__ == "__main__":
    unittest.main()
