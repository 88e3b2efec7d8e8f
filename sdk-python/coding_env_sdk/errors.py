"""The SDK's one error hierarchy, mirroring the TypeScript SDK (``sdk/src/errors.ts``).

Every error the API answers (its one shape, ``{"error": {"code", "message", "details"}}``) becomes a
:class:`CodingEnvError` subclass chosen by HTTP status. A failing *cell* is never raised: a Python
exception in user code is data in the step's observation (``exit_code`` 1, traceback in ``stderr``).

Example::

    from coding_env_sdk import CodingEnv, NotFoundError

    env = CodingEnv(episode_id="ep_gone")
    try:
        env.state()
    except NotFoundError as err:
        print(err.status, err.code)  # 404 episode_not_found
"""

from __future__ import annotations

import builtins
import email.utils
import time
from typing import Any


class CodingEnvError(Exception):
    """Base class of every error the SDK raises.

    Attributes:
        message: the API's message (or the SDK's).
        status: HTTP status, or 0 when no response was received.
        code: the API's machine-readable code (``episode_not_found``, ``conflict``...) or an SDK
            code (``network_error``, ``client_timeout``, ``client_closed``, ``episode_required``,
            ``http_<status>`` for a body that is not the API's shape, e.g. a gateway's).
        details: the API's ``details`` object (quota name, validation errors in ``details["detail"]``).
        retry_after_s: seconds the server asked to wait (``Retry-After``), when it did.
        endpoint: the failed call, e.g. ``"POST /step"``.

    Example::

        try:
            env.step("print(1)")
        except CodingEnvError as err:
            print(err.status, err.code, err.message)
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "error",
        details: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after_s = retry_after_s
        self.endpoint = endpoint

    def __str__(self) -> str:
        where = f" ({self.endpoint})" if self.endpoint and not self.message.startswith(self.endpoint) else ""
        status = f"{self.status} " if self.status else ""
        return f"{status}{self.code}: {self.message}{where}"


class BadRequestError(CodingEnvError):
    """The request was malformed or of the wrong shape: 400 (``bad_request``, ``invalid_json``,
    ``episode_required``), 405, 413 (``payload_too_large``, ``state_too_large``), 415 and 422
    (``validation_error``; FastAPI's ``detail`` list is in ``details["detail"]``).

    Example::

        try:
            env.reset(step_timeout_s=10**9)
        except BadRequestError as err:
            print(err.status, err.details.get("detail"))  # 422 [...]
    """


class AuthError(CodingEnvError):
    """Missing, wrong or revoked API key (401) or a forbidden call (403).

    Example::

        try:
            CodingEnv(api_key="wrong").reset()
        except AuthError as err:
            print(err.code)  # "unauthorized" on a server with keys on
    """


class NotFoundError(CodingEnvError):
    """The episode (or route) does not exist: unknown, expired, deleted or another tenant's (404).

    Example::

        try:
            CodingEnv(episode_id="nope").state()
        except NotFoundError as err:
            print(err.code)  # "episode_not_found"
    """


class ConflictError(CodingEnvError):
    """Another step on the same episode was running (409); the episode is unchanged. Retried by
    default after ``Retry-After``.

    Example::

        env = CodingEnv(retry=RetryPolicy(retry_on_conflict=False))
        # two concurrent steps on one episode: one of them raises ConflictError
    """


class RateLimitError(CodingEnvError):
    """A quota or rate limit was hit (429). ``retry_after_s`` says when to try again;
    ``details["quota"]`` and ``details["resets_at"]`` name the quota.

    Example::

        try:
            env.step("print(1)")
        except RateLimitError as err:
            print(err.details.get("quota"), err.retry_after_s)
    """


# Named like the TypeScript SDK's; it subclasses the built-in, so `except TimeoutError` catches both.
class TimeoutError(CodingEnvError, builtins.TimeoutError):  # noqa: A001
    """The executor did not answer in time (504 ``executor_timeout``, 408) or the SDK gave up
    waiting (``timeout_s``; code ``client_timeout``, status 0). It is also a built-in
    :class:`TimeoutError`. A cell that hits its own time limit is not an error: it is data
    (``exit_code`` 1, ``info.timed_out`` True).

    Example::

        env = CodingEnv(timeout_s=1, retry=False)
        try:
            env.step("import time; time.sleep(5)")
        except TimeoutError as err:
            print(err.code)  # "client_timeout"
    """


class ServerError(CodingEnvError):
    """The server failed: 500 ``internal_error``, 502 ``executor_error``, 503, any other 5xx, or a
    200 whose body is not what the endpoint answers (code ``invalid_response``).

    Example::

        try:
            env.step("print(1)")
        except ServerError as err:
            print(err.status, err.code)  # e.g. 502 executor_error
    """


class NetworkError(CodingEnvError, ConnectionError):
    """No response was received: connection refused, reset or dropped (status 0, code
    ``network_error``). It is also a built-in :class:`ConnectionError`. Steps are retried safely
    after these because each carries a ``request_id``.

    Example::

        try:
            CodingEnv(base_url="http://127.0.0.1:1", retry=False).health()
        except NetworkError as err:
            print(err.code)  # "network_error"
    """


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Parses a ``Retry-After`` header (delta-seconds or an HTTP date) into seconds.

    Example::

        parse_retry_after("2")    # 2.0
        parse_retry_after(None)   # None
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))
    return seconds if seconds >= 0 else None


def _class_for_status(status: int) -> type[CodingEnvError]:
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status == 429:
        return RateLimitError
    if status in (408, 504):
        return TimeoutError
    if status >= 500:
        return ServerError
    if status >= 400:
        return BadRequestError
    return CodingEnvError


def error_from_response(
    status: int, body: Any, retry_after: str | None = None, endpoint: str | None = None
) -> CodingEnvError:
    """Builds the right :class:`CodingEnvError` subclass from an HTTP status, the parsed body (the
    API's error shape, or anything a proxy may answer) and the ``Retry-After`` header.

    Example::

        err = error_from_response(404, {"error": {"code": "episode_not_found", "message": "gone"}})
        isinstance(err, NotFoundError)  # True
    """
    cls = _class_for_status(status)
    retry_after_s = parse_retry_after(retry_after)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str):
        details = dict(error.get("details") or {}) if isinstance(error.get("details"), dict) else {}
        if "detail" in body:
            details["detail"] = body["detail"]
        return cls(
            error["message"],
            status=status,
            code=error["code"],
            details=details,
            retry_after_s=retry_after_s,
            endpoint=endpoint,
        )
    # Not our shape: a gateway or proxy answered (e.g. API Gateway's {"message": "..."}).
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    elif isinstance(body, str) and 0 < len(body) < 500:
        message = body
    else:
        message = f"HTTP {status}"
    return cls(message, status=status, code=f"http_{status}", retry_after_s=retry_after_s, endpoint=endpoint)
