"""The Lambda entry point: ``coding_env_runtime.handler.handler`` (the Dockerfile's CMD).

The runtime (zygote + worker pool) is created once per execution environment, on first use,
and reused by every invocation, so warm workers survive between invocations.
"""

from __future__ import annotations

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
            _runtime = Runtime(opts)
        return _runtime


def shutdown() -> None:
    global _runtime
    with _runtime_lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run one step. A malformed event raises ``EventError`` (a Lambda function error);
    user-code failures are data in the result."""
    request = parse_event(event)
    return get_runtime().run_step(request)
