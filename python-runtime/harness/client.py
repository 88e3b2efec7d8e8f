"""Start the Lambda-mode harness and call it as the AWS SDK would (tests, benchmarks).

    with HarnessProcess(max_environments=2) as harness:
        status, headers, body = harness.invoke({"episode_id": "e", "code": "1 + 1"})
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

from coding_env_runtime.options import LOCAL_ACCESS_KEY_ENV

HARNESS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lambda_env.py")


def reachable_by_others(path: str) -> bool:
    """Every directory from / down to ``path`` can be entered by another user."""
    path = os.path.dirname(os.path.realpath(path))
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def unavailable_reason(python: str = sys.executable) -> str | None:
    """Why the harness cannot run here, or None."""
    if os.geteuid() != 0:
        return "the Lambda-mode harness needs root"
    if not reachable_by_others(python):
        return f"{python} is not reachable by an unprivileged uid"
    try:
        from .freezer import own_freezer_base

        own_freezer_base()
    except Exception as exc:  # noqa: BLE001
        return f"no cgroup freezer: {exc}"
    return None


class HarnessProcess:
    def __init__(self, *args: str, max_environments: int = 2, python: str = sys.executable) -> None:
        self.access_key_id = uuid.uuid4().hex
        self.args = ["--max-environments", str(max_environments), *args]
        self.python = python
        self.process: subprocess.Popen | None = None
        self.base = ""

    def __enter__(self) -> HarnessProcess:
        self.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        env = {**os.environ, LOCAL_ACCESS_KEY_ENV: self.access_key_id}
        self.process = subprocess.Popen(
            [self.python, HARNESS_SCRIPT, "--host", "127.0.0.1", "--port", "0", "--python", self.python, *self.args],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("LISTENING http://127.0.0.1:"):
            self.process.kill()
            raise AssertionError(f"the harness did not start: {line!r}")
        self.base = line.split(" ", 1)[1]

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def authorization(self, key_id: str | None = None) -> str:
        key = key_id or self.access_key_id
        return (f"AWS4-HMAC-SHA256 Credential={key}/20261202/us-east-1/lambda/aws4_request, "
                "SignedHeaders=host;x-amz-date, Signature=0")

    def invoke_raw(
        self, payload: bytes, *, tenant_id: str | None = None, authorization: str | None = "default",
        function: str = "coding-env-executor", timeout_s: float = 120,
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            f"{self.base}/2015-03-31/functions/{function}/invocations", data=payload, method="POST"
        )
        if authorization == "default":
            authorization = self.authorization()
        if authorization is not None:
            request.add_header("Authorization", authorization)
        if tenant_id is not None:
            request.add_header("X-Amz-Tenant-Id", tenant_id)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def invoke(self, event: dict[str, Any], **kwargs: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
        status, headers, body = self.invoke_raw(json.dumps(event).encode(), **kwargs)
        return status, headers, json.loads(body or b"null")

    def step(self, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """A step that must answer as a step (no service or function error)."""
        status, headers, body = self.invoke(event, **kwargs)
        if status != 200 or "X-Amz-Function-Error" in headers:
            raise AssertionError(f"invoke failed: {status} {headers} {str(body)[:2000]}")
        return body

    def environment_groups(self) -> list[str]:
        """The freezer group directory of every environment created so far."""
        assert self.process is not None
        from .freezer import own_freezer_base

        base = own_freezer_base().path  # the harness runs in the same group as its parent
        root = os.path.join(base, f"coding-env-lambda-{self.process.pid}")
        return sorted(os.path.join(root, n) for n in os.listdir(root) if n.startswith("env-"))

    def environment_group_of(self, uid: int) -> str:
        """The freezer group of the live environment whose processes run as ``uid`` (each
        environment has a uid of its own; a step can print it)."""
        for group in self.environment_groups():
            try:
                with open(os.path.join(group, "cgroup.procs")) as fh:
                    pids = fh.read().split()
            except OSError:
                continue  # ended meanwhile
            for pid in pids:
                try:
                    if os.stat(f"/proc/{pid}").st_uid == uid:
                        return group
                except OSError:
                    continue
        raise AssertionError(f"no environment of uid {uid}")
