"""Drives a server that requires API keys the way OpenEnv's HTTP client can: a ``requests.Session``
whose default headers carry the key (``X-API-Key`` or ``Authorization: Bearer``), no episode id
anywhere (the ``/reset`` cookie keeps the episode).

    /usr/bin/python3 test/tenancy/python_keyed_client.py http://127.0.0.1:8000 ce_live_...

Prints one JSON line with what it saw; exits non-zero (with a message) on the first mismatch.
"""

from __future__ import annotations

import json
import sys

import requests


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def run_session(base: str, headers: dict[str, str]) -> dict[str, object]:
    session = requests.Session()
    session.headers.update(headers)
    reset = session.post(f"{base}/reset", json={}, timeout=30)
    check(reset.status_code == 200, f"reset answered {reset.status_code}: {reset.text}")
    step = session.post(f"{base}/step", json={"action": {"code": "x = 20 + 1\nprint(x * 2)"}}, timeout=30)
    check(step.status_code == 200, f"step answered {step.status_code}: {step.text}")
    stdout = step.json()["observation"]["stdout"]
    check(stdout == "42\n", f"stdout was {stdout!r}")
    state = session.get(f"{base}/state", timeout=30)
    check(state.status_code == 200, f"state answered {state.status_code}")
    check(state.json()["step_count"] == 1, f"step_count was {state.json()['step_count']}")
    return {"episode_id": reset.json()["episode_id"], "stdout": stdout}


def main() -> None:
    base, key = sys.argv[1].rstrip("/"), sys.argv[2]
    anonymous = requests.Session().post(f"{base}/reset", json={}, timeout=30)
    check(anonymous.status_code == 401, f"reset without a key answered {anonymous.status_code}")
    check(anonymous.json()["error"]["code"] == "unauthorized", f"error body was {anonymous.text}")
    via_api_key = run_session(base, {"X-API-Key": key})
    via_bearer = run_session(base, {"Authorization": f"Bearer {key}"})
    check(via_api_key["episode_id"] != via_bearer["episode_id"], "two sessions shared an episode")
    print(json.dumps({"anonymous": anonymous.status_code, "x_api_key": via_api_key, "bearer": via_bearer}))


if __name__ == "__main__":
    main()
