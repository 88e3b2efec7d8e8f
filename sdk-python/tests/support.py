"""Test support: the running stack's URL, and a real HTTP proxy in front of it that can answer a
request itself (a 503, a 429, a gateway's HTML page), drop a connection, or page the history, so
the SDK's retries and paging are tested over real sockets against the real server."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import unittest
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def stack_url() -> str:
    """The local stack the tests run against (``CODING_ENV_URL``); skips the test without one."""
    url = os.environ.get("CODING_ENV_URL")
    if not url:
        raise unittest.SkipTest("set CODING_ENV_URL to a running coding-env stack (npm start)")
    return url


@dataclass
class Seen:
    """A request the proxy received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() on arrival
    #: Set once the request has been written to the upstream server (never for one the proxy answers).
    forwarded: bool = False
    #: The status the proxy answered with; None while it has not, or when it closed the connection.
    status: int | None = None


@dataclass
class Fault:
    """What the proxy does to the next request matching ``method`` and ``path`` (a prefix)."""

    method: str
    path: str
    #: "answer": reply with status/headers/body without forwarding; "drop": close the connection
    #: without forwarding; "forward_then_drop": forward, then close without replying.
    kind: str
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class FaultProxy:
    """A real HTTP/1.1 server forwarding to ``upstream``; faults apply once each, in order.

    With ``page_history`` on, it answers ``GET /episodes/{id}/history`` in the paged shape the API
    is gaining (``limit``, ``cursor`` → ``next_cursor``; a default page of 2) from the real history.
    """

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self.page_history = False
        self._lock = threading.Lock()
        # Notified whenever a request arrives or is forwarded (see wait_forwarded).
        self._changed = threading.Condition(self._lock)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                headers = {k.lower(): v for k, v in self.headers.items()}
                seen = Seen(self.command, self.path, headers, body, time.monotonic())
                with proxy._lock:
                    proxy.seen.append(seen)
                    proxy._changed.notify_all()
                    fault = next(
                        (f for f in proxy.faults if f.method == self.command and self.path.startswith(f.path)), None
                    )
                    if fault is not None:
                        proxy.faults.remove(fault)
                if fault is not None and fault.kind == "drop":
                    self.close_connection = True
                    return
                if fault is not None and fault.kind == "answer":
                    self._reply(seen, fault.status, fault.headers, fault.body)
                    return
                if proxy.page_history and self.command == "GET" and "/history" in self.path:
                    status, headers, data = proxy._paged_history(self.path, self.headers)
                else:
                    status, headers, data = proxy._forward(self.command, self.path, self.headers, raw, seen)
                if fault is not None and fault.kind == "forward_then_drop":
                    self.close_connection = True
                    return
                self._reply(seen, status, headers, data)

            def _reply(self, seen: Seen, status: int, headers: dict[str, str], data: bytes) -> None:
                with proxy._lock:
                    seen.status = status
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # shutdown() waits for the serving loop to look at its flag, which it does once per poll
        # interval: 0.5 s by default, half a second more for every test that uses a proxy.
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def requests(self, method: str, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and s.path.startswith(path)]

    def forget_requests(self) -> None:
        with self._lock:
            self.seen.clear()

    def wait_forwarded(self, method: str, path: str, count: int = 1, timeout_s: float = 60.0) -> None:
        """Waits until ``count`` requests matching ``method`` and ``path`` have been written to the
        upstream server: an observed point after which the server has them, however loaded the
        machine is (a fixed sleep is either too long or, under load, too short)."""

        def forwarded() -> bool:
            return sum(1 for s in self.seen if s.method == method and s.path.startswith(path) and s.forwarded) >= count

        with self._changed:
            if not self._changed.wait_for(forwarded, timeout_s):
                raise AssertionError(f"{count} x {method} {path} not forwarded within {timeout_s} s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _forward(
        self, method: str, path: str, headers: Any, raw: bytes, seen: Seen | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            forward = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, path, body=raw or None, headers=forward)
            if seen is not None:
                with self._changed:
                    seen.forwarded = True
                    self._changed.notify_all()
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def _paged_history(self, path: str, headers: Any) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(parts.query)
        status, reply_headers, data = self._forward("GET", parts.path, headers, b"")
        if status != 200:
            return status, reply_headers, data
        body = json.loads(data)
        start = int(query.get("cursor", ["c0"])[0][1:])
        limit = int(query.get("limit", ["2"])[0])
        steps = body["steps"][start : start + limit]
        end = start + len(steps)
        next_cursor = f"c{end}" if end < len(body["steps"]) else None
        paged = {"episode_id": body["episode_id"], "steps": steps, "next_cursor": next_cursor}
        return 200, {"Content-Type": "application/json"}, json.dumps(paged).encode()
