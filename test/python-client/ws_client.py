"""Drives ``/ws`` the way OpenEnv's current client does: ``http(s)://`` becomes ``ws(s)://``, one
connection is one session, JSON text frames ``{"type": "reset"|"step"|"state"|"close", "data": ...}``.
The observation is built with a strict constructor (the client's model forbids unknown keys).

    /usr/bin/python3 test/python-client/ws_client.py http://127.0.0.1:8000

Prints one JSON line with what it saw; exits non-zero with a message on the first mismatch.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

import websockets


@dataclass(frozen=True)
class CodeObservation:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


async def request(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(message))
    return json.loads(await ws.recv())


async def main(base_url: str) -> None:
    url = base_url.replace("https://", "wss://").replace("http://", "ws://").rstrip("/") + "/ws"
    async with websockets.connect(url) as ws:
        reset = await request(ws, {"type": "reset", "data": {}})
        check(reset["type"] == "observation", f"reset answer {reset}")
        CodeObservation(**reset["data"]["observation"])
        await request(ws, {"type": "step", "data": {"code": "total = sum(range(10))"}})
        step = await request(ws, {"type": "step", "data": {"code": "total"}})
        obs = CodeObservation(**step["data"]["observation"])
        check(obs == CodeObservation("45", "", 0), f"state did not persist on the connection: {obs}")
        check(step["data"]["done"] is False and abs(step["data"]["reward"] - 0.1) < 1e-9, f"step {step}")
        state = await request(ws, {"type": "state"})
        check(state["type"] == "state" and state["data"]["step_count"] == 2, f"state {state}")
        bad = await request(ws, {"type": "nope"})
        check(bad["type"] == "error" and bad["data"]["code"] == "UNKNOWN_TYPE", f"error {bad}")
        await ws.send(json.dumps({"type": "close"}))
        await ws.wait_closed()
    print(json.dumps({"ok": True, "episode_id": state["data"]["episode_id"], "step_count": state["data"]["step_count"]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
