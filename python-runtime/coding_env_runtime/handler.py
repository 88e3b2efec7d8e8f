"""The Lambda entry point: ``coding_env_runtime.handler.handler`` (the Dockerfile's CMD).

The runtime (zygote + worker pool) is created once per execution environment, on first use,
and reused by every invocation, so warm workers survive between invocations.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .contract import parse_event
from .runtime import Runtime, RuntimeOpts

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime(opts: RuntimeOpts | None = None) -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(opts or _opts_from_environment())
        return _runtime


def _opts_from_environment() -> RuntimeOpts:
    """Deployment settings: ``CODING_ENV_IDLE_WORKERS``, ``CODING_ENV_MAX_WARM_WORKERS``,
    ``CODING_ENV_PRELOAD`` (comma-separated modules for the zygote to import)."""
    opts = RuntimeOpts()
    if os.environ.get("CODING_ENV_IDLE_WORKERS"):
        opts.idle_workers = int(os.environ["CODING_ENV_IDLE_WORKERS"])
    if os.environ.get("CODING_ENV_MAX_WARM_WORKERS"):
        opts.max_warm_workers = int(os.environ["CODING_ENV_MAX_WARM_WORKERS"])
    if os.environ.get("CODING_ENV_PRELOAD"):
        opts.preload = tuple(m.strip() for m in os.environ["CODING_ENV_PRELOAD"].split(",") if m.strip())
    return opts


def shutdown() -> None:
    global _runtime
    with _runtime_lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()


if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
    # In Lambda, start the zygote and the idle pool during the init phase, not in the first step.
    get_runtime()


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run one step. A malformed event raises ``EventError`` (a Lambda function error);
    user-code failures are data in the result."""
    request = parse_event(event)
    return get_runtime().run_step(request)
