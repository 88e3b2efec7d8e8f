"""One HTTP attempt over a kept-alive connection (http.client, one connection per thread), with
transport failures mapped to the SDK's errors. Retries are the client's business, not this one's."""

from __future__ import annotations

import builtins
import http.client
import threading
import urllib.parse
from dataclasses import dataclass

from .errors import CodingEnvError, NetworkError, TimeoutError

# Errors of a kept-alive connection the server closed while it was idle: nothing was processed.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class Transport:
    """Sends requests to ``base_url`` (http or https, with an optional path prefix such as an API
    Gateway stage). Safe to share between threads: each thread gets its own connection."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []

    def _new_connection(self, timeout_s: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=timeout_s)
        with self._lock:
            self._connections.append(conn)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout_s: float,
        *,
        reuse: bool,
        endpoint: str,
    ) -> RawResponse:
        """One request. ``reuse`` allows a kept-alive connection (and one immediate resend when
        the server had closed it while idle); calls that must never be sent twice pass False."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None) if reuse else None
        reused = conn is not None
        if conn is None:
            conn = self._new_connection(timeout_s)
            if reuse:
                self._local.conn = conn
        try:
            try:
                return self._exchange(conn, method, path, body, headers, timeout_s)
            except _STALE_CONNECTION:
                if not reused:
                    raise
                self._drop(conn)
                conn = self._new_connection(timeout_s)
                self._local.conn = conn
                return self._exchange(conn, method, path, body, headers, timeout_s)
        except CodingEnvError:
            raise
        except builtins.TimeoutError as exc:  # socket.timeout is this since Python 3.10
            self._drop(conn)
            raise TimeoutError(
                f"{endpoint} got no answer within {timeout_s:g} s",
                code="client_timeout",
                endpoint=endpoint,
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            self._drop(conn)
            reason = str(exc) or type(exc).__name__
            raise NetworkError(f"{endpoint} failed: {reason}", code="network_error", endpoint=endpoint) from exc
        finally:
            if not reuse:
                self._drop(conn)

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        timeout_s: float,
    ) -> RawResponse:
        conn.timeout = timeout_s
        if conn.sock is not None:
            conn.sock.settimeout(timeout_s)
        conn.request(method, self.prefix + path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return RawResponse(
            status=response.status,
            headers={k.lower(): v for k, v in response.getheaders()},
            body=data,
        )

    def close(self) -> None:
        """Closes every connection (any thread's)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def __del__(self) -> None:
        # A client dropped without close() (``CodingEnv(episode_id=...).state()``) frees its sockets.
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown: nothing left to free)
            pass
