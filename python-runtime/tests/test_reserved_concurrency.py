"""Lambda's reserved concurrency as the local Invoke-API server emulates it (``--reserved-concurrency``)."""

from __future__ import annotations

import json
import subprocess
import unittest
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from coding_env_runtime.reserved_concurrency import ReservedConcurrency
from tests.local_server_process import start_local_server, stop_local_server

KEY_ID = "reserved-concurrency-test-key"


def request(base: str, path: str, payload: bytes | None, tenant: str | None = None,
            key_id: str = KEY_ID) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"AWS4-HMAC-SHA256 Credential={key_id}/19700101/local/lambda/aws4_request"}
    if tenant is not None:
        headers["X-Amz-Tenant-Id"] = tenant
    req = urllib.request.Request(f"{base}{path}", data=payload, headers=headers,
                                 method="GET" if payload is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class ReservedConcurrencyCountsTest(unittest.TestCase):
    def test_throttles_past_the_limit_and_counts_per_tenant(self) -> None:
        limit = ReservedConcurrency(2)
        self.assertTrue(limit.try_begin("a"))
        self.assertTrue(limit.try_begin("a"))
        self.assertFalse(limit.try_begin("b"))
        limit.end("a")
        self.assertTrue(limit.try_begin("b"))
        report = limit.report()
        self.assertEqual(report["in_flight"], {"a": 1, "b": 1})
        self.assertEqual(report["peak"], {"a": 2, "b": 1})
        self.assertEqual(report["throttled"], {"b": 1})
        limit.reset_peaks()
        self.assertEqual(limit.report()["peak"], {"a": 1, "b": 1})

    def test_refuses_a_limit_below_one(self) -> None:
        with self.assertRaises(ValueError):
            ReservedConcurrency(0)


class ReservedConcurrencyServerTest(unittest.TestCase):
    process: subprocess.Popen
    base: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.process, cls.base = start_local_server({"CODING_ENV_LOCAL_ACCESS_KEY_ID": KEY_ID},
                                                   "--reserved-concurrency", "2")

    @classmethod
    def tearDownClass(cls) -> None:
        stop_local_server(cls.process)

    def test_more_invocations_than_reserved_are_throttled_as_lambda_does(self) -> None:
        def invoke(i: int) -> tuple[int, dict[str, str], bytes]:
            event = {"episode_id": f"rc-{i}", "state_version": 0, "snapshot": None,
                     "code": "import time\ntime.sleep(2)\nprint('ran')"}
            return request(self.base, "/2015-03-31/functions/f/invocations", json.dumps(event).encode(),
                           tenant="flooder")

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(invoke, range(6)))
        ran = [a for a in answers if a[0] == 200]
        throttled = [a for a in answers if a[0] == 429]
        self.assertEqual(len(ran) + len(throttled), 6)
        self.assertGreaterEqual(len(throttled), 1)
        for _, headers, body in throttled:
            self.assertEqual(headers.get("x-amzn-ErrorType"), "TooManyRequestsException")
            self.assertEqual(headers.get("Retry-After"), "1")
            self.assertEqual(json.loads(body)["Reason"], "ReservedFunctionConcurrentInvocationLimitExceeded")
        for _, _, body in ran:
            self.assertEqual(json.loads(body)["stdout"].strip(), "ran")
        status, _, body = request(self.base, "/local/invocations", None)
        self.assertEqual(status, 200)
        report = json.loads(body)
        self.assertEqual(report["reserved_concurrency"], 2)
        self.assertLessEqual(report["peak"]["flooder"], 2)
        self.assertEqual(report["throttled"]["flooder"], len(throttled))
        self.assertEqual(report["running"], 0)

    def test_the_report_needs_the_start_up_key(self) -> None:
        status, _, _ = request(self.base, "/local/invocations", None, key_id="someone-else")
        self.assertEqual(status, 404)
        status, _, _ = request(self.base, "/local/invocations/reset-peaks", b"", key_id="someone-else")
        self.assertEqual(status, 403)


if __name__ == "__main__":
    unittest.main()
