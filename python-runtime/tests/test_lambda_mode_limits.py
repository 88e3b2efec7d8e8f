"""Lambda's limits and service behaviour around the executor's real handler, in emulated Lambda
environments (python-runtime/harness/): 6 MB payloads, process and memory caps, the start-up
key, tenants, throttling, timeouts, a dying runtime, shutdown."""

from __future__ import annotations

import json
import os
import sys
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

from harness.client import HarnessProcess  # noqa: E402
from harness.environment import MAX_RESPONSE_BYTES  # noqa: E402
from harness.testing import FULL, UNAVAILABLE, LambdaModeTestCase, frozen, uid_processes  # noqa: E402

REPLY_LIMIT = 6_000_000


class PayloadLimitTest(LambdaModeTestCase):
    share_harness = True

    def test_a_megabyte_of_nul_characters_gives_a_valid_reply(self) -> None:
        status, headers, body = self.harness.invoke_raw(
            json.dumps({"episode_id": self.episode_id(), "code": "print('\\x00' * 2**20)"}).encode()
        )
        self.assertEqual(status, 200)
        self.assertNotIn("X-Amz-Function-Error", headers, body[:300])
        self.assertLessEqual(len(body), REPLY_LIMIT)
        result = json.loads(body)
        self.assertTrue(result["stdout_truncated"])
        self.assertEqual(result["exit_code"], 0)
        self.assertGreater(len(result["stdout"]), 900_000)  # cut by serialized size, not emptied
        self.assertEqual(set(result["stdout"]), {"\x00"})

    def test_a_state_too_large_for_the_reply_is_refused_with_the_input_state(self) -> None:
        episode = self.episode_id()
        first = self.harness.step({"episode_id": episode, "policy": FULL, "code": "kept = 42"})
        status, headers, body = self.harness.invoke_raw(json.dumps({
            "episode_id": episode, "policy": FULL, "state_version": 1, "snapshot": first["snapshot"],
            "code": "import os\nblob = os.urandom(5 * 2**20)\nprint('\\x00' * 2**20)",
        }).encode())
        self.assertEqual(status, 200)
        self.assertNotIn("X-Amz-Function-Error", headers, body[:300])
        self.assertLessEqual(len(body), REPLY_LIMIT)
        result = json.loads(body)
        self.assertEqual(result["error_code"], "state_too_large")
        self.assertEqual(result["exit_code"], 1)
        self.assertEqual(result["snapshot"], first["snapshot"])
        self.assertIn("state", result["stderr"])
        again = self.harness.step({
            "episode_id": episode, "policy": FULL, "state_version": 1, "snapshot": first["snapshot"], "code": "kept",
        })
        self.assertEqual(again["stdout"], "42")

    def test_a_large_state_that_fits_keeps_what_output_fits(self) -> None:
        status, headers, body = self.harness.invoke_raw(json.dumps({
            "episode_id": self.episode_id(), "policy": FULL,
            "code": "import os\nblob = os.urandom(4 * 2**20)\nprint('\\x00' * 2**20)",
        }).encode())
        self.assertEqual(status, 200)
        self.assertNotIn("X-Amz-Function-Error", headers, body[:300])
        self.assertLessEqual(len(body), REPLY_LIMIT)
        result = json.loads(body)
        self.assertIsNone(result["error_code"])
        self.assertGreater(result["snapshot_bytes"], 4 * 2**20)
        self.assertTrue(result["stdout_truncated"])

    def test_a_request_above_six_megabytes_is_refused_as_lambda_does(self) -> None:
        payload = json.dumps({"episode_id": "big", "code": "1", "pad": "x" * (6 * 2**20)}).encode()
        status, headers, body = self.harness.invoke_raw(payload)
        self.assertEqual(status, 413)
        self.assertEqual(headers.get("x-amzn-ErrorType"), "RequestEntityTooLargeException")
        self.assertIn("6291456", json.loads(body)["message"])

    def test_lambda_limit_is_the_one_the_harness_enforces(self) -> None:
        self.assertGreater(MAX_RESPONSE_BYTES, REPLY_LIMIT)


