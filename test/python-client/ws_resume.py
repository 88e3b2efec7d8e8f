"""Runs one step over ``/ws`` connecting the way OpenEnv's current client does, with a base URL
only: ``http(s)://`` becomes ``ws(s)://`` and ``/ws`` is appended, and the URL's user information
(``http://<episode_id>:<key>@host``) goes out as HTTP Basic on the handshake.

    /usr/bin/python3 test/python-client/ws_resume.py http://ep_1:<key>@127.0.0.1:8000 "x + 1"

Prints the reply message (one JSON line).
"""

from __future__ import annotations

import asyncio
import json
import sys

import websockets


async def main(base_url: str, code: str) -> None:
    url = base_url.replace("https://", "wss://").replace("http://", "ws://").rstrip("/") + "/ws"
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "step", "data": {"code": code}}))
        print(await ws.recv())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
