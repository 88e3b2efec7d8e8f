"""coding-env's Python client, shaped like OpenEnv's ``CodingEnv`` (``reset``, ``step``, ``state``)
plus ``fork``, ``history``, ``delete``, safe retries, typed results and one error hierarchy.
Standard library only; Python 3.10+.

Example::

    from coding_env_sdk import CodingEnv

    with CodingEnv() as env:  # CODING_ENV_URL, else http://localhost:8000; CODING_ENV_API_KEY
        env.reset()
        result = env.step("x = 6 * 7\\nx")
        print(result.observation.stdout, result.reward)  # 42 0.1
"""

__version__ = "0.1.0"

from .client import DEFAULT_BASE_URL, DEFAULT_TIMEOUT_S, CodingEnv, EpisodeFile, FileWritten  # noqa: E402 (after __version__, which it reads)
from .errors import (  # noqa: E402
    AuthError,
    BadRequestError,
    CodingEnvError,
    ConflictError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
    error_from_response,
)
from .models import (  # noqa: E402
    CodeAction,
    CodeObservation,
    CodeState,
    DroppedVariable,
    Health,
    History,
    HistoryStep,
    ImportPolicy,
    StepInfo,
    StepResult,
)
from .retry import RetryPolicy  # noqa: E402

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT_S",
    "AuthError",
    "BadRequestError",
    "CodeAction",
    "CodeObservation",
    "CodeState",
    "CodingEnv",
    "CodingEnvError",
    "ConflictError",
    "DroppedVariable",
    "EpisodeFile",
    "FileWritten",
    "Health",
    "History",
    "HistoryStep",
    "ImportPolicy",
    "NetworkError",
    "NotFoundError",
    "RateLimitError",
    "RetryPolicy",
    "ServerError",
    "StepInfo",
    "StepResult",
    "TimeoutError",
    "__version__",
    "error_from_response",
]
