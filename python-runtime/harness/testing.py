"""unittest support for the Lambda-mode tests: a harness per test class (or the test process's
shared one), and what the tests inspect from outside (processes of an environment's uid, its
freezer state)."""

from __future__ import annotations

import atexit
import os
import unittest
import uuid
from pathlib import Path

from .client import HarnessProcess, unavailable_reason

FULL = {"mode": "full"}
UNAVAILABLE = unavailable_reason()


_shared_harness: HarnessProcess | None = None


def shared_harness() -> HarnessProcess:
    """The test process's one harness with the default arguments, started on first use and
    stopped when the process exits."""
    global _shared_harness
    if _shared_harness is None or _shared_harness.process is None or _shared_harness.process.poll() is not None:
        _shared_harness = HarnessProcess(max_environments=LambdaModeTestCase.max_environments)
        _shared_harness.start()
        atexit.register(_shared_harness.stop)
    return _shared_harness


def uid_processes(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
            except OSError:
                continue
    return pids


def frozen(group: str) -> bool:
    if os.path.exists(os.path.join(group, "freezer.state")):  # cgroup v1
        return Path(group, "freezer.state").read_text().strip() == "FROZEN"
    return "frozen 1" in Path(group, "cgroup.events").read_text().splitlines()


@unittest.skipIf(UNAVAILABLE is not None, UNAVAILABLE or "")
class LambdaModeTestCase(unittest.TestCase):
    """A harness of its own per class; a class that sets ``share_harness = True`` (with the default
    arguments) uses the test process's shared one instead (``shared_harness``): a harness start and
    its first environment cost about half a CPU-second. Share only when the tests depend on nothing
    a fresh harness has (which environments exist, their count or order, the first one's state):
    their episodes and ids are their own."""

    harness: HarnessProcess
    max_environments = 2
    harness_args: tuple[str, ...] = ()
    share_harness = False

    @classmethod
    def setUpClass(cls) -> None:
        if cls.share_harness:
            if cls.harness_args or cls.max_environments != LambdaModeTestCase.max_environments:
                raise TypeError(f"{cls.__name__}: a shared harness has the default arguments")
            cls.harness = shared_harness()
            return
        cls.harness = HarnessProcess(*cls.harness_args, max_environments=cls.max_environments)
        cls.harness.start()

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.harness is not _shared_harness:
            cls.harness.stop()

    def episode_id(self) -> str:
        return f"lm-{uuid.uuid4().hex[:10]}"

    def run_code(self, code: str, **event: object) -> dict:
        return self.harness.step({"episode_id": self.episode_id(), "code": code, "policy": FULL, **event})
