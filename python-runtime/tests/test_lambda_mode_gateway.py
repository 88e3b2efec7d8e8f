"""The Lambda-mode harness's stand-in for the VPC's S3 gateway endpoint (harness/env_init.py):
with ``--s3-gateway http://127.0.0.1:<port>`` each environment reaches that one address of the
host (the local S3's) and nothing else of it; large states go through pre-signed URLs exactly as
in AWS. A small HTTP object server (tests/test_state_in_s3.py) plays the local S3 here; the real
one is exercised through the API in test/isolation/lambda-mode-s3.test.ts."""

from __future__ import annotations

import json
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.client import HarnessProcess
from harness.env_init import GATEWAY_MAX_CONNECTIONS
from harness.testing import FULL, UNAVAILABLE, LambdaModeTestCase

from .test_state_in_s3 import ObjectServer

#: User code's probe: connect to each port of 127.0.0.1, then try to listen on the first one.
PROBE = """
import json, socket
out = []
for port in {ports}:
    try:
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
        out.append('connected')
    except OSError as e:
        out.append(type(e).__name__)
try:
    s = socket.socket()
    s.bind(('127.0.0.1', {ports}[0]))
    out.append('bound')
except OSError as e:
    out.append(type(e).__name__)
print(json.dumps(out))
"""


class _OtherService:
    """Another service of the host on loopback (as the local DynamoDB is): it must stay unreachable."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class S3GatewayTestCase(LambdaModeTestCase):
    """A harness whose environments reach one object server through the S3 gateway stand-in, and a
    step whose state goes through pre-signed URLs of that server, as in AWS."""

    s3: ObjectServer

    @classmethod
    def setUpClass(cls) -> None:
        cls.s3 = ObjectServer()
        cls.harness_args = ("--s3-gateway", cls.s3.url)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls.s3.close()

    def presigned_url(self, ref: str) -> str:
        return f"{self.s3.url}/{ref}"

    def step(self, episode: str, version: int, code: str, get_ref: str | None, put_ref: str) -> dict[str, Any]:
        state: dict[str, Any] = {"put_url": self.presigned_url(put_ref), "put_ref": put_ref, "inline_max_bytes": 1024}
        if get_ref is not None:
            state.update(get_url=self.presigned_url(get_ref), get_ref=get_ref)
        return self.harness.step({
            "contract_version": 1, "episode_id": episode, "state_version": version, "code": code,
            "policy": FULL, "limits": {"timeout_ms": 60_000}, "state": state,
        })


class GatewayTest(S3GatewayTestCase):
    other: _OtherService

    @classmethod
    def setUpClass(cls) -> None:
        cls.other = _OtherService()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        cls.other.close()

    def s3_port(self) -> int:
        return self.s3.server.server_address[1]

    def test_user_code_reaches_the_local_s3_and_no_other_port_of_the_host(self) -> None:
        harness_port = int(self.harness.base.rsplit(":", 1)[1])
        ports = [self.s3_port(), self.other.port, harness_port]
        out = self.run_code(PROBE.format(ports=ports))
        self.assertEqual(out["exit_code"], 0, out["stderr"])
        # The S3 address answers; the other service and the Invoke endpoint do not exist here;
        # the S3 address cannot be taken over by user code (the stand-in holds it).
        self.assertEqual(json.loads(out["stdout"]), ["connected", "ConnectionRefusedError", "ConnectionRefusedError", "OSError"])

    def test_the_relay_holds_a_bounded_number_of_connections_whatever_user_code_opens(self) -> None:
        # Every connection is opened and held before any is used: past the cap the stand-in
        # closes the longest idle at once, so exactly the cap's worth reach the local S3. The
        # pause lets the stand-in accept them all first: a request served (and closed by the
        # HTTP/1.0 server) before the last accepts would free a slot and let one more through.
        code = f"""
import socket, time
socks = [socket.create_connection(('127.0.0.1', {self.s3_port()}), timeout=10) for _ in range({GATEWAY_MAX_CONNECTIONS + 40})]
time.sleep(1.0)
served = 0
for s in socks:
    try:
        s.sendall(b'GET /none HTTP/1.0\\r\\n\\r\\n')
        served += s.recv(12).startswith(b'HTTP/1.0 404')
    except OSError:
        pass
print(served)
"""
        out = self.run_code(code)
        self.assertEqual(out["exit_code"], 0, out["stderr"])
        self.assertEqual(out["stdout"], f"{GATEWAY_MAX_CONNECTIONS}\n")

    def test_a_large_state_goes_out_through_the_gateway_and_comes_back_in_another_episode(self) -> None:
        # A content digest, not hash(): another episode has its own hash seed.
        first = self.step(
            "gw-a", 0, "import hashlib, os\nblob = os.urandom(8 * 1024 * 1024)\ndigest = hashlib.sha256(blob).digest()", None, "gw-a1"
        )
        self.assertEqual(first["exit_code"], 0, first["stderr"])
        self.assertEqual((first["state_location"], first["snapshot"]), ("put", ""))
        self.assertGreater(len(self.s3.objects["/gw-a1"]), 8 * 1024 * 1024)
        # Another episode (no warm worker, no cached copy) restores from the object over the relay.
        second = self.step("gw-b", 0, "print(len(blob), digest == hashlib.sha256(blob).digest())", "gw-a1", "gw-b1")
        self.assertEqual(second["stdout"], f"{8 * 1024 * 1024} True\n", second["stderr"])
        self.assertIn(("GET", "/gw-a1"), self.s3.requests)


@unittest.skipIf(UNAVAILABLE is not None, UNAVAILABLE or "")
class NoGatewayTest(unittest.TestCase):
    def test_without_the_option_the_local_s3_is_out_of_reach_too(self) -> None:
        s3 = ObjectServer()
        try:
            with HarnessProcess(max_environments=1) as harness:
                port = s3.server.server_address[1]
                out = harness.step({"episode_id": "gw-none", "code": PROBE.format(ports=[port]), "policy": FULL})
        finally:
            s3.close()
        self.assertEqual(json.loads(out["stdout"])[0], "ConnectionRefusedError")


if __name__ == "__main__":
    unittest.main()
