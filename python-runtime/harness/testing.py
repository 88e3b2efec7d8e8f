"""unittest support for the Lambda-mode tests: a harness per test class, and what the tests
inspect from outside (processes of an environment's uid, its freezer state)."""

from __future__ import annotations

import os
import unittest
import uuid
from pathlib import Path

from .client import HarnessProcess, unavailable_reason

FULL = {"mode": "full"}
UNAVAILABLE = unavailable_reason()


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
    harness: HarnessProcess
    max_environments = 2
    harness_args: tuple[str, ...] = ()

    @classmethod
    def setUpClass(cls) -> None:
        cls.harness = HarnessProcess(*cls.harness_args, max_environments=cls.max_environments)
        cls.harness.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.harness.stop()

    def episode_id(self) -> str:
        return f"lm-{uuid.uuid4().hex[:10]}"

    def run_code(self, code: str, **event: object) -> dict:
        return self.harness.step({"episode_id": self.episode_id(), "code": code, "policy": FULL, **event})
