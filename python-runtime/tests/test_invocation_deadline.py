"""A step ends by its invocation's deadline even when waiting for a worker took part of it.

A step's own limit starts once a worker is there (a cold start does not eat the cell's time),
but in Lambda the function timeout counts everything: past it Lambda kills the environment and
every warm worker, and the caller learns only "Task timed out". So the handler turns Lambda's
remaining time into a deadline, and the runtime ends the step by it, as an ordinary timed-out
step with the input state kept.
"""

from __future__ import annotations

import dataclasses
import time
import unittest
from typing import Any
from unittest import mock

from coding_env_runtime import handler
from coding_env_runtime.contract import parse_event

from .support import RuntimeTestCase


class _LambdaContext:
    def __init__(self, remaining_ms: int) -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


class InvocationDeadlineTest(RuntimeTestCase):
    def test_the_handler_turns_the_remaining_time_into_a_deadline(self) -> None:
        request = parse_event(self.full_episode().event("1", timeout_ms=60_000))
        before = time.monotonic()
        cut = handler._within_invocation_deadline(request, _LambdaContext(5_000))
        self.assertIsNotNone(cut.invocation_deadline)
        assert cut.invocation_deadline is not None
        # The time left minus the room kept for the reply.
        self.assertLessEqual(cut.invocation_deadline, before + 5.0 - handler._REPLY_TIME_MS / 1000 + 0.1)
        self.assertGreater(cut.invocation_deadline, before + 2.0)
        self.assertLessEqual(cut.timeout_ms, 5_000 - handler._REPLY_TIME_MS)
        # A limit that fits is left as it is; the deadline is set all the same.
        short = handler._within_invocation_deadline(request.__class__(**{**request.__dict__, "timeout_ms": 500}),
                                                    _LambdaContext(5_000))
        self.assertEqual(short.timeout_ms, 500)
        self.assertIsNotNone(short.invocation_deadline)

    def test_a_slow_wait_for_a_worker_counts_inside_the_deadline_stand_in_for_a_slow_cold_start(self) -> None:
        # A cold start that takes seconds cannot be made on demand here: the wait for a worker
        # is stretched by a wrapper around the runtime's own acquire instead (said in the name).
        ep = self.full_episode()
        self.assertEqual(ep.step("x = 1")["exit_code"], 0)
        real_acquire = self.runtime._acquire

        def slow_acquire(*args: Any, **kwargs: Any) -> Any:
            time.sleep(1.5)
            return real_acquire(*args, **kwargs)

        request = parse_event(ep.event("import time\nx = 2\ntime.sleep(60)", timeout_ms=60_000))
        request = dataclasses.replace(request, invocation_deadline=time.monotonic() + 1.0)
        started = time.monotonic()
        with mock.patch.object(self.runtime, "_acquire", slow_acquire):
            result = self.runtime.run_step(request)
        elapsed = time.monotonic() - started
        self.assertTrue(result["timed_out"], result)
        # Ended at the deadline (after the 1.5 s wait), not after the cell's own 60 s limit.
        self.assertLess(elapsed, 20.0)
        ep.snapshot, ep.state_version = result["snapshot"], result["state_version"]
        self.assertEqual(ep.step("x")["stdout"].strip(), "1")


if __name__ == "__main__":
    unittest.main()