class ProcessLimitTest(LambdaModeTestCase):
    harness_args = ("--memory-mb", "512")

    def test_the_environment_is_capped_at_the_function_memory_size(self) -> None:
        # Five children of 200 MB each, every one within the step's own per-process limit: the
        # environment's memory (512 MB here, the function's memory size in Lambda) stops them.
        hog = (
            "import os\n"
            "ends = []\n"
            "for _ in range(5):\n"
            "    r, w = os.pipe()\n"
            "    if os.fork() == 0:\n"
            "        os.close(r)\n"
            "        block = bytearray(200 * 2**20)\n"
            "        block[::4096] = b'x' * len(block[::4096])\n"
            "        os.write(w, b'1')\n"
            "        __import__('time').sleep(60)\n"
            "        os._exit(0)\n"
            "    os.close(w)\n"
            "    ends.append(r)\n"
            "[os.read(r, 1).decode() for r in ends].count('')"
        )
        result = self.run_code(hog, limits={"timeout_ms": 20000})
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertGreaterEqual(int(result["stdout"]), 1)  # at least one was killed for memory
        self.assertEqual(self.run_code("6 * 7")["stdout"], "42")

    def test_a_fork_bomb_hits_the_process_limit_and_the_environment_survives(self) -> None:
        # A generous deadline: on a loaded machine, 256 spinning processes take seconds to spawn.
        bomb = self.run_code("import os\nwhile True:\n    os.fork()", limits={"timeout_ms": 20000})
        self.assertEqual(bomb["exit_code"], 1)
        # Stopped by the process limit (fork fails), not by the step's deadline.
        self.assertFalse(bomb["timed_out"])
        self.assertIn("BlockingIOError", bomb["stderr"])
        after = self.run_code("6 * 7")
        self.assertEqual(after["stdout"], "42")
        uid = json.loads(self.run_code("import os\nos.getuid()")["stdout"])
        self.assertLess(len(uid_processes(uid)), 32)  # the bomb's processes are gone


class ServiceTest(LambdaModeTestCase):
    def test_requests_without_the_start_up_key_are_refused(self) -> None:
        event = json.dumps({"episode_id": "k", "code": "1"}).encode()
        for authorization in (None, self.harness.authorization("AKIAWRONGKEY")):
            status, headers, body = self.harness.invoke_raw(event, authorization=authorization)
            self.assertEqual(status, 403)
            self.assertEqual(headers.get("x-amzn-ErrorType"), "UnrecognizedClientException")
            self.assertIn("message", json.loads(body))

    def test_user_code_cannot_reach_the_harness(self) -> None:
        port = int(self.harness.base.rsplit(":", 1)[1])
        result = self.run_code(
            "import socket\ntry:\n    socket.create_connection(('127.0.0.1', %d), timeout=2)\n    r = 'connected'\n"
            "except OSError as e:\n    r = type(e).__name__\nr" % port
        )
        self.assertNotEqual(result["stdout"], '"connected"')

    def test_tenants_get_their_own_environments(self) -> None:
        probe = {"code": "import os\nos.getuid()", "policy": FULL}
        a = self.harness.step({**probe, "episode_id": self.episode_id()}, tenant_id="tenant-a")
        b = self.harness.step({**probe, "episode_id": self.episode_id()}, tenant_id="tenant-b")
        self.assertNotEqual(a["stdout"], b["stdout"])

    def test_one_invocation_per_environment_then_throttled(self) -> None:
        event = {"code": "import time\ntime.sleep(1.5)\n'slept'", "policy": FULL}

        def call(i: int) -> int:
            status, _, _ = self.harness.invoke({**event, "episode_id": f"{self.episode_id()}-{i}"}, tenant_id="busy")
            return status

        with ThreadPoolExecutor(self.max_environments + 1) as pool:
            statuses = sorted(pool.map(call, range(self.max_environments + 1)))
        self.assertEqual(statuses, [200] * self.max_environments + [429])

    def test_discard_reaches_the_handler(self) -> None:
        episode = self.episode_id()
        self.harness.step({"episode_id": episode, "code": "x = 1"}, tenant_id="discarding")
        status, _, body = self.harness.invoke({"op": "discard", "episode_id": episode}, tenant_id="discarding")
        self.assertEqual(status, 200)
        self.assertEqual(body, {"contract_version": 1, "discarded": 1})


