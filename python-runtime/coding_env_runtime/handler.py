"""The Lambda entry point: ``coding_env_runtime.handler.handler`` (the Dockerfile's CMD).

The runtime (zygote + worker pool) is created once per execution environment, on first use,
and reused by every invocation, so warm workers survive between invocations.

Payload limits. Lambda refuses a synchronous request above 6 MB before we see it, and turns a
reply above 6 MB into a function error (``Function.ResponseSizeTooLarge``) that loses the step.
The Lambda runtime interface client (awslambdaric) serializes our return value with simplejson:
on the Python 3.12+ base images with ``ensure_ascii=False`` (UTF-8 text, but control characters
and U+2028/U+2029 escaped: a NUL costs 6 bytes), on older ones with ``ensure_ascii=True`` (every
non-ASCII character escaped, 6 or 12 bytes). :func:`fit_reply` sizes the reply exactly as that
serialization will (:func:`serialize_reply` reproduces it) and keeps it within
``REPLY_LIMIT_BYTES``: stdout and stderr are cut by their serialized size (``*_truncated``), and
a new state that cannot fit is refused (``state_too_large``, the input snapshot returned).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from typing import Any

from . import files_op, options, state_transfer
from .files_op import FilesRequest
from .contract import DiscardRequest, EventError, PackagesRequest, StepRequest, parse_event, state_location_of
from .runtime import Runtime, RuntimeOpts
from .state_transfer import StateLocation

#: The most the serialized reply may take (Lambda allows 6,291,556 bytes; the rest is margin).
REPLY_LIMIT_BYTES = 6_000_000
#: Time kept, before the invocation's deadline, to stop a step and send its reply.
_REPLY_TIME_MS = 1000
#: Room kept beside a returned input snapshot for every other field and the refusal message.
_REPLY_FIELDS_RESERVE = 16 * 1024

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()
#: The parent's copy of warm episodes' states kept in S3, by object key (state_transfer.py).
_state_cache = state_transfer.cache_from_environment()


def get_runtime(opts: RuntimeOpts | None = None) -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(opts or options.opts_from_environment())
        return _runtime


def shutdown() -> None:
    global _runtime
    with _runtime_lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()


if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
    # In Lambda, start the zygote and the idle pool during the init phase, not in the first step
    # (the environment may be frozen between init and its first invocation); well within
    # Lambda's 10 s init limit (a slower start goes on during the first invocation).
    get_runtime().pool.wait_ready(8.0)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run one step (or discard an episode's warm workers). A malformed event raises
    ``EventError`` (a Lambda function error); user-code failures are data in the result."""
    request = parse_event(event, getattr(context, "tenant_id", None))
    if isinstance(request, DiscardRequest):
        discarded = get_runtime().discard(request.tenant_id, request.episode_id, request.incarnation)
        _state_cache.forget(request.tenant_id, request.episode_id)
        return {"contract_version": 1, "discarded": discarded}
    if isinstance(request, FilesRequest):
        # The episode's files in its snapshot (plain data next to the pickle): no worker, no code.
        files_state = state_location_of(event)
        if files_state is not None:
            return _files_with_state_in_s3(request, files_state)
        return files_op.answer(request, get_runtime().empty_snapshot())
    if isinstance(request, PackagesRequest):
        # Read from distribution metadata (nothing imported into this parent), cached. Imported
        # here: importlib.metadata was a fifth of the handler's import, needed by this op only.
        from . import packages

        return {"contract_version": 1, "packages": packages.installed()}
    if isinstance(request, DiscardRequest) or not isinstance(request, StepRequest):
        raise EventError("unsupported request")
    if request.state is not None:
        return _step_with_state_in_s3(request, context)
    sizer = _SnapshotSizer(request.snapshot, ric_ensure_ascii())
    if request.snapshot is not None:
        returnable = REPLY_LIMIT_BYTES - _REPLY_FIELDS_RESERVE
        # Every failure returns the input snapshot, so one that could not be returned is refused
        # before any code runs. (No character takes more than 12 bytes: small ones skip the scan.)
        if 12 * len(request.snapshot) + 2 > returnable and sizer.input_size() + 2 > returnable:
            raise EventError(f"snapshot is larger than the {returnable} bytes a reply can carry")
    request = _within_invocation_deadline(request, context)
    runtime = get_runtime()
    result = runtime.run_step(request)
    if fit_reply(result, request.snapshot, runtime.empty_snapshot, sizer.ensure_ascii, sizer=sizer):
        # The worker holds a state nobody will ever send back: free it now.
        runtime.discard(request.tenant_id, request.episode_id, request.incarnation)
    return result


