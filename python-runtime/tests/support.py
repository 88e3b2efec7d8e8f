"""Shared helpers: a real runtime (zygote + sandboxed workers) and an episode driver."""

from __future__ import annotations

import itertools
import unittest
from typing import Any

from coding_env_runtime.contract import parse_event
from coding_env_runtime.runtime import Runtime, RuntimeOpts

_episode_ids = itertools.count(1)


class Episode:
    """Drives one episode through a runtime the way the API does (snapshot + state_version)."""

    def __init__(self, runtime: Runtime, policy: dict[str, Any] | None = None, **limits: Any) -> None:
        self.runtime = runtime
        self.episode_id = f"ep_test_{next(_episode_ids)}"
        self.snapshot: str | None = None
        self.state_version = 0
        self.policy = policy or {"mode": "openenv", "additional_imports": []}
        self.limits = limits

    def event(self, code: str, **limits: Any) -> dict[str, Any]:
        return {
            "contract_version": 1,
            "episode_id": self.episode_id,
            "state_version": self.state_version,
            "snapshot": self.snapshot,
            "code": code,
            "policy": self.policy,
            "limits": {**self.limits, **limits},
        }

    def step(self, code: str, **limits: Any) -> dict[str, Any]:
        result = self.runtime.run_step(parse_event(self.event(code, **limits)))
        self.snapshot = result["snapshot"]
        self.state_version = result["state_version"]
        return result


class RuntimeTestCase(unittest.TestCase):
    """One real runtime per test class."""

    runtime: Runtime
    opts: RuntimeOpts | None = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.runtime = Runtime(cls.opts or RuntimeOpts(idle_workers=1))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.runtime.close()

    def episode(self, policy: dict[str, Any] | None = None, **limits: Any) -> Episode:
        return Episode(self.runtime, policy, **limits)

    def full_episode(self, **limits: Any) -> Episode:
        return Episode(self.runtime, {"mode": "full"}, **limits)
