"""One emulated Lambda execution environment, seen from the harness: start, invoke, kill.

An environment is a freezer cgroup holding ``harness.env_init`` and everything below it (the
runtime, its zygote, every worker and whatever user code starts). It is frozen from the moment
its reply is read until the next invocation is handed over, as Lambda freezes an environment
between invocations: no thread, timer or child of it gets any CPU in between.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .bootstrap import recv_frame, send_frame
from .freezer import Group

#: python-runtime/ of the checkout: what the environments run, staged by task_root().
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TASK_PACKAGES = ("coding_env_runtime", "harness")
#: Where staged task roots go: outside /tmp (each environment mounts its own tmpfs there).
_TASK_PARENT = "/opt/coding-env"
_task_root: str | None = None
_task_root_lock = threading.Lock()


def _remove_stale_task_roots() -> None:
    """Task roots of harnesses that are gone (a SIGKILLed harness runs no exit handler)."""
    for name in os.listdir(_TASK_PARENT):
        parts = name.split("-")
        if name.startswith("harness-task-") and len(parts) >= 4 and parts[2].isdigit():
            if not os.path.exists(f"/proc/{parts[2]}"):
                shutil.rmtree(os.path.join(_TASK_PARENT, name), ignore_errors=True)


def _other_bytecode(directory: str, names: list[str]) -> list[str]:
    """copytree's filter: in a ``__pycache__``, every file but this interpreter's bytecode."""
    if os.path.basename(directory) != "__pycache__":
        return []
    return [n for n in names if not n.endswith(f".{sys.implementation.cache_tag}.pyc")]


def _compile(root: str, python: str) -> None:
    """Bytecode for every module under ``root`` that has none up to date, for ``python``."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        import compileall

        compileall.compile_dir(root, quiet=2)  # bytecode copied with its source is checked, kept
        return
    subprocess.run([python, "-I", "-m", "compileall", "-q", root], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False)


def task_root(python: str = sys.executable) -> str:
    """The code the environments run, as Lambda's ``/var/task``: a root-owned copy every uid can
    read, made once per harness. The checkout itself may be unreachable for the environments'
    uids (a clone under /root); the copy also keeps them from seeing the rest of the checkout.

    Compiled, as in the image: the Dockerfile's check imports the runtime with ``python3 -I``
    (which ignores PYTHONDONTWRITEBYTECODE) while the image is still writable, so its task root
    holds the modules' bytecode, and pip compiles the runtime interface client's. The runtime,
    every zygote and the stand-in client (``harness``) then read bytecode at their start instead
    of compiling the sources each time (the environments cannot write any). The checkout's own
    bytecode is copied along when it is up to date (copied sources keep their times)."""
    global _task_root
    with _task_root_lock:
        if _task_root is None:
            os.makedirs(_TASK_PARENT, mode=0o755, exist_ok=True)
            os.chmod(_TASK_PARENT, 0o755)
            _remove_stale_task_roots()
            root = tempfile.mkdtemp(prefix=f"harness-task-{os.getpid()}-", dir=_TASK_PARENT)
            for name in _TASK_PACKAGES:
                shutil.copytree(os.path.join(_SOURCE_ROOT, name), os.path.join(root, name), ignore=_other_bytecode)
            _compile(root, python)
            for directory, _dirs, files in os.walk(root):
                os.chmod(directory, 0o755)
                for name in files:
                    os.chmod(os.path.join(directory, name), 0o644)
            atexit.register(shutil.rmtree, root, True)
            _task_root = root
        return _task_root

#: Canary AWS credentials every environment's runtime gets, as Lambda gives the function
#: role's. User code must never be able to read them.
CANARY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIAHARNESSCANARY7Q3Z",
    "AWS_SECRET_ACCESS_KEY": "harness-canary-secret-Zk3v9QmW1pLx8RtY2uNb",
    "AWS_SESSION_TOKEN": "harness-canary-session-token-Hq7Jd2Lm5Wp9Xc4Vb8Nz",
}
#: -I: nothing of the harness's Python environment (PYTHONPATH, user site) applies.
_ENV_INIT_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from harness.env_init import main; main(sys.stdin.read())"
#: Lambda's response limit, as its error message states it.
MAX_RESPONSE_BYTES = 6_291_556


@dataclass
class EnvironmentOpts:
    python: str
    function_name: str = "coding-env-executor"
    memory_mb: int = 2048
    tmp_bytes: int = 512 * 1024 * 1024
    nproc: int = 1024
    nofile: int = 1024
    init_timeout_s: float = 60.0
    #: AWS_EXECUTION_ENV: decides how the runtime client encodes replies.
    execution_env: str = "AWS_Lambda_python3.12"
    runtime_settings: dict[str, str] = field(default_factory=dict)
    #: The local S3's (host, port) on the host's loopback: the one address the environments reach
    #: there, through the S3 gateway endpoint's stand-in (env_init.py). None: loopback only.
    s3_gateway: tuple[str, int] | None = None


@dataclass
class Outcome:
    """What Lambda answers: ``function_error`` is the X-Amz-Function-Error value or None."""

    body: bytes
    function_error: str | None = None
    #: The environment is gone (timeout, runtime exit): Lambda replaces it.
    lost: bool = False


