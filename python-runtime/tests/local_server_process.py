"""The local Invoke-API server as a child process, for tests that talk to it over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def start_local_server(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, str]:
    """Start the server on a free port of 127.0.0.1; return it and its base URL (from its LISTENING line)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "coding_env_runtime.local_server", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": PACKAGE_ROOT, **env}, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("LISTENING http://127.0.0.1:"):
        process.kill()
        process.wait()
        process.stdout.close()
        raise AssertionError(f"unexpected first line: {line!r}")
    return process, line.split(" ", 1)[1]


def stop_local_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
