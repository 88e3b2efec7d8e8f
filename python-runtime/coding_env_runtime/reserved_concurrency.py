"""Lambda's reserved concurrency, emulated by the local Invoke-API server (off by default).

With ``--reserved-concurrency R`` the server runs at most R synchronous invocations at once, as a
Lambda function with R reserved concurrency does; one more is refused with Lambda's throttle
(HTTP 429 ``TooManyRequestsException``, reason ``ReservedFunctionConcurrentInvocationLimitExceeded``)
and never runs. It also counts, per tenant (the Invoke's ``TenantId``), the invocations in flight,
their peak and the throttles, which ``GET /local/invocations`` reports (the stack's tests assert
how much of the executor one tenant held); ``POST /local/invocations/reset-peaks`` starts the
peaks again from the invocations in flight.
"""

from __future__ import annotations

import threading
from typing import Any


class ReservedConcurrency:
    """At most ``limit`` invocations at once, with per-tenant counts."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("reserved concurrency must be >= 1")
        self.limit = limit
        self._lock = threading.Lock()
        self._running = 0
        self._in_flight: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        self._throttled: dict[str, int] = {}

    def try_begin(self, tenant_id: str | None) -> bool:
        """Counts one invocation in, or returns False (throttled) when ``limit`` are running."""
        tenant = tenant_id or ""
        with self._lock:
            if self._running >= self.limit:
                self._throttled[tenant] = self._throttled.get(tenant, 0) + 1
                return False
            self._running += 1
            now = self._in_flight.get(tenant, 0) + 1
            self._in_flight[tenant] = now
            self._peak[tenant] = max(self._peak.get(tenant, 0), now)
            return True

    def end(self, tenant_id: str | None) -> None:
        tenant = tenant_id or ""
        with self._lock:
            self._running -= 1
            left = self._in_flight.get(tenant, 1) - 1
            if left > 0:
                self._in_flight[tenant] = left
            else:
                self._in_flight.pop(tenant, None)

    def reset_peaks(self) -> None:
        with self._lock:
            self._peak = dict(self._in_flight)

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "reserved_concurrency": self.limit,
                "running": self._running,
                "in_flight": dict(self._in_flight),
                "peak": dict(self._peak),
                "throttled": dict(self._throttled),
            }