def _function_error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class Environment:
    def __init__(
        self,
        index: int,
        uid: int,
        tenant_id: str | None,
        group: Group,
        opts: EnvironmentOpts,
        spawner: ThreadPoolExecutor,
        memory_group: Group | None = None,
    ) -> None:
        self.index = index
        #: Starts env_init from one long-lived thread: the parent-death signal fires when the
        #: *thread* that forked exits, and request threads end with their connection.
        self.spawner = spawner
        self.uid = uid
        self.tenant_id = tenant_id
        self.group = group
        #: Caps the whole environment at the function's memory size (None: not available here).
        self.memory_group = memory_group
        self.opts = opts
        self.busy = False
        self.alive = False
        self.last_used = time.monotonic()
        self.process: subprocess.Popen | None = None
        self._channel: socket.socket | None = None
        self._lock = threading.Lock()

    def _lambda_environment(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": task_root(self.opts.python),
            "PYTHONDONTWRITEBYTECODE": "1",
            "LAMBDA_TASK_ROOT": task_root(self.opts.python),
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
            "AWS_EXECUTION_ENV": self.opts.execution_env,
            "AWS_LAMBDA_FUNCTION_NAME": self.opts.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.opts.memory_mb),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            **CANARY_CREDENTIALS,
            **self.opts.runtime_settings,
        }

    def start(self) -> None:
        """Create the environment and run its init phase; it is left frozen."""
        if self.memory_group is not None:
            self.memory_group.limit_memory(self.opts.memory_mb * 1024 * 1024)
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        config = {
            "harness_pid": os.getpid(),
            "cgroup": self.group.path,
            "memory_cgroup": None if self.memory_group in (None, self.group) else self.memory_group.path,
            "freeze_file": self.group.freeze_file,
            "thaw_value": self.group.thaw_value,
            "uid": self.uid,
            "nproc": self.opts.nproc,
            "nofile": self.opts.nofile,
            "tmp_bytes": self.opts.tmp_bytes,
            "python": self.opts.python,
            "task_root": task_root(self.opts.python),
            "channel_fd": child_end.fileno(),
            "environment": self._lambda_environment(),
            "s3_gateway": None if self.opts.s3_gateway is None
            else {"host": self.opts.s3_gateway[0], "port": self.opts.s3_gateway[1]},
        }
        try:
            self.process = self.spawner.submit(
                subprocess.Popen,
                [self.opts.python, "-I", "-c", _ENV_INIT_BOOT, task_root(self.opts.python)],
                cwd=task_root(self.opts.python),
                env={"PATH": "/usr/bin:/bin"},
                # The configuration (canary credentials included) on stdin, not in argv:
                # a command line is readable by every process of the environment.
                stdin=subprocess.PIPE,
                stdout=sys.stderr,  # the harness's stdout carries only the LISTENING line
                pass_fds=(child_end.fileno(),),
            ).result()
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(config).encode())
            self.process.stdin.close()
        finally:
            child_end.close()
        self._channel = parent_end
        parent_end.settimeout(self.opts.init_timeout_s)
        try:
            ready = json.loads(recv_frame(parent_end))
        except (OSError, EOFError, ValueError) as exc:
            self.kill()
            raise RuntimeError(f"the environment's init phase failed ({type(exc).__name__})") from exc
        if not ready.get("ready"):
            self.kill()
            raise RuntimeError("the environment's runtime did not initialize")
        try:
            self.group.freeze()
        except (OSError, TimeoutError) as exc:
            self.kill()
            raise RuntimeError(f"the environment could not be frozen after its init phase: {exc}") from exc
        self.alive = True

    def invoke(self, payload: bytes, tenant_id: str | None, function_name: str, timeout_s: float) -> Outcome:
        """One invocation: thaw, hand over, wait for the reply (or the function timeout), freeze."""
        assert self._channel is not None
        request_id = str(uuid.uuid4())
        header = {
            "request_id": request_id,
            "tenant_id": tenant_id,
            "function_name": function_name,
            "deadline_ms": time.time() * 1000 + timeout_s * 1000,
        }
        with self._lock:
            try:
                self.group.thaw()
                self._channel.settimeout(timeout_s)
                send_frame(self._channel, json.dumps(header).encode())
                send_frame(self._channel, payload)
                reply = json.loads(recv_frame(self._channel))
                body = recv_frame(self._channel)
            except socket.timeout:
                self.kill()
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
                return Outcome(
                    _function_error("Sandbox.Timedout", f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"),
                    "Unhandled",
                    lost=True,
                )
            except (OSError, EOFError, ValueError):
                status = self._exit_status()
                self.kill()
                return Outcome(
                    _function_error("Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited with {status}"),
                    "Unhandled",
                    lost=True,
                )
            try:
                self.group.freeze()
            except (OSError, TimeoutError):
                self.kill()  # an environment that cannot be frozen is not served again
        if len(body) > MAX_RESPONSE_BYTES:
            return Outcome(
                _function_error(
                    "Function.ResponseSizeTooLarge",
                    f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                ),
                "Unhandled",
            )
        return Outcome(body, "Unhandled" if reply.get("error") else None)

    def _exit_status(self) -> str:
        if self.process is None:
            return "an unknown status"
        try:
            code = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "error: the runtime closed its channel"
        if code > 128:  # Lambda's words (Go's): "signal: killed"
            name = signal.strsignal(code - 128) or f"signal {code - 128}"
            return f"error: signal: {name.lower()}"
        return f"error: exit status {code}"

    def kill(self) -> None:
        """End every process of the environment (frozen or not) and forget it."""
        self.alive = False
        self.group.kill()
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def describe(self) -> dict[str, Any]:
        return {"index": self.index, "uid": self.uid, "tenant_id": self.tenant_id, "cgroup": self.group.path,
                "busy": self.busy, "alive": self.alive}
