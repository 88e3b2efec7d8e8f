"""Many episodes stepping at once through one runtime (as the local server does with threads)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from coding_env_runtime.runtime import RuntimeOpts
from tests.support import RuntimeTestCase


class ConcurrentEpisodesTest(RuntimeTestCase):
    opts = RuntimeOpts(idle_workers=2, max_warm_workers=4)  # fewer warm slots than episodes

    def test_parallel_episodes_keep_their_own_state(self) -> None:
        def drive(n: int) -> list[str]:
            ep = self.episode()
            ep.step(f"count = 0\nname = 'ep{n}'")
            outputs = []
            for i in range(12):
                if i == 5 and n % 3 == 0:
                    result = ep.step("while True:\n    pass", timeout_ms=200)  # timeouts in the mix
                    assert result["timed_out"], result
                    continue
                outputs.append(ep.step("count += 1\nname, count")["stdout"])
            return outputs

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(drive, range(6)))
        for n, outputs in enumerate(results):
            self.assertEqual(outputs[-1], f'["ep{n}", {len(outputs)}]')
            self.assertEqual(outputs, [f'["ep{n}", {i + 1}]' for i in range(len(outputs))])
        # Every worker that is not warm or idle is gone (cleanup runs in the background).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            live = set(self.runtime._live)
            kept = {w.pid for w in self.runtime._warm.values()} | {w.pid for w in self.runtime._idle}
            if live == kept:
                break
            time.sleep(0.05)
        self.assertEqual(live, kept)
        self.assertLessEqual(len(self.runtime._warm), 4)