class LifecycleTest(LambdaModeTestCase):
    max_environments = 1
    harness_args = ("--function-timeout-s", "3")

    def test_a_step_longer_than_the_invocation_ends_as_a_timed_out_step(self) -> None:
        # The step asks 20 s; the function times out after 3 s: the handler cuts the step short.
        result = self.run_code("import time\ntime.sleep(30)", limits={"timeout_ms": 20000})
        self.assertTrue(result["timed_out"])
        self.assertEqual(result["error_code"], "timeout")
        self.assertEqual(self.run_code("6 * 7")["stdout"], "42")

    def test_user_code_stopping_the_runtime_gets_lambdas_timeout_and_a_new_environment(self) -> None:
        # Same uid: user code can SIGSTOP the runtime; only Lambda's function timeout ends that.
        status, headers, body = self.harness.invoke({
            "episode_id": self.episode_id(), "policy": FULL,
            "code": "import os, signal\nfor pid in os.listdir('/proc'):\n    if pid.isdigit() and int(pid) > 1:\n"
                    "        try:\n            os.kill(int(pid), signal.SIGSTOP)\n        except OSError:\n            pass",
        })
        self.assertEqual((status, headers.get("X-Amz-Function-Error")), (200, "Unhandled"))
        self.assertIn("Task timed out after 3.00 seconds", body["errorMessage"])
        self.assertEqual(self.run_code("6 * 7")["stdout"], "42")

    def test_user_code_killing_the_runtime_loses_only_its_environment(self) -> None:
        status, headers, body = self.harness.invoke({
            "episode_id": self.episode_id(), "policy": FULL,
            "code": "import os, signal\nfor pid in os.listdir('/proc'):\n    if pid.isdigit() and int(pid) > 1:\n"
                    "        try:\n            os.kill(int(pid), signal.SIGKILL)\n        except OSError:\n            pass",
        })
        self.assertEqual((status, headers.get("X-Amz-Function-Error")), (200, "Unhandled"))
        self.assertEqual(body["errorType"], "Runtime.ExitError")
        self.assertEqual(self.run_code("6 * 7")["stdout"], "42")


@unittest.skipIf(UNAVAILABLE is not None, UNAVAILABLE or "")
class ShutdownTest(unittest.TestCase):
    def test_sigterm_ends_every_environment_and_removes_its_groups(self) -> None:
        harness = HarnessProcess(max_environments=2)
        harness.start()
        try:
            uids = [json.loads(harness.step({"episode_id": f"bye-{t}", "code": "import os\nos.getuid()",
                                             "policy": FULL}, tenant_id=t)["stdout"]) for t in ("a", "b")]
            groups = harness.environment_groups()
            self.assertEqual(len(groups), 2)
        finally:
            code = harness.stop()
        self.assertEqual(code, 0)
        self.assertFalse(any(os.path.exists(g) for g in groups))
        self.assertFalse(os.path.exists(os.path.dirname(groups[0])))
        for uid in uids:
            self.assertEqual(uid_processes(uid), [])

    def test_a_killed_harness_takes_its_frozen_environments_with_it(self) -> None:
        harness = HarnessProcess(max_environments=2)
        harness.start()
        try:
            uid = json.loads(harness.step({"episode_id": "gone", "code": "import os\nos.getuid()",
                                            "policy": FULL})["stdout"])
            group = harness.environment_groups()[0]
            self.assertTrue(frozen(group))
        finally:
            assert harness.process is not None
            harness.process.kill()  # no SIGTERM handler runs
            harness.stop()
        for _ in range(100):  # the keepers act on their parent-death signal; wait for the outcome
            if not uid_processes(uid) and not os.path.exists(group):
                break
            time.sleep(0.1)
        self.assertEqual(uid_processes(uid), [])
        self.assertFalse(os.path.exists(group))


if __name__ == "__main__":
    unittest.main()
