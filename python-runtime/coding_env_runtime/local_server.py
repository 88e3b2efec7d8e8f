"""A local server speaking the Lambda Invoke API, so the API uses the real Lambda SDK client.

    python3 -m coding_env_runtime.local_server --host 127.0.0.1 --port 0

``--port 0`` picks a free port; once listening it prints exactly one line to stdout:
``LISTENING http://127.0.0.1:<port>``. Any function name is accepted. Function errors are
reported like Lambda: HTTP 200, header ``X-Amz-Function-Error: Unhandled``, body
``{"errorType", "errorMessage"}``.

When ``CODING_ENV_LOCAL_ACCESS_KEY_ID`` is set (the local stack makes one at start-up), every
request must be signed with that access key id (``Credential=<key id>/...`` in its
``Authorization`` header, what the AWS SDK sends); anything else is refused with 403
``UnrecognizedClientException``, as AWS refuses an unknown key. The variable is removed from
this process's environment once read, so nothing started later (the zygote) inherits it.

The Invoke parameter ``TenantId`` arrives as the ``X-Amz-Tenant-Id`` header (the SDK's
serialization) and is handed to the handler as ``context.tenant_id``, as Lambda does.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import handler as lambda_handler
from . import options
from .contract import EventError
from .reserved_concurrency import ReservedConcurrency
from .runtime import RuntimeOpts

_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations/?(\?.*)?$")
#: Lambda's synchronous request limit: "Request must be smaller than 6291456 bytes".
MAX_REQUEST_BYTES = 6 * 1024 * 1024
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def request_key_id(authorization: str | None) -> str | None:
    """The access key id of a SigV4 ``Authorization`` header, or None."""
    match = _CREDENTIAL.search(authorization or "")
    return match.group(1) if match else None


@dataclass(frozen=True)
class InvokeContext:
    """What the handler sees as ``context`` (the attributes our handler reads)."""

    tenant_id: str | None
    function_name: str
    aws_request_id: str = "local"


class InvokeApiHandler(BaseHTTPRequestHandler):
    """The Invoke API's HTTP surface: paths, size limit, key check, JSON check, error shapes.

    Subclasses implement :meth:`invoke_sync` (and may override :meth:`invoke_async`).
    ``server.expected_key_id`` is the required access key id (None: no check).
    """

    protocol_version = "HTTP/1.1"
    # Keep-alive + small responses: without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True
    server_version = "coding-env-local-lambda"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        return None

    def send_body(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
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

    def service_error(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None,
                      **extra: Any) -> None:
        """An AWS service error: ``x-amzn-ErrorType`` header, ``{"Type", "message"}`` body."""
        body = json.dumps({"Type": "User", "message": message, **extra}).encode()
        self.send_body(status, body, {"x-amzn-ErrorType": error_type, **(headers or {})})

    def send_empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self.service_error(404, "ResourceNotFoundException", "Only function invocation is served here")

    def _drain(self, length: int, most: int = 64 * 1024 * 1024) -> None:
        left = min(length, most)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)

    def _authorized(self) -> bool:
        expected = getattr(self.server, "expected_key_id", None)
        if expected is None:
            return True
        given = request_key_id(self.headers.get("Authorization"))
        return given is not None and hmac.compare_digest(given.encode(), expected.encode())

    def do_POST(self) -> None:  # noqa: N802
        match = _INVOKE_PATH.match(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_REQUEST_BYTES:
            self.close_connection = True
            self._drain(length)  # a client still sending its body would not read the answer
            self.service_error(
                413, "RequestEntityTooLargeException",
                f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation",
            )
            return
        body = self.rfile.read(length) if length else b""
        if not self._authorized():
            self.service_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
            return
        if match is None:
            self.service_error(404, "ResourceNotFoundException", f"Unknown path {self.path.split('?')[0]}")
            return
        try:
            event = json.loads(body or b"{}")
        except ValueError as exc:
            self.service_error(400, "InvalidRequestContentException", f"Could not parse request body into json: {exc}")
            return
        context = InvokeContext(tenant_id=self.headers.get("X-Amz-Tenant-Id") or None, function_name=match.group(1))
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            self.send_empty(204)
        elif invocation_type == "Event":
            self.invoke_async(event, body, context)
        else:
            self.invoke_sync(event, body, context)

    def invoke_sync(self, event: Any, body: bytes, context: InvokeContext) -> None:
        raise NotImplementedError

    def invoke_async(self, event: Any, body: bytes, context: InvokeContext) -> None:
        """Lambda answers 202 at once and runs the event later (errors only logged)."""
        threading.Thread(target=self.run_event, args=(event, body, context), daemon=True).start()
        self.send_empty(202)

    def run_event(self, event: Any, body: bytes, context: InvokeContext) -> None:
        raise NotImplementedError


class _InProcessInvokeHandler(InvokeApiHandler):
    """Runs the handler in this process (the runtime's zygote and workers sandbox user code).

    ``server.reserved`` (a :class:`ReservedConcurrency`, or None) emulates Lambda's reserved
    concurrency: past it an invocation is throttled, and ``/local/invocations`` reports the counts.
    """

    _REPORT_PATH = "/local/invocations"

    @property
    def reserved(self) -> ReservedConcurrency | None:
        return getattr(self.server, "reserved", None)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == self._REPORT_PATH and self.reserved is not None and self._authorized():
            self.send_body(200, json.dumps(self.reserved.report()).encode())
            return
        super().do_GET()

    def do_POST(self) -> None:  # noqa: N802
        if self.path == f"{self._REPORT_PATH}/reset-peaks" and self.reserved is not None:
            self._drain(int(self.headers.get("Content-Length") or 0))
            if not self._authorized():
                self.service_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
                return
            self.reserved.reset_peaks()
            self.send_empty(204)
            return
        super().do_POST()

    def invoke_sync(self, event: Any, body: bytes, context: InvokeContext) -> None:
        reserved = self.reserved
        if reserved is not None and not reserved.try_begin(context.tenant_id):
            self.service_error(429, "TooManyRequestsException", "Rate Exceeded.", {"Retry-After": "1"},
                               Reason="ReservedFunctionConcurrentInvocationLimitExceeded")
            return
        try:
            self._invoke_sync(event, context)
        finally:
            if reserved is not None:
                reserved.end(context.tenant_id)

    def _invoke_sync(self, event: Any, context: InvokeContext) -> None:
        ok, payload = self._call(event, context)
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if not ok:
            headers["X-Amz-Function-Error"] = "Unhandled"
        # Serialized as the Lambda runtime client would (the reply was sized for exactly this).
        self.send_body(200, lambda_handler.serialize_reply(payload), headers)

    def run_event(self, event: Any, body: bytes, context: InvokeContext) -> None:
        self._call(event, context)

    @staticmethod
    def _call(event: Any, context: InvokeContext) -> tuple[bool, dict[str, Any]]:
        try:
            return True, lambda_handler.handler(event, context)
        except EventError as exc:
            return False, {"errorType": "EventError", "errorMessage": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a runtime failure, reported as Lambda does
            traceback.print_exc(file=sys.stderr)  # the operator's log; the caller gets the summary
            return False, {"errorType": type(exc).__name__, "errorMessage": str(exc)}


def serve(server: ThreadingHTTPServer, on_stop: Any = None) -> None:
    """Print ``LISTENING``, serve until SIGTERM/SIGINT, then call ``on_stop``."""
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
        if on_stop is not None:
            on_stop()


def runtime_opts(args: argparse.Namespace) -> RuntimeOpts:
    """The runtime's options for this server's command line."""
    return RuntimeOpts(
        # Not root: user code must not reach this machine's services (the local DynamoDB, this
        # server) over 127.0.0.1; as root each worker has its own network namespace anyway.
        unprivileged_namespaces=os.geteuid() != 0,
        # Not root: /tmp is shared with the user's other programs, whose new files of the same uid
        # a scrub after each step would remove (as root, workers have private ones anyway).
        scrub_shared_dirs=os.geteuid() == 0,
        idle_workers=args.idle_workers,
        max_warm_workers=args.max_warm_workers,
        preload=options.module_list(args.preload),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The server's command line; ``--idle-workers``, ``--max-warm-workers`` and ``--preload``
    default to the executor's settings (``CODING_ENV_IDLE_WORKERS``,
    ``CODING_ENV_MAX_WARM_WORKERS``, ``CODING_ENV_PRELOAD``), so a stack's launcher can set them
    through its environment (a test stack: fewer spares to start and throw away when it closes)."""
    # A laptop keeps more warm workers than one Lambda environment, unless the setting says otherwise.
    from_environment = options.opts_from_environment(RuntimeOpts(max_warm_workers=32))
    parser = argparse.ArgumentParser(prog="python3 -m coding_env_runtime.local_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument(
        "--idle-workers", type=int, default=from_environment.idle_workers, help="pre-forked idle workers"
    )
    parser.add_argument(
        "--max-warm-workers",
        type=int,
        default=from_environment.max_warm_workers,
    )
    parser.add_argument(
        "--reserved-concurrency",
        type=int,
        default=0,
        help="emulate Lambda's reserved concurrency: at most this many invocations at once, "
        "then 429 TooManyRequestsException (0: no limit)",
    )
    parser.add_argument(
        "--preload",
        default=",".join(from_environment.preload),
        help="comma-separated modules the zygote imports once (e.g. numpy,pandas)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    expected_key_id = options.take_local_access_key_id()  # before the zygote starts

    lambda_handler.get_runtime(runtime_opts(args))
    server = ThreadingHTTPServer((args.host, args.port), _InProcessInvokeHandler)
    server.expected_key_id = expected_key_id  # type: ignore[attr-defined]
    server.reserved = ReservedConcurrency(args.reserved_concurrency) if args.reserved_concurrency > 0 else None  # type: ignore[attr-defined]
    serve(server, lambda_handler.shutdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
