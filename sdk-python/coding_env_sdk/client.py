"""``CodingEnv``: a client bound to one coding-env episode, shaped like OpenEnv's ``CodingEnv``
(``reset()``, ``step()``, ``state()``, ``close()``) plus ``fork()``, ``history()`` and ``delete()``.

Example::

    from coding_env_sdk import CodingEnv

    with CodingEnv() as env:  # CODING_ENV_URL, else http://localhost:8000
        env.reset()
        result = env.step("x = 5 + 3\\nprint(f'Result: {x}')")
        print(result.observation.stdout)  # Result: 8
    # leaving the block deleted the episode
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import __version__
from ._transport import RawResponse, Transport
from .errors import BadRequestError, CodingEnvError, NotFoundError, ServerError, error_from_response
from .models import CodeAction, CodeState, Health, History, HistoryStep, ImportPolicy, StepResult
from .retry import NO_RETRY, RetryPolicy, same_request_window_s

#: Used when neither ``base_url=`` nor ``CODING_ENV_URL`` is given.
DEFAULT_BASE_URL = "http://localhost:8000"
#: Per-request time limit in seconds when ``timeout_s=`` is not given.
DEFAULT_TIMEOUT_S = 60.0
#: Added to a step's own limit for the round trip, so the server's answer arrives before ours.
STEP_TIMEOUT_MARGIN_S = 15.0
#: Steps per request when ``iter_history()`` pages through a trajectory.
DEFAULT_HISTORY_PAGE_SIZE = 100


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class CodingEnv:
    """A client bound to one coding-env episode. Thread-safe: each thread gets its own kept-alive
    connection (steps on one episode are serialized by the server; await each when order matters).

    Args:
        base_url: the server's URL. Default: env ``CODING_ENV_URL``, else ``http://localhost:8000``.
        api_key: sent as ``Authorization: Bearer <key>`` (hosted mode). Default: env
            ``CODING_ENV_API_KEY``, else none.
        episode_id: bind to an existing episode instead of calling ``reset()`` first. Default none.
        timeout_s: per-request time limit in seconds (each attempt). A step's limit is raised to
            its own ``timeout_s`` (or the episode's ``step_timeout_s``) plus 15 s when longer.
            Default 60.
        retry: a :class:`RetryPolicy`, or False for no retries. Default ``RetryPolicy()`` (3
            retries, backoff 0.2 s to 5 s, ``Retry-After`` honoured up to 30 s).
        headers: extra headers sent on every request (e.g. a tracing header). Default none.

    Example::

        env = CodingEnv("http://localhost:8000", timeout_s=30)
        again = CodingEnv(episode_id="ep_123")  # bind to an existing episode
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        episode_id: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        url = base_url or os.environ.get("CODING_ENV_URL") or DEFAULT_BASE_URL
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self._transport = Transport(url)
        self.base_url = url.rstrip("/")
        self.timeout_s = float(timeout_s)
        if retry is False:
            self.retry = NO_RETRY
        elif retry is None or retry is True:
            self.retry = RetryPolicy()
        else:
            self.retry = retry
        self._api_key = api_key if api_key is not None else os.environ.get("CODING_ENV_API_KEY") or None
        self._extra_headers = dict(headers or {})
        self._episode_id = episode_id
        self._step_timeout_s: float | None = None
        self._closed = False
        #: On a client returned by ``fork()``, the fork call's result; otherwise None.
        self.fork_result: StepResult | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"episode_id={self._episode_id!r}"
        return f"CodingEnv(base_url={self.base_url!r}, {state})"

    @property
    def episode_id(self) -> str | None:
        """The bound episode's id; None before ``reset()`` and after ``delete()``/``close()``.

        Example::

            env.reset()
            env.episode_id  # "ep_…"
        """
        return self._episode_id

    # ---- OpenEnv's calls -------------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | None = None,
        episode_id: str | None = None,
        policy: ImportPolicy | None = None,
        additional_imports: Sequence[str] | None = None,
        step_timeout_s: float | None = None,
        ttl_s: float | None = None,
    ) -> StepResult:
        """Starts a new episode (fresh Python state, ``step_count`` 0) and binds this client to
        it. The previous episode, if any, stays on the server until its TTL (``delete()`` first to
        remove it).

        Args:
            seed: recorded with the episode (OpenEnv's ``seed``). Default none.
            episode_id: the new episode's id (``[A-Za-z0-9._:-]``, 1..255); one of yours with that id
                is replaced. Default a random ``ep_<uuid>`` chosen here, so a retried reset is harmless.
            policy: ``"openenv"`` (the reference's import allow-list) or ``"full"`` (all of Python).
                Default ``"openenv"``.
            additional_imports: module names added to the allow-list. Default none.
            step_timeout_s: the episode's per-step limit in seconds (``state()`` reports it).
                Default the deployment's: 30 s locally (``CODING_ENV_DEFAULT_STEP_TIMEOUT_S``), 20 s
                in AWS (the ``defaultStepTimeoutSeconds`` context; 20 s is also AWS's maximum).
            ttl_s: idle seconds before the episode expires. Default 86 400.

        Example::

            result = env.reset(policy="full", step_timeout_s=10)
            result.episode_id, result.observation.exit_code  # ("ep_…", 0)
        """
        self._assert_open()
        body: dict[str, Any] = {"episode_id": episode_id or _new_id("ep_")}
        for key, value in (
            ("seed", seed),
            ("policy", policy),
            ("additional_imports", list(additional_imports) if additional_imports is not None else None),
            ("step_timeout_s", step_timeout_s),
            ("ttl_s", ttl_s),
        ):
            if value is not None:
                body[key] = value
        # Idempotent: the id is chosen here, so a retried reset replaces the same episode.
        response = self._request("POST", "/reset", body, idempotent=True)
        result = self._step_result(response, "POST /reset")
        self._episode_id = result.episode_id
        self._step_timeout_s = step_timeout_s
        return result

    def step(
        self,
        action: str | CodeAction | Mapping[str, Any] | Any,
        *,
        timeout_s: float | None = None,
        request_id: str | None = None,
    ) -> StepResult:
        """Runs one cell of Python in the episode. A failing cell is data, not an exception:
        ``observation.exit_code`` is 1 and ``observation.stderr`` holds the traceback. Retries
        (network errors, 5xx, 409, 429) reuse the step's ``request_id``, so the code runs once.

        Args:
            action: the code, a :class:`CodeAction` (or OpenEnv's: any object with a str ``code``
                and optional ``metadata``), or a mapping ``{"code": ..., "metadata": ...}``.
            timeout_s: this step's limit in seconds, capped by the server at the episode's limit.
                Default the episode's.
            request_id: idempotency key; a step sent again with the same id returns the stored
                result without running the code again. Default a fresh random id per call.

        Example::

            env.step("import math")
            r = env.step(CodeAction("math.pi"), timeout_s=5)
            r.observation.stdout, r.reward  # ("3.141592653589793", 0.1)
        """
        episode_id = self._require_episode("step")
        if isinstance(action, str):
            wire_action = CodeAction(action).to_wire()
        elif isinstance(action, CodeAction):
            wire_action = action.to_wire()
        elif isinstance(action, Mapping) and isinstance(action.get("code"), str):
            wire_action = dict(action)
        elif isinstance(getattr(action, "code", None), str):  # OpenEnv's own CodeAction, say
            wire_action = CodeAction(action.code, dict(getattr(action, "metadata", None) or {})).to_wire()
        else:
            raise TypeError("action must be a str, a CodeAction (or any object with a str .code) or a mapping")
        body: dict[str, Any] = {
            "action": wire_action,
            "request_id": request_id or _new_id("req_"),
            "episode_id": episode_id,
        }
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        step_limit_s = timeout_s if timeout_s is not None else self._step_timeout_s
        attempt_timeout_s = self.timeout_s
        if step_limit_s is not None:
            attempt_timeout_s = max(attempt_timeout_s, step_limit_s + STEP_TIMEOUT_MARGIN_S)
        response = self._request("POST", "/step", body, idempotent=True, timeout_s=attempt_timeout_s)
        return self._step_result(response, "POST /step")

    def state(self) -> CodeState:
        """The episode's state: OpenEnv's ``episode_id``, ``step_count``, ``last_exit_code`` plus
        its policy, limits and timestamps.

        Example::

            s = env.state()
            s.step_count, s.last_exit_code  # (2, 0)
        """
        episode_id = self._require_episode("state")
        response = self._request("GET", f"/state?episode_id={urllib.parse.quote(episode_id, safe='')}")
        return CodeState.from_wire(self._json_object(response, "GET /state"))

    # ---- coding-env's calls ----------------------------------------------------------------

    def fork(self) -> CodingEnv:
        """Copies the episode (Python state, settings and history) into a new episode and returns
        a client bound to the copy; the two evolve independently. The new client has the same
        options; its ``fork_result`` holds the fork's answer (``episode_id``, ``forked_from``).

        Example::

            env.step("x = 1")
            branch = env.fork()
            branch.step("x = 2")
            env.step("x").observation.stdout  # "1"
        """
        episode_id = self._require_episode("fork")
        # Not idempotent (each call makes a new episode): retried only on 409/429, which commit nothing.
        response = self._request("POST", f"/episodes/{self._quote(episode_id)}/fork", {}, idempotent=False)
        result = self._step_result(response, "POST /episodes/{id}/fork")
        forked = CodingEnv(
            self.base_url,
            self._api_key,
            episode_id=result.episode_id,
            timeout_s=self.timeout_s,
            retry=self.retry,
            headers=self._extra_headers,
        )
        forked._step_timeout_s = self._step_timeout_s
        forked.fork_result = result
        return forked

    def files(self) -> list[EpisodeFile]:
        """The files of the episode's working directory (part of its state: they persist across
        steps, restarts and forks), sorted by path.

        Example::

            env.step("open('out.txt', 'w').write('hi')")
            [f.path for f in env.files()]  # ['out.txt']
        """
        episode_id = self._require_episode("files")
        body = self._json_object(self._request("GET", f"/episodes/{self._quote(episode_id)}/files"), "GET files")
        return [EpisodeFile(str(f["path"]), int(f["size"])) for f in body.get("files") or []]

    def read_file(self, path: str) -> bytes:
        """One file of the episode's directory, as bytes (``.decode()`` for text).

        Example::

            data = env.read_file("out/result.csv").decode()
        """
        episode_id = self._require_episode("read_file")
        return self._request("GET", f"/episodes/{self._quote(episode_id)}/files/{_file_path(path)}").body

    def write_file(self, path: str, content: str | bytes) -> FileWritten:
        """Writes one file into the episode's directory (text as UTF-8, or bytes); the next step
        sees it. The upload is committed as the episode's next version, like a step.

        Example::

            env.write_file("data/input.txt", "1 2 3")
            env.step("open('data/input.txt').read()")
        """
        episode_id = self._require_episode("write_file")
        if isinstance(content, str):
            body: dict[str, str] = {"content": content}
        else:
            body = {"content": base64.b64encode(bytes(content)).decode("ascii"), "encoding": "base64"}
        # Each upload adds a version: retried only on 409/429, which commit nothing.
        response = self._request(
            "PUT", f"/episodes/{self._quote(episode_id)}/files/{_file_path(path)}", body, idempotent=False
        )
        data = self._json_object(response, "PUT file")
        return FileWritten(str(data["path"]), int(data["size"]), int(data["step_count"]))

    def history(self, *, limit: int | None = None, cursor: str | None = None) -> History:
        """The episode's trajectory, oldest step first: code, observation, reward, info and
        request id of each step. Without ``limit`` or ``cursor``, every step (following the
        server's pages, if it pages). With them, one page: pass its ``next_cursor`` as ``cursor``
        for the next one (``next_cursor`` is None on the last page, and always on a server that
        does not page).

        Args:
            limit: most steps in the page. Default: all steps.
            cursor: where the page starts (a previous page's ``next_cursor``). Default: the first step.

        Example::

            for s in env.history():
                print(s.step, s.code, s.reward)
            page = env.history(limit=50)
            rest = env.history(limit=50, cursor=page.next_cursor) if page.next_cursor else None
        """
        if limit is not None or cursor is not None:
            return self._history_page(limit, cursor)
        first = self._history_page(None, None)
        steps, next_cursor, seen = list(first.steps), first.next_cursor, set()
        while next_cursor is not None and next_cursor not in seen:
            seen.add(next_cursor)
            page = self._history_page(None, next_cursor)
            steps.extend(page.steps)
            next_cursor = page.next_cursor
        return History(episode_id=first.episode_id, steps=steps, next_cursor=None)

    def iter_history(self, *, page_size: int = DEFAULT_HISTORY_PAGE_SIZE) -> Iterator[HistoryStep]:
        """Yields the trajectory's steps, oldest first, fetching ``page_size`` steps per request
        (a long trajectory never sits in memory at once on a server that pages).

        Args:
            page_size: steps per request. Default 100.

        Example::

            rewards = [s.reward for s in env.iter_history(page_size=500)]
        """
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size!r}")
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = self._history_page(page_size, cursor)
            yield from page.steps
            if page.next_cursor is None or page.next_cursor in seen:
                return
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    def health(self) -> Health:
        """The server's health (``status``, ``auth_required``); needs no episode or key.

        Example::

            CodingEnv().health().auth_required  # False locally
        """
        self._assert_open()
        return Health.from_wire(self._json_object(self._request("GET", "/health"), "GET /health"))

    def delete(self) -> None:
        """Deletes the bound episode and unbinds this client, which stays usable (``reset()``
        again). An episode already gone, or none bound, is not an error.

        Example::

            env.reset()
            env.delete()
            env.episode_id  # None
        """
        self._assert_open()
        episode_id, self._episode_id = self._episode_id, None
        if episode_id is None:
            return
        try:
            self._request("DELETE", f"/episodes/{self._quote(episode_id)}")
        except NotFoundError:
            pass  # already deleted or expired: the goal is reached

    def close(self, *, keep: bool = False) -> None:
        """Deletes the episode (or keeps it with ``keep=True``) and closes this client's
        connections; later calls raise ``CodingEnvError`` (code ``client_closed``). Closing twice
        is not an error. ``with CodingEnv() as env:`` calls it.

        Args:
            keep: leave the episode on the server (it expires after its TTL). Default False.

        Example::

            env.close()             # delete the episode
            other.close(keep=True)  # keep it; reopen later with CodingEnv(episode_id=...)
        """
        if self._closed:
            return
        try:
            if not keep:
                self.delete()
        finally:
            self._closed = True
            self._episode_id = None
            self._transport.close()

    def __enter__(self) -> CodingEnv:
        """``with CodingEnv() as env:`` deletes the episode when the block ends.

        Example::

            with CodingEnv() as env:
                env.reset()
                env.step("print(1)")
        """
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            self.close()
        except CodingEnvError:
            if exc_type is None:
                raise
            # The block's own exception is the one worth seeing; the episode expires by its TTL.

    # ---- plumbing --------------------------------------------------------------------------

    @staticmethod
    def _quote(value: str) -> str:
        return urllib.parse.quote(value, safe="")

    def _history_page(self, limit: int | None, cursor: str | None) -> History:
        episode_id = self._require_episode("history")
        query = {k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None}
        path = f"/episodes/{self._quote(episode_id)}/history"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        response = self._request("GET", path)
        return History.from_wire(self._json_object(response, "GET /episodes/{id}/history"))

    def _assert_open(self) -> None:
        if self._closed:
            raise CodingEnvError("This CodingEnv is closed; create a new one.", code="client_closed")

    def _require_episode(self, method: str) -> str:
        self._assert_open()
        if self._episode_id is None:
            raise CodingEnvError(
                f"No episode: call reset() before {method}() (or pass episode_id=).", code="episode_required"
            )
        return self._episode_id

    def _headers(self, has_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": f"coding-env-sdk-python/{__version__}"}
        headers.update(self._extra_headers)
        if has_body:
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotent: bool = True,
        timeout_s: float | None = None,
    ) -> RawResponse:
        """One call under the retry policy: network errors and 5xx only when idempotent; 409/429
        always (they commit nothing); while the server says this call's own request_id is running,
        the same request again until its window closes (those waits are not retries: nothing
        failed). Retries send the same bytes (the same request_id)."""
        endpoint = f"{method} {path.split('?')[0]}"
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers(data is not None)
        attempt = 0
        # Until when (monotonic) the first "your request is running" answer lets this call wait.
        wait_for_first_until: float | None = None
        while True:
            try:
                response = self._transport.send(
                    method,
                    path,
                    data,
                    headers,
                    timeout_s or self.timeout_s,
                    reuse=idempotent,
                    endpoint=endpoint,
                )
                if response.status < 400:
                    return response
                error = error_from_response(
                    response.status, _parse_body(response.body), response.headers.get("retry-after"), endpoint
                )
            except CodingEnvError as exc:
                error = exc
            window_s = same_request_window_s(error) if self.retry.max_retries > 0 else None
            if window_s is not None:
                # Bounded by the first answer's window (plus a second for the clocks): the server
                # runs the request itself once the first attempt's claim lapsed without a commit.
                if wait_for_first_until is None:
                    wait_for_first_until = time.monotonic() + window_s + 1.0
                left_s = wait_for_first_until - time.monotonic()
                if left_s > 0:
                    time.sleep(min(1.0 if error.retry_after_s is None else error.retry_after_s, left_s))
                    continue
            delay_s = self.retry.delay_s(error, attempt, idempotent)
            if delay_s is None:
                raise error
            time.sleep(delay_s)
            attempt += 1

    @staticmethod
    def _json_object(response: RawResponse, endpoint: str) -> dict[str, Any]:
        body = _parse_body(response.body)
        if not isinstance(body, dict):
            raise ServerError(
                f"{endpoint} answered a body that is not a JSON object",
                status=response.status,
                code="invalid_response",
                endpoint=endpoint,
            )
        return body

    def _step_result(self, response: RawResponse, endpoint: str) -> StepResult:
        body = self._json_object(response, endpoint)
        observation = body.get("observation")
        if (
            not isinstance(observation, dict)
            or not isinstance(observation.get("exit_code"), int)
            or not isinstance(body.get("episode_id"), str)
        ):
            raise ServerError(
                f"{endpoint} answered a body that is not a step result",
                status=response.status,
                code="invalid_response",
                endpoint=endpoint,
            )
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        return StepResult.from_wire(body, replayed=replayed)


@dataclass(frozen=True)
class EpisodeFile:
    """One file of an episode's directory (``files()``)."""

    _WIRE_SCHEMA = "FileEntry"  # what it reads: a component of /openapi.json

    path: str
    size: int


@dataclass(frozen=True)
class FileWritten:
    """The answer of ``write_file()``: ``step_count`` is the episode's new version."""

    _WIRE_SCHEMA = "FileWritten"  # what it reads: a component of /openapi.json
    _WIRE_OMITTED = ("episode_id",)  # the caller named the episode

    path: str
    size: int
    step_count: int


def _file_path(path: str) -> str:
    """The path as one URL segment ("/" encoded too, so the server sees and refuses a traversal)."""
    if path in (".", ".."):
        raise BadRequestError(f"invalid file path {path!r}", status=400, code="invalid_path")
    return urllib.parse.quote(path, safe="")


def _parse_body(data: bytes) -> Any:
    if not data:
        return None
    text = data.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text  # not JSON (a proxy's HTML error page): kept for the error message
