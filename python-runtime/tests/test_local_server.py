"""The local Lambda Invoke-API server, as the stack launcher and the AWS SDK use it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import unittest
from unittest import mock
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coding_env_runtime import local_server, options, sandbox
from tests.local_server_process import start_local_server, stop_local_server

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
        cls.process, cls.base = start_local_server({"AWS_SECRET_ACCESS_KEY": "local-server-secret"})

    @classmethod
    def tearDownClass(cls) -> None:
        stop_local_server(cls.process)

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


class LocalServerSettingsTest(unittest.TestCase):
    """The executor's documented settings reach the local server (docs/LOCAL-STACK.md), so a
    stack's launcher sets them through its environment; the command line still wins."""

    def test_idle_workers_warm_workers_and_preload_default_to_the_settings(self) -> None:
        settings = {options.IDLE_WORKERS_ENV: "1", options.MAX_WARM_WORKERS_ENV: "5", options.PRELOAD_ENV: "json, csv"}
        with mock.patch.dict(os.environ, settings):
            opts = local_server.runtime_opts(local_server.parse_args([]))
            self.assertEqual((opts.idle_workers, opts.max_warm_workers, opts.preload), (1, 5, ("json", "csv")))
            opts = local_server.runtime_opts(
                local_server.parse_args(["--idle-workers", "3", "--max-warm-workers", "7", "--preload", ""])
            )
            self.assertEqual((opts.idle_workers, opts.max_warm_workers, opts.preload), (3, 7, ()))

    def test_without_the_settings_the_defaults_are_unchanged(self) -> None:
        names = (options.IDLE_WORKERS_ENV, options.MAX_WARM_WORKERS_ENV, options.PRELOAD_ENV)
        clean = {k: v for k, v in os.environ.items() if k not in names}
        with mock.patch.dict(os.environ, clean, clear=True):
            opts = local_server.runtime_opts(local_server.parse_args([]))
        self.assertEqual((opts.idle_workers, opts.preload, opts.max_warm_workers), (2, (), 32))


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


class LocalServerKeyTest(unittest.TestCase):
    """Started with the stack's start-up key: only requests signed with it are served."""

    process: subprocess.Popen
    base: str
    key_id = "0123456789abcdef0123456789abcdef"

    @classmethod
    def setUpClass(cls) -> None:
        cls.process, cls.base = start_local_server({"CODING_ENV_LOCAL_ACCESS_KEY_ID": cls.key_id})

    @classmethod
    def tearDownClass(cls) -> None:
        stop_local_server(cls.process)

    def call(self, event: dict, key_id: str | None, tenant_id: str | None = None) -> tuple[int, dict, dict]:
        request = urllib.request.Request(
            f"{self.base}/2015-03-31/functions/coding-env-executor/invocations",
            data=json.dumps(event).encode(),
            method="POST",
        )
        if key_id is not None:
            request.add_header(
                "Authorization",
                f"AWS4-HMAC-SHA256 Credential={key_id}/20261202/local/lambda/aws4_request, "
                "SignedHeaders=host, Signature=00",
            )
        if tenant_id is not None:
            request.add_header("X-Amz-Tenant-Id", tenant_id)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read())

    def test_requests_without_the_key_are_refused_before_anything_runs(self) -> None:
        marker = f"/tmp/ce-key-test-{os.getpid()}"
        event = {"episode_id": "key-1", "code": f"open({marker!r}, 'w')", "policy": {"mode": "full"}}
        for key_id in (None, "AKIAIOSFODNN7EXAMPLE", self.key_id.upper(), self.key_id[:-1]):
            status, headers, body = self.call(event, key_id)
            self.assertEqual(status, 403, key_id)
            self.assertEqual(headers.get("x-amzn-ErrorType"), "UnrecognizedClientException")
            self.assertEqual(body["Type"], "User")
            self.assertIn("security token", body["message"])
        self.assertFalse(os.path.exists(marker))

    def test_the_key_is_accepted_and_never_reaches_user_code(self) -> None:
        event = {"episode_id": "key-2", "code": "import os\nsorted(os.environ.items())", "policy": {"mode": "full"}}
        status, headers, body = self.call(event, self.key_id)
        self.assertEqual(status, 200)
        self.assertNotIn("X-Amz-Function-Error", headers)
        self.assertNotIn(self.key_id, body["stdout"])
        self.assertNotIn("CODING_ENV_LOCAL_ACCESS_KEY_ID", body["stdout"])

    def test_the_tenant_header_is_the_invocation_tenant(self) -> None:
        event = {"episode_id": "key-3", "code": "1", "tenant_id": "tenant-a"}
        status, headers, body = self.call(event, self.key_id, tenant_id="tenant-a")
        self.assertEqual((status, headers.get("X-Amz-Function-Error")), (200, None))
        status, headers, body = self.call(event, self.key_id, tenant_id="tenant-b")
        self.assertEqual(headers.get("X-Amz-Function-Error"), "Unhandled")
        self.assertEqual(body["errorType"], "EventError")
        self.assertIn("tenant", body["errorMessage"])

    def test_discard_drops_the_episodes_warm_worker(self) -> None:
        step = {"episode_id": "key-4", "code": "x = 1"}
        _, _, first = self.call(step, self.key_id, tenant_id="t")
        _, _, other_tenant = self.call({"op": "discard", "episode_id": "key-4"}, self.key_id, tenant_id="u")
        self.assertEqual(other_tenant, {"contract_version": 1, "discarded": 0})
        _, _, dropped = self.call({"op": "discard", "episode_id": "key-4"}, self.key_id, tenant_id="t")
        self.assertEqual(dropped, {"contract_version": 1, "discarded": 1})
        _, _, after = self.call(
            {**step, "code": "x", "state_version": 1, "snapshot": first["snapshot"]}, self.key_id, tenant_id="t"
        )
        self.assertEqual((after["stdout"], after["warm"]), ("1", False))

    def test_a_request_above_six_megabytes_is_refused_as_lambda_does(self) -> None:
        status, headers, body = self.call({"episode_id": "big", "code": "1", "pad": "x" * (6 * 2**20)}, self.key_id)
        self.assertEqual(status, 413)
        self.assertEqual(headers.get("x-amzn-ErrorType"), "RequestEntityTooLargeException")
        self.assertIn("6291456", body["message"])