def _step_with_state_in_s3(request: StepRequest, context: Any) -> dict[str, Any]:
    """A step whose input state may be an S3 object (``state.get_url``) and whose new state goes
    to S3 (``state.put_url``) when it is larger than ``state.inline_max_bytes``. The runtime
    sees raw snapshot bytes throughout (no base64 of large states). The reply says where the new
    state is: ``state_location`` is ``"inline"`` (in ``snapshot``), ``"put"`` (the object of
    ``put_ref`` was written: ``state_ref``, ``state_bytes``, ``state_sha256``; ``snapshot`` is
    empty) or ``"input"`` (unchanged: the step's input state, wherever it was; ``snapshot`` is
    empty). A new state over ``state.max_bytes`` is refused (``state_too_large``) and nothing is
    written."""
    location = request.state
    assert location is not None
    input_ref = location.get_ref if location.get_url is not None else None
    try:
        if input_ref is not None:
            raw_input = _state_cache.get(request.tenant_id, request.episode_id, input_ref)
            if raw_input is None:
                assert location.get_url is not None
                raw_input = state_transfer.download(location.get_url, location.get_bytes, location.get_sha256)
            request = dataclasses.replace(request, snapshot=raw_input)  # type: ignore[arg-type]
        elif request.snapshot is not None:
            # Inline input: raw too, so a warm worker (which holds raw bytes) matches it.
            request = dataclasses.replace(request, snapshot=state_transfer.raw_of(request.snapshot))  # type: ignore[arg-type]
    except state_transfer.StateTransferError as exc:
        # Nothing ran: the API answers it as an executor failure and the episode is unchanged.
        raise EventError(f"the episode's state could not be read: {exc}") from exc
    request = _within_invocation_deadline(request, context)
    runtime = get_runtime()
    result = runtime.run_step(request)
    new_snapshot = result.get("snapshot")
    result["snapshot_bytes"] = 0 if new_snapshot is None else state_transfer.raw_size(new_snapshot)
    if new_snapshot is request.snapshot and request.snapshot is not None:
        # Failed, timed out, busy...: the input state stands (the caller already has it).
        result.update(snapshot="", state_location="input")
        if input_ref is not None:
            _state_cache.put(request.tenant_id, request.episode_id, input_ref, request.snapshot)
    elif isinstance(new_snapshot, (bytes, bytearray)) and request.snapshot is not None and new_snapshot == request.snapshot:
        # A step that changed nothing (printing, reading): no new object, the input stands.
        result.update(snapshot="", state_location="input")
        if input_ref is not None:
            _state_cache.put(request.tenant_id, request.episode_id, input_ref, new_snapshot)
    elif location.max_bytes is not None and result["snapshot_bytes"] > location.max_bytes:
        runtime.discard(request.tenant_id, request.episode_id, request.incarnation)
        result.update(
            snapshot="",
            state_location="input",
            dropped=[],
            exit_code=1,
            error_code="state_too_large",
        )
        result["stderr"] = (
            f"MemoryError: the episode's state would be {result['snapshot_bytes'] / 2**20:.1f} MiB after this "
            f"step, above the {location.max_bytes / 2**20:.1f} MiB limit; the episode's state is as it was "
            "before this step. Delete large variables (del name) and retry.\n" + str(result.get("stderr") or "")
        )
    elif (
        location.put_url is not None
        and location.put_ref is not None
        and isinstance(new_snapshot, (bytes, bytearray))
        and len(new_snapshot) > location.inline_max_bytes
    ):
        try:
            digest = state_transfer.upload(location.put_url, new_snapshot)
        except state_transfer.StateTransferError as exc:
            # The new state is lost: the step counts as failed and the input state stands.
            runtime.discard(request.tenant_id, request.episode_id, request.incarnation)
            result.update(
                snapshot="",
                state_location="input",
                exit_code=1,
                error_code="state_save_failed",
                stderr=f"RuntimeError: the episode's new state could not be saved ({exc}); the "
                "episode's state is as it was before this step.\n" + str(result.get("stderr") or ""),
            )
        else:
            result.update(
                snapshot="",
                state_location="put",
                state_ref=location.put_ref,
                state_bytes=len(new_snapshot),
                state_sha256=digest,
            )
            _state_cache.put(request.tenant_id, request.episode_id, location.put_ref, new_snapshot)
    elif new_snapshot is not None:
        result.update(snapshot=state_transfer.inline_of(new_snapshot), state_location="inline")
    else:
        result.update(snapshot=runtime.empty_snapshot(), state_location="inline")
    sizer = _SnapshotSizer(None, ric_ensure_ascii())
    if fit_reply(result, None, runtime.empty_snapshot, sizer.ensure_ascii, sizer=sizer):
        # Only an inline state can make the reply too large: the input state stands.
        result.update(snapshot="", state_location="input")
        runtime.discard(request.tenant_id, request.episode_id, request.incarnation)
    return result


