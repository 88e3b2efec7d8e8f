"""The local Lambda Invoke-API server, as the stack launcher and the AWS SDK use it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coding_env_runtime import sandbox

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def invoke(base: str, payload: bytes, function: str = "coding-env-executor") -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"{base}/2015-03-31/functions/{function}/invocations", data=payload, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


class LocalServerTest(unittest.TestCase):
    process: subprocess.Popen
    base: str

    @classmethod
    def setUpClass(cls) -> None:
        env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT, "AWS_SECRET_ACCESS_KEY": "local-server-secret"}
        cls.process = subprocess.Popen(
            [sys.executable, "-m", "coding_env_runtime.local_server", "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert cls.process.stdout is not None
        line = cls.process.stdout.readline().strip()
        if not line.startswith("LISTENING http://127.0.0.1:"):
            cls.process.kill()
            raise AssertionError(f"unexpected first line: {line!r}")
        cls.base = line.split(" ", 1)[1]

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.process.poll() is None:
            cls.process.kill()
            cls.process.wait()
        if cls.process.stdout is not None:
            cls.process.stdout.close()

    def test_step_and_next_step(self) -> None:
        event = {"episode_id": "srv-1", "state_version": 0, "snapshot": None, "code": "x = 2\nx * 21"}
        status, headers, body = invoke(self.base, json.dumps(event).encode())
        self.assertEqual(status, 200)
        self.assertNotIn("X-Amz-Function-Error", headers)
        self.assertEqual(body["stdout"], "42")
        event2 = {**event, "state_version": 1, "snapshot": body["snapshot"], "code": "x"}
        _, _, body2 = invoke(self.base, json.dumps(event2).encode(), function="any-name-at-all")
        self.assertEqual((body2["stdout"], body2["warm"]), ("2", True))

    def test_user_error_is_data(self) -> None:
        status, headers, body = invoke(self.base, json.dumps({"episode_id": "srv-2", "code": "1/0"}).encode())
        self.assertEqual(status, 200)
        self.assertNotIn("X-Amz-Function-Error", headers)
        self.assertEqual(body["exit_code"], 1)

    def test_malformed_event_is_a_function_error(self) -> None:
        status, headers, body = invoke(self.base, json.dumps({"episode_id": "srv-3", "code": 5}).encode())
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("X-Amz-Function-Error"), "Unhandled")
        self.assertEqual(body["errorType"], "EventError")
        self.assertIn("code must be a string", body["errorMessage"])

    def test_invalid_json_is_a_service_error(self) -> None:
        status, headers, body = invoke(self.base, b"{not json")
        self.assertEqual(status, 400)
        self.assertEqual(headers.get("x-amzn-ErrorType"), "InvalidRequestContentException")
        self.assertIn("message", body)

    def test_unknown_path(self) -> None:
        request = urllib.request.Request(f"{self.base}/nope", data=b"{}", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            urllib.request.urlopen(request, timeout=10)
        self.assertEqual(ctx.exception.code, 404)

    def test_serves_episodes_concurrently(self) -> None:
        def run(i: int) -> tuple[float, str]:
            event = {"episode_id": f"srv-par-{i}", "code": "import time\ntime.sleep(0.5)\n'done'"}
            started = time.monotonic()
            _, _, body = invoke(self.base, json.dumps(event).encode())
            return time.monotonic() - started, body["stdout"]

        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(run, range(4)))
        total = time.monotonic() - started
        self.assertEqual([o[1] for o in outcomes], ['"done"'] * 4)
        self.assertLess(total, 4 * 0.5)  # not one after another

    def test_server_secret_not_visible_to_user_code(self) -> None:
        event = {"episode_id": "srv-env", "code": "import os\ndict(os.environ)", "policy": {"mode": "full"}}
        _, _, body = invoke(self.base, json.dumps(event).encode())
        self.assertNotIn("local-server-secret", body["stdout"])


class LocalServerShutdownTest(unittest.TestCase):
    def test_sigterm_stops_server_and_all_workers(self) -> None:
        env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
        process = subprocess.Popen(
            [sys.executable, "-m", "coding_env_runtime.local_server", "--port", "0"],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert process.stdout is not None
        base = process.stdout.readline().strip().split(" ", 1)[1]
        invoke(base, json.dumps({"episode_id": "bye", "code": "1"}).encode())
        family = [process.pid, *sandbox.descendants_of(process.pid)]
        self.assertGreaterEqual(len(family), 3)  # server, zygote, at least one worker
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(timeout=15), 0)
        process.stdout.close()
        time.sleep(0.2)
        alive = [pid for pid in family if not sandbox.is_zombie(pid)]
        self.assertEqual(alive, [])
