"""A seeded episode draws the same numbers on every run, warm or after a cold restore."""

from __future__ import annotations

from typing import Any

from coding_env_runtime.contract import EventError, parse_event
from tests.support import Episode, RuntimeTestCase

DRAW = "import random\n[random.random(), random.randint(0, 10**9)]"
DRAW_NUMPY = "import numpy as np\n[float(x) for x in np.random.rand(3)]"


class SeededEpisode(Episode):
    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed

    def event(self, code: str, **limits: Any) -> dict[str, Any]:
        event = super().event(code, **limits)
        if self.seed is not None:
            event["seed"] = self.seed
        return event


class SeedTest(RuntimeTestCase):
    def seeded(self, seed: int | None, full: bool = False) -> SeededEpisode:
        return SeededEpisode(self.runtime, {"mode": "full"} if full else None, seed=seed)

    def draws(self, seed: int | None, code: str = DRAW, steps: int = 2, full: bool = False) -> list[str]:
        ep = self.seeded(seed, full)
        out = []
        for _ in range(steps):
            result = ep.step(code)
            self.assertEqual(result["exit_code"], 0, result["stderr"])
            out.append(result["stdout"])
        return out

    def test_same_seed_same_numbers(self) -> None:
        self.assertEqual(self.draws(42), self.draws(42))

    def test_other_seed_or_none_other_numbers(self) -> None:
        self.assertNotEqual(self.draws(42), self.draws(43))
        self.assertNotEqual(self.draws(None), self.draws(None))

    def test_numbers_continue_across_steps(self) -> None:
        first, second = self.draws(7)
        self.assertNotEqual(first, second)

    def test_cold_restore_continues_like_warm(self) -> None:
        ep = self.seeded(5)
        first = ep.step(DRAW)
        warm = ep.step(DRAW)
        self.assertTrue(warm["warm"])
        cold = SeededEpisode(self.runtime, seed=5)
        cold.snapshot, cold.state_version = first["snapshot"], first["state_version"]
        restored = cold.step(DRAW)
        self.assertFalse(restored["warm"])
        self.assertEqual(restored["stdout"], warm["stdout"])

    def test_numpy_seeded_when_imported_later(self) -> None:
        runs = []
        for _ in range(2):
            ep = self.seeded(11, full=True)
            self.assertEqual(ep.step("x = 1")["exit_code"], 0)
            result = ep.step(DRAW_NUMPY)
            self.assertEqual(result["exit_code"], 0, result["stderr"])
            runs.append(result["stdout"])
        self.assertEqual(runs[0], runs[1])

    def test_numpy_state_survives_cold_restore(self) -> None:
        ep = self.seeded(3, full=True)
        first = ep.step(DRAW_NUMPY)
        self.assertEqual(first["exit_code"], 0, first["stderr"])
        warm = ep.step(DRAW_NUMPY)
        cold = SeededEpisode(self.runtime, {"mode": "full"}, seed=3)
        cold.snapshot, cold.state_version = first["snapshot"], first["state_version"]
        restored = cold.step(DRAW_NUMPY)
        self.assertFalse(restored["warm"])
        self.assertEqual(restored["stdout"], warm["stdout"])
        self.assertNotEqual(first["stdout"], warm["stdout"])

    def test_seed_checked(self) -> None:
        base = {"episode_id": "e", "code": ""}
        for bad in (-1, 1.5, True, "1", 2**63):
            with self.assertRaises(EventError):
                parse_event({**base, "seed": bad})
        self.assertEqual(parse_event({**base, "seed": 0}).seed, 0)
