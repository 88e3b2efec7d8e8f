"""A local server speaking the Lambda Invoke API, so the API uses the real Lambda SDK client.

    python3 -m coding_env_runtime.local_server --host 127.0.0.1 --port 0

``--port 0`` picks a free port; once listening it prints exactly one line to stdout:
``LISTENING http://127.0.0.1:<port>``. Any function name is accepted. Function errors are
reported like Lambda: HTTP 200, header ``X-Amz-Function-Error: Unhandled``, body
``{"errorType", "errorMessage"}``.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import handler as lambda_handler
from .contract import EventError
from .runtime import RuntimeOpts

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations/?(\?.*)?$")
_MAX_BODY = 6 * 1024 * 1024 + 1024  # Lambda's synchronous payload limit (6 MB)


class _InvokeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Keep-alive + small responses: without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True
    server_version = "coding-env-local-lambda"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        return None

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        # Headers and body in one write (end_headers would send the headers on their own).
        self._headers_buffer.append(b"\r\n")
        response = b"".join(self._headers_buffer) + data
        self._headers_buffer = []
        self.wfile.write(response)

    def _service_error(self, status: int, error_type: str, message: str) -> None:
        self._send(status, {"Type": "User", "message": message}, {"x-amzn-ErrorType": error_type})

    def do_GET(self) -> None:  # noqa: N802
        self._service_error(404, "ResourceNotFoundException", "Only function invocation is served here")

    def do_POST(self) -> None:  # noqa: N802
        match = _INVOKE_PATH.match(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.close_connection = True
            self._service_error(413, "RequestTooLargeException", "Request must be smaller than 6291456 bytes")
            return
        body = self.rfile.read(length) if length else b""
        if match is None:
            self._service_error(404, "ResourceNotFoundException", f"Unknown path {self.path.split('?')[0]}")
            return
        try:
            event = json.loads(body or b"{}")
        except ValueError as exc:
            self._service_error(400, "InvalidRequestContentException", f"Could not parse request body into json: {exc}")
            return
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if invocation_type == "Event":
            threading.Thread(target=self._invoke, args=(event,), daemon=True).start()
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        ok, payload = self._invoke(event)
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if not ok:
            headers["X-Amz-Function-Error"] = "Unhandled"
        self._send(200, payload, headers)

    @staticmethod
    def _invoke(event: Any) -> tuple[bool, dict[str, Any]]:
        try:
            return True, lambda_handler.handler(event, None)
        except EventError as exc:
            return False, {"errorType": "EventError", "errorMessage": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a runtime failure, reported as Lambda does
            traceback.print_exc(file=sys.stderr)  # the operator's log; the caller gets the summary
            return False, {"errorType": type(exc).__name__, "errorMessage": str(exc)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m coding_env_runtime.local_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--idle-workers", type=int, default=2, help="pre-forked idle workers")
    parser.add_argument("--max-warm-workers", type=int, default=32)
    parser.add_argument(
        "--preload",
        default="",
        help="comma-separated modules the zygote imports once (e.g. numpy,pandas)",
    )
    args = parser.parse_args(argv)

    lambda_handler.get_runtime(
        RuntimeOpts(
            idle_workers=args.idle_workers,
            max_warm_workers=args.max_warm_workers,
            preload=tuple(m.strip() for m in args.preload.split(",") if m.strip()),
        )
    )
    server = ThreadingHTTPServer((args.host, args.port), _InvokeHandler)
    server.daemon_threads = True
    stopping = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"LISTENING http://{host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        lambda_handler.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
