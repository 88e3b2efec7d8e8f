"""The invocation contract (see python-runtime/README.md): event parsing and defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import CONTRACT_VERSION, options
from .policy import ImportPolicy
from .state_transfer import StateLocation

DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
#: Hard ceilings an event cannot exceed (values above are clamped).
MAX_TIMEOUT_MS = 900_000
MAX_OUTPUT_BYTES_CEILING = 16 * 1024 * 1024
MAX_CODE_BYTES = 1024 * 1024
_POLICY_MODES = ("openenv", "full")


class EventError(ValueError):
    """The event does not follow the contract: reported as a Lambda function error."""


#: The tenant of a request that names none (single-tenant use, tests).
DEFAULT_TENANT_ID = "default"
_MAX_ID_CHARS = 512


@dataclass(frozen=True)
class StepRequest:
    episode_id: str
    state_version: int
    snapshot: str | None
    code: str
    policy: ImportPolicy
    timeout_ms: int
    memory_mb: int
    max_output_bytes: int
    #: Whose episode this is: a warm worker is only ever reused by the same tenant.
    tenant_id: str = DEFAULT_TENANT_ID
    #: The episode's incarnation (a reset of the same id is a new incarnation).
    incarnation: str = ""
    #: The reset's seed: seeds ``random`` (and numpy) when the episode starts fresh.
    seed: int | None = None
    #: Large state in S3 (``event["state"]``): None when the snapshot travels inline.
    state: StateLocation | None = None
    #: When the invocation must have answered (``time.monotonic()``), set by the handler from
    #: Lambda's remaining time, never from the event: the step ends by then even when waiting
    #: for a worker took part of its limit.
    invocation_deadline: float | None = None


@dataclass(frozen=True)
class PackagesRequest:
    """``{"op": "packages"}``: the installed versions of the known package set (packages.json)."""


@dataclass(frozen=True)
class DiscardRequest:
    """``{"op": "discard"}``: drop the warm worker(s) of one episode at once."""

    tenant_id: str
    episode_id: str
    #: None drops every incarnation of the episode.
    incarnation: str | None = None


def _int_field(data: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = data.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise EventError(f"limits.{name} must be a number")
    if value < low:
        raise EventError(f"limits.{name} must be at least {low}")
    return int(min(value, high))


def _tenant_id(event: dict[str, Any], context_tenant_id: str | None) -> str:
    """The Invoke's tenant (Lambda's ``TenantId``, from the context) and the event's own
    ``tenant_id`` must agree; either alone is enough, neither means the default tenant."""
    from_event = event.get("tenant_id")
    if from_event is not None and (not isinstance(from_event, str) or not from_event or len(from_event) > _MAX_ID_CHARS):
        raise EventError(f"tenant_id must be a non-empty string (at most {_MAX_ID_CHARS} characters)")
    if context_tenant_id is not None and not isinstance(context_tenant_id, str):
        raise EventError("the invocation's tenant id must be a string")
    if context_tenant_id == "":
        context_tenant_id = None
    if from_event is not None and context_tenant_id is not None and from_event != context_tenant_id:
        raise EventError("tenant_id in the event differs from the invocation's tenant id")
    return from_event or context_tenant_id or DEFAULT_TENANT_ID


def _episode_id(event: dict[str, Any]) -> str:
    episode_id = event.get("episode_id")
    if not isinstance(episode_id, str) or not episode_id or len(episode_id) > _MAX_ID_CHARS:
        raise EventError(f"episode_id must be a non-empty string (at most {_MAX_ID_CHARS} characters)")
    return episode_id


def _incarnation(event: dict[str, Any]) -> str | None:
    value = event.get("incarnation")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_ID_CHARS:
        raise EventError(f"incarnation must be a string (at most {_MAX_ID_CHARS} characters)")
    return value


def parse_event(
    event: Any, context_tenant_id: str | None = None
) -> StepRequest | DiscardRequest | PackagesRequest:
    """The event as a request; ``context_tenant_id`` is the Invoke's ``TenantId``
    (``context.tenant_id`` in Lambda, ``X-Amz-Tenant-Id`` for the local server)."""
    if not isinstance(event, dict):
        raise EventError("the event must be a JSON object")
    version = event.get("contract_version", CONTRACT_VERSION)
    if version != CONTRACT_VERSION:
        raise EventError(f"contract_version {version!r} is not supported (this runtime speaks {CONTRACT_VERSION})")
    tenant_id = _tenant_id(event, context_tenant_id)
    op = event.get("op", "step")
    if op == "discard":
        return DiscardRequest(tenant_id, _episode_id(event), _incarnation(event))
    if op == "packages":
        return PackagesRequest()
    if op == "files":
        from .files_op import parse as parse_files_request

        return parse_files_request(event, tenant_id, _episode_id(event))
    if op != "step":
        raise EventError("op must be \"step\" (the default), \"discard\", \"packages\" or \"files\"")
    code = event.get("code")
    if not isinstance(code, str):
        raise EventError("code must be a string")
    if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        raise EventError(f"code is larger than {MAX_CODE_BYTES} bytes")
    episode_id = _episode_id(event)
    state_version = event.get("state_version", 0)
    if isinstance(state_version, bool) or not isinstance(state_version, int) or state_version < 0:
        raise EventError("state_version must be a non-negative integer")
    snapshot = event.get("snapshot")
    if snapshot is not None and not isinstance(snapshot, str):
        raise EventError("snapshot must be a string or null")
    if snapshot == "":
        snapshot = None
    raw_policy = event.get("policy") or {}
    if not isinstance(raw_policy, dict):
        raise EventError("policy must be an object")
    mode = raw_policy.get("mode", "openenv")
    if mode not in _POLICY_MODES:
        raise EventError(f"policy.mode must be one of {', '.join(_POLICY_MODES)}")
    extra = raw_policy.get("additional_imports") or []
    if not isinstance(extra, list) or not all(isinstance(m, str) and m and len(m) <= 200 for m in extra):
        raise EventError("policy.additional_imports must be a list of module names")
    seed = event.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise EventError("seed must be a non-negative integer below 2**63 or null")
    limits = event.get("limits") or {}
    if not isinstance(limits, dict):
        raise EventError("limits must be an object")
    state = _state_location(event.get("state"))
    if state is not None and state.get_url is not None and snapshot is not None:
        raise EventError("a step takes its input state inline (snapshot) or from state.get_url, not both")
    return StepRequest(
        episode_id=episode_id,
        state_version=state_version,
        snapshot=snapshot,
        code=code,
        policy=ImportPolicy(mode, tuple(sorted(set(extra)))),
        timeout_ms=_int_field(limits, "timeout_ms", DEFAULT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS),
        memory_mb=_int_field(limits, "memory_mb", options.worker_memory_mb(), 64, options.worker_max_memory_mb()),
        max_output_bytes=_int_field(
            limits, "max_output_bytes", DEFAULT_MAX_OUTPUT_BYTES, 1, MAX_OUTPUT_BYTES_CEILING
        ),
        tenant_id=tenant_id,
        incarnation=_incarnation(event) or "",
        seed=seed,
        state=state,
    )


_MAX_URL_CHARS = 8192


def state_location_of(event: dict[str, Any]) -> StateLocation | None:
    """``event["state"]`` of any operation that reads or writes a state (a step, ``files``)."""
    return _state_location(event.get("state"))


def _optional_text(data: dict[str, Any], name: str, limit: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise EventError(f"state.{name} must be a non-empty string (at most {limit} characters)")
    return value


def _state_location(raw: Any) -> StateLocation | None:
    """``{"get_url", "get_ref", "get_bytes", "get_sha256", "put_url", "put_ref",
    "inline_max_bytes", "max_bytes"}``: pre-signed S3 URLs (http or https only), the object keys
    they name, the input object's recorded size and SHA-256, and the largest state to keep."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise EventError("state must be an object")
    urls = {name: _optional_text(raw, name, _MAX_URL_CHARS) for name in ("get_url", "put_url")}
    for name, url in urls.items():
        if url is not None and not url.startswith(("https://", "http://")):
            raise EventError(f"state.{name} must be an http(s) URL")
    refs = {name: _optional_text(raw, name, _MAX_ID_CHARS) for name in ("get_ref", "put_ref")}
    if (urls["get_url"] is None) != (refs["get_ref"] is None) or (urls["put_url"] is None) != (
        refs["put_ref"] is None
    ):
        raise EventError("state: each URL comes with the key of its object (get_ref, put_ref)")
    inline_max = _int_field(raw, "inline_max_bytes", 32 * 1024, 0, 4 * 1024 * 1024)
    get_bytes = raw.get("get_bytes")
    if get_bytes is not None and (isinstance(get_bytes, bool) or not isinstance(get_bytes, int) or get_bytes < 0):
        raise EventError("state.get_bytes must be a non-negative integer")
    get_sha256 = raw.get("get_sha256")
    if get_sha256 is not None and (
        not isinstance(get_sha256, str) or len(get_sha256) != 64 or get_sha256.strip("0123456789abcdef")
    ):
        raise EventError("state.get_sha256 must be 64 lowercase hex digits")
    max_bytes = raw.get("max_bytes")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise EventError("state.max_bytes must be a positive integer")
    return StateLocation(
        urls["get_url"],
        refs["get_ref"],
        urls["put_url"],
        refs["put_ref"],
        inline_max,
        get_bytes=get_bytes,
        get_sha256=get_sha256,
        max_bytes=max_bytes,
    )
