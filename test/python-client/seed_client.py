"""Drives the API the way OpenEnv's seed-era HTTP client does: a ``requests.Session``, no episode
id anywhere, ``POST /reset`` with ``{}``, ``POST /step`` with ``{"action": {...}, "timeout_s": 15}``,
``GET /state``. The session keeps its episode through the cookie ``/reset`` sets.

    /usr/bin/python3 test/python-client/seed_client.py http://127.0.0.1:8000

Prints one JSON line with what it saw; exits non-zero (with a message) on the first mismatch.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import requests


@dataclass
class CodeObservation:
    """The seed-era client's observation: a plain dataclass, so unknown keys would raise."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    done: bool = False
    reward: float | None = None


class SeedEraClient:
    def __init__(self, base_url: str, request_timeout_s: float = 30.0) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = request_timeout_s
        self._http = requests.Session()

    def _parse(self, payload: dict[str, Any]) -> CodeObservation:
        return CodeObservation(**payload["observation"], done=payload.get("done", False), reward=payload.get("reward"))

    def reset(self) -> CodeObservation:
        r = self._http.post(f"{self._base}/reset", json={}, timeout=self._timeout)
        r.raise_for_status()
        return self._parse(r.json())

    def step(self, code: str) -> CodeObservation:
        r = self._http.post(f"{self._base}/step", json={"action": {"code": code}, "timeout_s": 15}, timeout=self._timeout)
        r.raise_for_status()
        return self._parse(r.json())

    def state(self) -> dict[str, Any]:
        r = self._http.get(f"{self._base}/state", timeout=self._timeout)
        r.raise_for_status()
        return r.json()


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def main(base_url: str) -> None:
    a = SeedEraClient(base_url)
    b = SeedEraClient(base_url)
    obs = a.reset()
    check(obs.exit_code == 0 and obs.stdout == "" and obs.reward == 0.0, f"reset observation {obs}")
    b.reset()
    a.step("x = 40")
    b.step("x = 1")
    obs = a.step("x + 2")
    check(obs.stdout == "42" and obs.exit_code == 0, f"state did not persist through the cookie: {obs}")
    check(abs((obs.reward or 0) - 0.1) < 1e-9, f"reward {obs.reward}")
    obs_b = b.step("x")
    check(obs_b.stdout == "1", f"the second session saw another episode's state: {obs_b}")
    bad = a.step("import os")
    check(bad.exit_code == 1 and abs((bad.reward or 0) + 0.9) < 1e-9, f"forbidden import: {bad}")
    state = a.state()
    check(state["step_count"] == 3 and state["last_exit_code"] == 1, f"state {state}")
    episode_before = state["episode_id"]
    a.reset()
    after = a.step("x")
    check(after.exit_code == 1 and "NameError" in after.stderr, f"reset did not clear the state: {after}")
    check(a.state()["episode_id"] != episode_before, "reset kept the episode id")
    print(json.dumps({"ok": True, "episode_id": a.state()["episode_id"], "step_count": a.state()["step_count"]}))


if __name__ == "__main__":
    main(sys.argv[1])