def _files_with_state_in_s3(request: FilesRequest, location: StateLocation) -> dict[str, Any]:
    """The ``files`` operation on a state kept in S3: read from the GET URL, and a written state
    larger than ``inline_max_bytes`` goes to the PUT URL (reply as a step's: ``state_location``)."""
    try:
        if location.get_url is not None:
            raw_input = _state_cache.get(request.tenant_id, request.episode_id, location.get_ref or "")
            if raw_input is None:
                raw_input = state_transfer.download(location.get_url, location.get_bytes, location.get_sha256)
            request = dataclasses.replace(request, snapshot=state_transfer.inline_of(raw_input))
    except state_transfer.StateTransferError as exc:
        raise EventError(f"the episode's state could not be read: {exc}") from exc
    result = files_op.answer(request, get_runtime().empty_snapshot())
    new_snapshot = result.get("snapshot")
    if not isinstance(new_snapshot, str) or result.get("error_code"):
        return result
    raw = state_transfer.raw_of(new_snapshot)
    result["snapshot_bytes"] = len(raw)
    if location.max_bytes is not None and len(raw) > location.max_bytes:
        return {"contract_version": 1, "error_code": "state_too_large", "snapshot_bytes": len(raw),
                "message": f"The episode's state would be {len(raw)} bytes, over {location.max_bytes}."}
    if location.put_url is None or location.put_ref is None or len(raw) <= location.inline_max_bytes:
        result["state_location"] = "inline"
        return result
    try:
        digest = state_transfer.upload(location.put_url, raw)
    except state_transfer.StateTransferError as exc:
        raise EventError(f"the episode's new state could not be saved: {exc}") from exc
    result.update(snapshot="", state_location="put", state_ref=location.put_ref, state_bytes=len(raw),
                  state_sha256=digest)
    return result


