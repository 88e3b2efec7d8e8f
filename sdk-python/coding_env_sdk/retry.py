"""When and how the SDK retries a failed call (the TypeScript SDK's policy, in seconds).

- Network errors, client timeouts and 5xx answers (503 included) are retried only for calls that
  are safe to repeat: reads, deletes, ``reset()`` (the SDK picks the episode id) and ``step()``
  (each carries a ``request_id``, reused by its retries; the server replays the stored result
  instead of running the code again).
- 409 (another step was running) and 429 (rate limit) mean nothing was done, so they are retried
  for every call, after the server's ``Retry-After``.
- A 409 ``step_in_progress`` whose details say ``same_request`` answers a retry while this step's
  first attempt still runs (maybe on another API instance): the SDK keeps sending the same
  ``request_id`` after ``Retry-After``, not counted in ``max_retries``, for at most
  ``retry_within_s`` (when that attempt's claim lapses), and gets the first attempt's result once it
  has committed. Only ``retry=False`` turns this off.

Example::

    env = CodingEnv(retry=RetryPolicy(max_retries=5, max_retry_after_s=10))
    strict = CodingEnv(retry=False)  # fail fast
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .errors import CodingEnvError, ConflictError, NetworkError, RateLimitError, ServerError, TimeoutError


@dataclass(frozen=True)
class RetryPolicy:
    """The retry policy; every field has a default.

    Attributes:
        max_retries: retries after the first attempt. Default 3.
        initial_delay_s: first backoff delay when the server gives no ``Retry-After``; doubled each
            retry, with jitter (at least half of it). Default 0.2.
        max_delay_s: largest backoff delay. Default 5.0.
        max_retry_after_s: longest ``Retry-After`` honoured; a longer one (a daily quota) raises at
            once. Default 30.0.
        retry_on_conflict: retry 409 (a concurrent step on the episode). Default True.
        retry_on_rate_limit: retry 429 (``rate_limited``, ``quota_exceeded``). Default True.
        retry_on_server_error: retry network errors, client timeouts and 5xx for calls safe to
            repeat. Default True.

    Example::

        RetryPolicy(max_retries=6, initial_delay_s=0.5)
    """

    max_retries: int = 3
    initial_delay_s: float = 0.2
    max_delay_s: float = 5.0
    max_retry_after_s: float = 30.0
    retry_on_conflict: bool = True
    retry_on_rate_limit: bool = True
    retry_on_server_error: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("initial_delay_s", "max_delay_s", "max_retry_after_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def delay_s(
        self,
        error: CodingEnvError,
        attempt: int,
        idempotent: bool,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up and raise.
        ``idempotent`` says whether the call may be repeated after a failure whose outcome is
        unknown (a network error, a 5xx).

        Example::

            RetryPolicy().delay_s(RateLimitError("slow down", status=429, retry_after_s=2), 0, True)  # 2
        """
        if attempt >= self.max_retries:
            return None
        backoff = min(self.max_delay_s, self.initial_delay_s * 2**attempt)
        # "Equal jitter": at least half the backoff, so retries spread out but never hammer.
        jittered = backoff / 2 + rand() * (backoff / 2)
        if isinstance(error, (ConflictError, RateLimitError)):
            allowed = self.retry_on_conflict if isinstance(error, ConflictError) else self.retry_on_rate_limit
            if not allowed:
                return None
            if error.retry_after_s is None:
                return jittered
            return error.retry_after_s if error.retry_after_s <= self.max_retry_after_s else None
        transient = isinstance(error, (NetworkError, TimeoutError)) or (
            isinstance(error, ServerError) and error.status >= 500
        )
        if not transient or not idempotent or not self.retry_on_server_error:
            return None
        if error.retry_after_s is not None:
            # A 503 with Retry-After: wait as asked (unless that is longer than we allow).
            return max(error.retry_after_s, jittered) if error.retry_after_s <= self.max_retry_after_s else None
        return jittered


def same_request_window_s(error: CodingEnvError) -> float | None:
    """For a 409 ``step_in_progress`` with ``details["same_request"]`` (this call's own
    ``request_id`` is running): for how many seconds from now retrying it may still be answered so;
    else None.

    Example::

        same_request_window_s(ConflictError("running", status=409, code="step_in_progress",
                              details={"same_request": True, "retry_within_s": 20}))  # 20.0
    """
    if not isinstance(error, ConflictError) or error.code != "step_in_progress":
        return None
    if error.details.get("same_request") is not True:
        return None
    seconds = error.details.get("retry_within_s")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        return None
    return float(seconds)


#: No retries at all (what ``retry=False`` means).
NO_RETRY = RetryPolicy(max_retries=0)
