"""Shared helpers: a real runtime (zygote + sandboxed workers) and an episode driver."""

from __future__ import annotations

import atexit
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


_shared_runtime: Runtime | None = None


def shared_runtime() -> Runtime:
    """The test process's one runtime with the default test options (``idle_workers=1``),
    started on first use and closed when the process exits."""
    global _shared_runtime
    if _shared_runtime is None or _shared_runtime.pool.closed:
        _shared_runtime = Runtime(RuntimeOpts(idle_workers=1))
        atexit.register(_shared_runtime.close)
    return _shared_runtime


class RuntimeTestCase(unittest.TestCase):
    """A real runtime per test class: its own when the class sets ``opts``, else the process's
    shared one (``shared_runtime``). Each class started and closed a runtime of its own before,
    a spare interpreter started for nothing at every close; the tests of those classes depend
    on nothing a fresh runtime has (their episodes and ids are their own)."""

    runtime: Runtime
    opts: RuntimeOpts | None = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.runtime = Runtime(cls.opts) if cls.opts is not None else shared_runtime()

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.runtime is not _shared_runtime:
            cls.runtime.close()

    def episode(self, policy: dict[str, Any] | None = None, **limits: Any) -> Episode:
        return Episode(self.runtime, policy, **limits)

    def full_episode(self, **limits: Any) -> Episode:
        return Episode(self.runtime, {"mode": "full"}, **limits)