def _within_invocation_deadline(request: StepRequest, context: Any) -> StepRequest:
    """A step may not outlive its invocation: past the function timeout Lambda kills the whole
    environment (every warm worker with it) and the caller only learns "Task timed out". The
    step's own limit is cut to the time left minus room for the reply, and the time left is
    also a deadline the runtime holds it to after any wait for a worker, so it ends as an
    ordinary timed-out step (input state kept) instead."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return request
    budget = int(remaining()) - _REPLY_TIME_MS
    # The limit starts once a worker is there (runtime.py); the deadline also counts the wait.
    return dataclasses.replace(
        request,
        timeout_ms=max(min(budget, request.timeout_ms), 1),
        invocation_deadline=time.monotonic() + max(budget, 1) / 1000.0,
    )


# --- the reply as the Lambda runtime interface client serializes it --------------------------

#: Base images whose runtime client encodes with ensure_ascii=False (awslambdaric's list).
_UTF8_EXECUTION_ENVS = frozenset(f"AWS_Lambda_python3.{minor}" for minor in (12, 13, 14, 15))


def ric_ensure_ascii() -> bool:
    """Whether this environment's runtime client escapes every non-ASCII character."""
    return os.environ.get("AWS_EXECUTION_ENV") not in _UTF8_EXECUTION_ENVS


def _escape(text: str, ensure_ascii: bool) -> str:
    """The JSON string body (no quotes) exactly as simplejson writes it."""
    body = json.dumps(text, ensure_ascii=ensure_ascii)[1:-1]
    if not ensure_ascii and ("\u2028" in body or "\u2029" in body):
        body = body.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return body


def _escaped_size(text: str, ensure_ascii: bool) -> int:
    body = _escape(text, ensure_ascii)
    return len(body) if ensure_ascii or body.isascii() else len(body.encode("utf-8"))


class _SnapshotSizer:
    """Serialized sizes (without quotes) of the snapshots of one step. The input snapshot is the
    caller's string and is measured (once); a new snapshot is the runtime's own base64 text
    (``snapshot.encode``), whose serialized size is its length when it is ASCII."""

    def __init__(self, input_snapshot: str | None, ensure_ascii: bool) -> None:
        self.input_snapshot = input_snapshot
        self.ensure_ascii = ensure_ascii
        self._input_size: int | None = None

    def input_size(self) -> int:
        if self._input_size is None:
            self._input_size = self.measure(self.input_snapshot)
        return self._input_size

    def measure(self, snapshot: str | None) -> int:
        # `null` takes 4 bytes where the skeleton counted the 2 of `""`.
        return 2 if snapshot is None else _escaped_size(snapshot, self.ensure_ascii)

    def size(self, snapshot: str | None) -> int:
        if snapshot is self.input_snapshot:
            return self.input_size()
        if snapshot is not None and snapshot.isascii():  # isascii() is O(1)
            return len(snapshot)
        return self.measure(snapshot)


def _size_without_outputs(result: dict[str, Any], sizer: _SnapshotSizer) -> int:
    """Serialized size of ``result`` with empty stdout and stderr."""
    skeleton = serialize_reply({**result, "stdout": "", "stderr": "", "snapshot": ""}, sizer.ensure_ascii)
    return len(skeleton) + sizer.size(result["snapshot"])


def serialize_reply(reply: Any, ensure_ascii: bool | None = None) -> bytes:
    """``reply`` as the runtime client sends it (simplejson, default separators, UTF-8)."""
    if ensure_ascii is None:
        ensure_ascii = ric_ensure_ascii()
    text = json.dumps(reply, ensure_ascii=ensure_ascii)
    if not ensure_ascii:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")


