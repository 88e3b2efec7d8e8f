"""OpenEnv's own client shape against coding-env.

This is the seed-era OpenEnv ``coding_env`` HTTP client (a ``requests.Session`` that POSTs
``/reset`` and ``/step`` and GETs ``/state``), written out here because the ``openenv`` package is
not installable on this machine. Nothing in it knows about coding-env: the episode is found through
the cookie ``/reset`` sets, which ``requests.Session`` keeps, and the observation is built with the
model's constructor, so a server adding unknown fields to ``observation`` would break it.

Run (Debian's Python has ``requests``):

    CODING_ENV_URL=http://localhost:8000 /usr/bin/python3 examples/openenv_client.py
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import requests

ObsT = TypeVar("ObsT")


# Models, as in OpenEnv's envs/coding_env/models.py (plain dataclasses, like the older client).
@dataclass
class CodeAction:
    code: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class CodeObservation:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


@dataclass
class CodeState:
    episode_id: str | None = None
    step_count: int = 0
    last_exit_code: int = 0


@dataclass
class StepResult(Generic[ObsT]):
    observation: ObsT
    reward: float | None = None
    done: bool = False


class CodingEnv:
    """OpenEnv's HTTP client for coding_env: reset / step / state / close over one Session."""

    def __init__(
        self,
        base_url: str,
        request_timeout_s: float = 15.0,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = request_timeout_s
        self._http = requests.Session()
        self._headers = default_headers or {}

    def reset(self) -> StepResult[CodeObservation]:
        r = self._http.post(f"{self._base}/reset", json={}, headers=self._headers, timeout=self._timeout)
        r.raise_for_status()
        return self._parse_result(r.json())

    def step(self, action: CodeAction) -> StepResult[CodeObservation]:
        body = {"action": {"code": action.code, "metadata": action.metadata}, "timeout_s": 15}
        r = self._http.post(f"{self._base}/step", json=body, headers=self._headers, timeout=self._timeout)
        r.raise_for_status()
        return self._parse_result(r.json())

    def state(self) -> CodeState:
        r = self._http.get(f"{self._base}/state", headers=self._headers, timeout=self._timeout)
        r.raise_for_status()
        payload = r.json()
        return CodeState(
            episode_id=payload.get("episode_id"),
            step_count=payload.get("step_count", 0),
            last_exit_code=payload.get("last_exit_code", 0),
        )

    def close(self) -> None:
        # Connecting to an existing server: close() does not stop it (seed README).
        self._http.close()

    @staticmethod
    def _parse_result(payload: dict[str, Any]) -> StepResult[CodeObservation]:
        # The model's constructor rejects unknown keys: extras must live outside "observation".
        obs = CodeObservation(**payload["observation"])
        return StepResult(observation=obs, reward=payload.get("reward"), done=bool(payload.get("done", False)))


def main() -> int:
    base_url = os.environ.get("CODING_ENV_URL", "http://localhost:8000")
    headers = {}
    if os.environ.get("CODING_ENV_API_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['CODING_ENV_API_KEY']}"

    coding_env = CodingEnv(base_url=base_url, default_headers=headers)
    episode_id = None
    try:
        result = coding_env.reset()
        print(f"Reset complete: exit_code={result.observation.exit_code}")

        code_samples = [
            "print('Hello, World!')",
            "x = 5 + 3\nprint(f'Result: {x}')",
            "import math\nprint(math.pi)",
        ]
        for code in code_samples:
            result = coding_env.step(CodeAction(code=code))
            print(f"Code: {code}")
            print(f" → stdout: {result.observation.stdout.strip()}")
            print(f" → exit_code: {result.observation.exit_code}")
            print(f" → reward: {result.reward}")

        result = coding_env.step(CodeAction(code="x * 2"))
        print(f"State persists: x * 2 = {result.observation.stdout}")
        state = coding_env.state()
        episode_id = state.episode_id
        print(f"State: episode_id={state.episode_id} step_count={state.step_count}")
        if state.step_count != 4 or result.observation.stdout != "16":
            print("unexpected state", file=sys.stderr)
            return 1
    finally:
        if episode_id is not None:
            # coding-env extra: delete the episode instead of waiting for its TTL.
            requests.delete(f"{base_url.rstrip('/')}/episodes/{episode_id}", headers=headers, timeout=15)
        coding_env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
