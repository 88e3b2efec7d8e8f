"""Large state through pre-signed URLs: the handler (runtime parent) reads the input state from a
GET URL and writes a large new one to a PUT URL; the reply carries neither. A tiny HTTP object
server stands in for S3 here (the local S3 server is exercised by test/store/s3-state.test.ts)."""

from __future__ import annotations

import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from coding_env_runtime import handler


class ObjectServer:
    """PUT stores the body under the path, GET returns it; counts requests per method."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.refuse_puts = False
        store = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                store.requests.append(("GET", self.path))
                body = store.objects.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:  # noqa: N802
                store.requests.append(("PUT", self.path))
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if store.refuse_puts:
                    self.send_response(403)
                else:
                    store.objects[self.path] = body
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StateInS3Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.s3 = ObjectServer()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.s3.close()
        handler.shutdown()

    def step(
        self, episode: str, version: int, code: str, get_ref: str | None, put_ref: str, timeout_ms: int = 60_000
    ) -> dict[str, Any]:
        state: dict[str, Any] = {"put_url": f"{self.s3.url}/{put_ref}", "put_ref": put_ref, "inline_max_bytes": 1024}
        if get_ref is not None:
            state.update(get_url=f"{self.s3.url}/{get_ref}", get_ref=get_ref)
        event = {
            "contract_version": 1,
            "episode_id": episode,
            "state_version": version,
            "code": code,
            "policy": {"mode": "full"},
            "limits": {"timeout_ms": timeout_ms},
            "state": state,
        }
        return handler.handler(event)

    def test_a_large_state_goes_to_the_put_url_and_comes_back_from_the_get_url(self) -> None:
        first = self.step("ep_s3_a", 0, "import os\nblob = os.urandom(3 * 1024 * 1024)", None, "a1")
        self.assertEqual(first["exit_code"], 0, first["stderr"])
        self.assertEqual((first["state_location"], first["snapshot"]), ("put", ""))
        self.assertGreater(len(self.s3.objects["/a1"]), 3 * 1024 * 1024)
        # Another executor (no cache, no warm worker) restores it from the object.
        handler.get_runtime().discard("default", "ep_s3_a")
        handler._state_cache.forget("default", "ep_s3_a")
        gets = sum(1 for method, _ in self.s3.requests if method == "GET")
        second = self.step("ep_s3_a", 1, "print(len(blob))", "a1", "a2")
        self.assertEqual(second["stdout"], f"{3 * 1024 * 1024}\n", second["stderr"])
        self.assertEqual(sum(1 for method, _ in self.s3.requests if method == "GET"), gets + 1)

    def test_a_step_on_the_state_this_executor_wrote_reads_nothing(self) -> None:
        self.step("ep_s3_b", 0, "import os\nblob = os.urandom(2 * 1024 * 1024)", None, "b1")
        requests = len(self.s3.requests)
        second = self.step("ep_s3_b", 1, "print(len(blob))", "b1", "b2")
        self.assertTrue(second["warm"])
        self.assertNotIn(("GET", "/b1"), self.s3.requests[requests:])

    def test_a_timed_out_step_keeps_the_input_state_and_writes_nothing(self) -> None:
        self.step("ep_s3_c", 0, "import os\nblob = os.urandom(2 * 1024 * 1024)", None, "c1")
        failed = self.step("ep_s3_c", 1, "blob = b''\nwhile True: pass", "c1", "c2", timeout_ms=300)
        self.assertEqual((failed["exit_code"], failed["state_location"], failed["snapshot"]), (1, "input", ""))
        self.assertNotIn("/c2", self.s3.objects)

    def test_a_small_state_stays_inline(self) -> None:
        small = self.step("ep_s3_d", 0, "x = 1", None, "d1")
        self.assertEqual(small["state_location"], "inline")
        self.assertNotEqual(small["snapshot"], "")
        self.assertNotIn("/d1", self.s3.objects)

    def test_a_state_that_cannot_be_written_fails_the_step_with_the_input_state(self) -> None:
        self.s3.refuse_puts = True
        try:
            out = self.step("ep_s3_e", 0, "import os\nblob = os.urandom(2 * 1024 * 1024)", None, "e1")
        finally:
            self.s3.refuse_puts = False
        self.assertEqual((out["exit_code"], out["error_code"], out["state_location"]), (1, "state_save_failed", "input"))
        self.assertIn("could not be saved", out["stderr"])


if __name__ == "__main__":
    unittest.main()