def _encodable(text: str) -> str:
    """``text`` without lone surrogates: the client's ``.encode("utf-8")`` would fail on them
    (a dropped variable can be named anything through ``globals()``)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _encodable(value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {_encodable(str(key)): _clean(item) for key, item in value.items()}
    return value


def _cut_escape_tail(body: str) -> str:
    """Drop an escape sequence cut in two at the end of ``body`` (and, when ASCII-escaped, a
    high surrogate whose low half was cut off), so the rest decodes to a prefix of the text."""
    start = body.rfind("\\", max(0, len(body) - 6))
    if start >= 0:
        run = start
        while run > 0 and body[run - 1] == "\\":
            run -= 1
        if (start - run) % 2 == 0:  # body[start] opens an escape (not the 2nd half of "\\\\")
            if start + 1 >= len(body) or (body[start + 1] == "u" and len(body) - start < 6):
                body = body[:start]
    tail = body[-6:]
    if len(tail) == 6 and tail[:2] == "\\u" and tail[2:4].lower() in ("d8", "d9", "da", "db"):
        run = len(body) - 6
        while run > 0 and body[run - 1] == "\\":
            run -= 1
        if (len(body) - 6 - run) % 2 == 0:
            return body[:-6]
    return body


def _cut(text: str, budget: int, ensure_ascii: bool) -> tuple[str, bool]:
    """The longest prefix of ``text`` whose serialized body takes at most ``budget`` bytes."""
    budget = max(budget, 0)
    # No character serializes to less than one byte, so only the first `budget` can fit.
    head = text[:budget]
    body = _escape(head, ensure_ascii)
    if len(head) == len(text) and (len(body) <= budget if ensure_ascii else len(body.encode("utf-8")) <= budget):
        return text, False
    if ensure_ascii:
        body = body[:budget]
    else:
        body = body.encode("utf-8")[:budget].decode("utf-8", "ignore")
    body = _cut_escape_tail(body)
    return json.loads(f'"{body}"'), True


def _capped_size(text: str, cap: int, ensure_ascii: bool) -> int:
    """The serialized body size of ``text``, or any value above ``cap`` if it is larger."""
    return _escaped_size(text[: cap + 1], ensure_ascii)


def fit_reply(
    result: dict[str, Any],
    input_snapshot: str | None,
    empty_snapshot: Any,
    ensure_ascii: bool,
    limit: int = REPLY_LIMIT_BYTES,
    sizer: _SnapshotSizer | None = None,
) -> bool:
    """Make ``result`` serialize to at most ``limit`` bytes, in place. Returns True when the
    new state had to be refused (``state_too_large``; the input snapshot is returned)."""
    for name, value in result.items():
        if name != "snapshot":  # ours (base64) or the caller's own input
            result[name] = _clean(value)
    sizer = sizer or _SnapshotSizer(input_snapshot, ensure_ascii)
    stdout, stderr = result["stdout"], result["stderr"]
    rest = _size_without_outputs(result, sizer)
    refused = False
    if rest > limit - _REPLY_FIELDS_RESERVE // 2:
        refused = True
        new_bytes = result.get("snapshot_bytes") or len(result.get("snapshot") or "")
        snapshot = input_snapshot if input_snapshot is not None else empty_snapshot()
        result.update(
            snapshot=snapshot,
            snapshot_bytes=len(snapshot),
            dropped=[],
            exit_code=1,
            error_code="state_too_large",
        )
        note = (
            f"MemoryError: the episode's state would be {new_bytes / 2**20:.1f} MiB after this step, "
            f"more than the executor's reply can carry ({limit / 1e6:g} MB with the output); the "
            "episode's state is as it was before this step. Delete large variables (del name) and retry.\n"
        )
        # First, so that cutting stderr to fit never cuts the reason away.
        stderr = note + stderr
        result["stderr"] = stderr
        rest = _size_without_outputs(result, sizer)
    room = limit - rest
    out_size = _capped_size(stdout, room, ensure_ascii)
    err_size = _capped_size(stderr, room, ensure_ascii)
    if out_size + err_size <= room:
        return refused
    # Each stream gets half of the room, and whatever the other does not need.
    err_room = min(err_size, max(room - out_size, room // 2))
    out_room = room - err_room
    if err_size > err_room:
        result["stderr"], _ = _cut(stderr, err_room, ensure_ascii)
        result["stderr_truncated"] = True
    if out_size > out_room:
        result["stdout"], _ = _cut(stdout, out_room, ensure_ascii)
        result["stdout_truncated"] = True
    return refused
