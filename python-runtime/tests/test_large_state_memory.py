"""A large state restores in a worker with the default memory limit (1024 MB): restoring reads each
array straight from the runtime's socket into its own memory (out-of-band pickle buffers), so a
250 MiB array costs the worker about 250 MiB, not the five copies an in-band pickle went through.
The state object goes through the handler's S3 path (pre-signed URLs against a tiny HTTP object
server standing in for S3, as in test_state_in_s3)."""

from __future__ import annotations

import os
import unittest
from typing import Any

from coding_env_runtime import handler
from coding_env_runtime.options import worker_memory_mb
from tests import test_state_in_s3

#: The largest state an episode keeps is 256 MiB (array plus pickle and envelope): 250 MiB of
#: array data is the largest round figure under it.
ARRAY_MIB = 250


class LargeStateMemoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.s3 = test_state_in_s3.ObjectServer()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.s3.close()
        handler.shutdown()

    def step(self, version: int, code: str, get_ref: str | None, put_ref: str) -> dict[str, Any]:
        state: dict[str, Any] = {"put_url": f"{self.s3.url}/{put_ref}", "put_ref": put_ref, "inline_max_bytes": 1024}
        if get_ref is not None:
            state.update(get_url=f"{self.s3.url}/{get_ref}", get_ref=get_ref)
        return handler.handler(
            {
                "contract_version": 1,
                "episode_id": "ep_large",
                "state_version": version,
                "code": code,
                "policy": {"mode": "full"},
                # No memory_mb: the deployment's default worker memory.
                "limits": {"timeout_ms": 300_000},
                "state": state,
            }
        )

    def test_a_250_mib_array_restores_and_saves_in_a_default_worker(self) -> None:
        self.assertEqual(worker_memory_mb(), 1024, "run without CODING_ENV_WORKER_MEMORY_MB")
        self.assertNotIn("CODING_ENV_WORKER_MEMORY_MB", os.environ)
        first = self.step(
            0,
            "import numpy as np\n"
            f"big = np.random.default_rng(7).random({ARRAY_MIB} * 1024 * 1024 // 8)\n"
            "total = float(big.sum())",
            None,
            "large1",
        )
        self.assertEqual((first["exit_code"], first["state_location"]), (0, "put"), first["stderr"])
        self.assertGreater(len(self.s3.objects["/large1"]), ARRAY_MIB * 1024 * 1024)
        # Another executor's view: no warm worker, no cached copy; a fresh worker restores it.
        handler.get_runtime().discard("default", "ep_large")
        handler._state_cache.forget("default", "ep_large")
        second = self.step(
            1,
            "big[0] += 1.0\nprint(float(big.sum()) - total > 0.5, big.flags.writeable, big.nbytes)",
            "large1",
            "large2",
        )
        self.assertEqual(second["exit_code"], 0, second["stderr"])
        self.assertFalse(second["warm"])
        self.assertEqual(second["stdout"], f"True True {ARRAY_MIB * 1024 * 1024}\n")
        self.assertEqual(second["state_location"], "put")


if __name__ == "__main__":
    unittest.main()
