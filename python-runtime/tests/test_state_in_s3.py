"""Large state through pre-signed URLs: the handler (runtime parent) reads the input state from a
GET URL and writes a large new one to a PUT URL; the reply carries neither. A tiny HTTP object
server stands in for S3 here (the local S3 server is exercised by test/store/s3-state.test.ts)."""

from __future__ import annotations

import base64
import hashlib
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from coding_env_runtime import handler
from coding_env_runtime.contract import EventError


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
        self,
        episode: str,
        version: int,
        code: str,
        get_ref: str | None,
        put_ref: str,
        timeout_ms: int = 60_000,
        snapshot: str | None = None,
        **state_fields: Any,
    ) -> dict[str, Any]:
        state: dict[str, Any] = {"put_url": f"{self.s3.url}/{put_ref}", "put_ref": put_ref, "inline_max_bytes": 1024}
        if get_ref is not None:
            state.update(get_url=f"{self.s3.url}/{get_ref}", get_ref=get_ref)
        state.update(state_fields)
        event = {
            "contract_version": 1,
            "episode_id": episode,
            "state_version": version,
            "code": code,
            "policy": {"mode": "full"},
            "limits": {"timeout_ms": timeout_ms},
            "state": state,
            **({"snapshot": snapshot} if snapshot is not None else {}),
        }
        return handler.handler(event)

    def forget(self, episode: str) -> None:
        """Another executor's view: no warm worker, no cached copy."""
        handler.get_runtime().discard("default", episode)
        handler._state_cache.forget("default", episode)

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


    def test_a_written_object_is_raw_bytes_with_the_reported_size_and_sha256(self) -> None:
        out = self.step("ep_s3_f", 0, "import os\nblob = os.urandom(2 * 1024 * 1024)", None, "f1")
        body = self.s3.objects["/f1"]
        self.assertEqual(body[:4], b"CENV")  # the envelope itself: no base64 on this path
        self.assertEqual((out["state_ref"], out["state_bytes"]), ("f1", len(body)))
        self.assertEqual(out["state_sha256"], hashlib.sha256(body).hexdigest())

    def test_an_object_that_is_not_the_one_recorded_is_refused_before_any_code_runs(self) -> None:
        out = self.step("ep_s3_g", 0, "import os\nblob = os.urandom(2 * 1024 * 1024)", None, "g1")
        self.forget("ep_s3_g")
        self.s3.objects["/g1"] = self.s3.objects["/g1"][:-1] + b"\0"
        with self.assertRaises(EventError) as refused:
            self.step("ep_s3_g", 1, "print('ran')", "g1", "g2", get_bytes=out["state_bytes"], get_sha256=out["state_sha256"])
        self.assertIn("SHA-256", str(refused.exception))
        with self.assertRaises(EventError):
            self.step("ep_s3_g", 1, "print('ran')", "g1", "g2", get_bytes=out["state_bytes"] + 1)
        self.assertNotIn("/g2", self.s3.objects)

    def test_a_state_over_max_bytes_is_refused_and_nothing_is_written(self) -> None:
        self.step("ep_s3_h", 0, "kept = 1", None, "h1", max_bytes=1024 * 1024)
        out = self.step("ep_s3_h", 1, "import os\nblob = os.urandom(2 * 1024 * 1024)", None, "h2", max_bytes=1024 * 1024)
        self.assertEqual((out["exit_code"], out["error_code"], out["state_location"]), (1, "state_too_large", "input"))
        self.assertIn("MemoryError", out["stderr"])
        self.assertGreater(out["snapshot_bytes"], 2 * 1024 * 1024)
        self.assertNotIn("/h2", self.s3.objects)

    def test_a_warm_step_that_changes_nothing_writes_no_object(self) -> None:
        self.step("ep_s3_i", 0, "import os\nblob = os.urandom(2 * 1024 * 1024)", None, "i1")
        out = self.step("ep_s3_i", 1, "print(len(blob))", "i1", "i2")
        self.assertEqual((out["state_location"], out["warm"]), ("input", True))
        self.assertNotIn("/i2", self.s3.objects)
        # The next step names the same object again: still warm, nothing read.
        gets = sum(1 for method, _ in self.s3.requests if method == "GET")
        again = self.step("ep_s3_i", 2, "blob = blob[:10]", "i1", "i3")
        self.assertTrue(again["warm"])
        self.assertEqual(again["state_location"], "inline")
        self.assertEqual(sum(1 for method, _ in self.s3.requests if method == "GET"), gets)

    def test_an_inline_state_stays_warm_on_the_s3_path(self) -> None:
        first = self.step("ep_s3_j", 0, "x = 41", None, "j1")
        self.assertEqual(first["state_location"], "inline")
        second = self.step("ep_s3_j", 1, "x += 1\nprint(x)", None, "j2", snapshot=first["snapshot"])
        self.assertEqual((second["stdout"], second["warm"]), ("42\n", True))

    def test_files_of_a_state_in_s3_are_listed_and_a_large_written_state_goes_to_the_put_url(self) -> None:
        self.step("ep_s3_k", 0, "import os\nblob = os.urandom(2 * 1024 * 1024)\nopen('a.txt', 'w').write('hi')", None, "k1")
        self.forget("ep_s3_k")
        state = {"get_url": f"{self.s3.url}/k1", "get_ref": "k1", "put_url": f"{self.s3.url}/k2", "put_ref": "k2"}
        listed = handler.handler({"op": "files", "episode_id": "ep_s3_k", "action": "list", "state": state})
        self.assertEqual(listed["files"], [{"path": "a.txt", "size": 2}])
        written = handler.handler(
            {"op": "files", "episode_id": "ep_s3_k", "action": "write", "path": "b.txt",
             "content_base64": base64.b64encode(b"new").decode(), "state": state}
        )
        self.assertEqual((written["state_location"], written["snapshot"]), ("put", ""))
        self.assertEqual(written["state_sha256"], hashlib.sha256(self.s3.objects["/k2"]).hexdigest())


if __name__ == "__main__":
    unittest.main()
