"""The Lambda-mode harness: the executor's real handler in emulated Lambda execution
environments, behind the Lambda Invoke API. Run as root (it builds namespaces and cgroups).

    python3 python-runtime/harness/lambda_env.py --host 127.0.0.1 --port 0

Same command-line contract as ``coding_env_runtime.local_server``: ``--port 0`` picks a free
port and prints one line, ``LISTENING http://127.0.0.1:<port>``; SIGTERM stops it and every
environment. ``CODING_ENV_LOCAL_ACCESS_KEY_ID`` is required of every request when set.

What Lambda does and this does too (python-runtime/README.md, "Lambda mode harness"):
- each environment (harness/env_init.py) runs the runtime as its own non-root uid with no
  capabilities, everything read-only but a private ``/tmp``, no ``/dev/shm``,
  ``RLIMIT_NPROC``/``RLIMIT_NOFILE`` 1024, canary AWS credentials in its environment, its own
  PID/IPC/network namespaces (a microVM's own kernel objects; loopback only, plus, with
  ``--s3-gateway``, the local S3's one address relayed from the host: the VPC's S3 gateway
  endpoint);
- an environment serves one invocation at a time and is frozen (cgroup freezer) between them;
- environments are created on demand up to ``--max-environments``; each belongs to one tenant
  (``TenantId``, Lambda's tenant isolation mode); with none free, 429
  ``TooManyRequestsException`` (an idle environment of another tenant is reclaimed first);
- 6 MB limits: a request above 6,291,456 bytes is refused with 413
  ``RequestEntityTooLargeException``; a reply above 6,291,556 bytes becomes the function error
  ``Function.ResponseSizeTooLarge``; a function timeout (``--function-timeout-s``) and a runtime
  that dies are function errors too, and the environment is replaced.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from typing import Any

if __package__ in (None, ""):  # run as a script: make `harness` and `coding_env_runtime` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from coding_env_runtime import font_cache, options  # noqa: E402
from coding_env_runtime.local_server import InvokeApiHandler, InvokeContext, serve  # noqa: E402
from harness.environment import Environment, EnvironmentOpts, Outcome  # noqa: E402
from harness.freezer import Group, create_memory_root, create_root  # noqa: E402

#: Environment uids: far above the runtime's root-mode worker uids (200000 + 1000 blocks of 1000).
UID_BASE = 1_500_000
UID_BLOCK = 100
UID_BLOCKS = 500


def parse_s3_gateway(endpoint: str) -> tuple[str, int]:
    """``http://127.0.0.1:<port>`` (the local S3's endpoint) as (host, port). Only an IPv4
    loopback address: the stand-in listens on the same address inside each environment's network
    namespace, where loopback is the only interface, so pre-signed URLs stay valid unchanged."""
    url = urllib.parse.urlsplit(endpoint)
    host = url.hostname or ""
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme != "http" or port is None or not host.startswith("127.") or url.path not in ("", "/"):
        raise ValueError(f"--s3-gateway must be http://127.x.y.z:<port>, got {endpoint!r}")
    socket.inet_aton(host)
    return host, port


class NoEnvironment(Exception):
    """Every environment is busy and no more may be created (Lambda: throttled)."""


def _claim_uid_block() -> tuple[int, int]:
    """A block of uids locked for this harness's life (two harnesses never share a uid)."""
    lock_dir = "/run/coding-env-lambda-uids" if os.path.isdir("/run") else "/tmp/coding-env-lambda-uids"
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    for block in range(UID_BLOCKS):
        fd = os.open(os.path.join(lock_dir, f"{block}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UID_BASE + block * UID_BLOCK, fd
    raise RuntimeError("every environment uid block is in use")


class Pool:
    """The function's execution environments; one invocation per environment at a time."""

    def __init__(self, opts: EnvironmentOpts, max_environments: int) -> None:
        if not 1 <= max_environments <= UID_BLOCK:
            raise ValueError(f"--max-environments must be within 1..{UID_BLOCK}")
        self.opts = opts
        self.max_environments = max_environments
        self.root: Group = create_root()
        self.memory_root: Group | None = create_memory_root(self.root)
        self.first_uid, self._uid_lock_fd = _claim_uid_block()
        self._lock = threading.Lock()
        self._slots: list[Environment | None] = [None] * max_environments
        self._closed = False
        self.cold_starts = 0
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="environment-spawner")

    def acquire(self, tenant_id: str | None) -> Environment:
        """A free environment of this tenant (the most recently used), else a new one."""
        reclaim: Environment | None = None
        with self._lock:
            if self._closed:
                raise NoEnvironment
            mine = [e for e in self._slots if e is not None and e.alive and not e.busy and e.tenant_id == tenant_id]
            if mine:
                env = max(mine, key=lambda e: e.last_used)
                env.busy = True
                return env
            index = next((i for i, e in enumerate(self._slots) if e is None or not e.alive and not e.busy), None)
            if index is None:  # reclaim the least recently used idle environment of another tenant
                idle = [e for e in self._slots if e is not None and not e.busy]
                if not idle:
                    raise NoEnvironment
                reclaim = min(idle, key=lambda e: e.last_used)
                index = reclaim.index
            old = self._slots[index]
            group = self.root.child(f"env-{index}")
            memory = None
            if self.memory_root is not None:
                memory = group if self.memory_root is self.root else self.memory_root.child(f"env-{index}")
            env = Environment(index, self.first_uid + index, tenant_id, group, self.opts, self._spawner, memory)
            env.busy = True
            self._slots[index] = env
        if reclaim is not None or old is not None:
            (reclaim or old).kill()  # type: ignore[union-attr]
        try:
            env.start()
            self.cold_starts += 1
        except BaseException:
            with self._lock:
                env.busy = False
            raise
        return env

    def release(self, env: Environment) -> None:
        with self._lock:
            env.busy = False
            env.last_used = time.monotonic()

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e.describe() for e in self._slots if e is not None]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            envs = [e for e in self._slots if e is not None]
        for env in envs:
            env.kill()
        self.root.remove()
        if self.memory_root is not None and self.memory_root is not self.root:
            self.memory_root.remove()
        self._spawner.shutdown(wait=False)
        os.close(self._uid_lock_fd)


class _HarnessInvokeHandler(InvokeApiHandler):
    server_version = "coding-env-lambda-harness"

    @property
    def pool(self) -> Pool:
        return self.server.pool  # type: ignore[attr-defined]

    def _run(self, body: bytes, context: InvokeContext) -> Outcome | None:
        try:
            env = self.pool.acquire(context.tenant_id)
        except NoEnvironment:
            return None
        except RuntimeError as exc:
            return Outcome(json.dumps({"errorType": "Runtime.InitError", "errorMessage": str(exc)}).encode(), "Unhandled")
        try:
            return env.invoke(body, context.tenant_id, context.function_name, self.server.function_timeout_s)  # type: ignore[attr-defined]
        finally:
            self.pool.release(env)

    def invoke_sync(self, event: Any, body: bytes, context: InvokeContext) -> None:
        outcome = self._run(body, context)
        if outcome is None:
            self.service_error(429, "TooManyRequestsException", "Rate Exceeded.", {"Retry-After": "1"},
                               Reason="ReservedFunctionConcurrentInvocationLimitExceeded")
            return
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if outcome.function_error:
            headers["X-Amz-Function-Error"] = outcome.function_error
        self.send_body(200, outcome.body, headers)

    def run_event(self, event: Any, body: bytes, context: InvokeContext) -> None:
        # Lambda's event queue retries a throttled event; here: until an environment is free.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._run(body, context) is not None:
                return
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 python-runtime/harness/lambda_env.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--max-environments", type=int, default=4, help="concurrent environments (then 429)")
    parser.add_argument("--function-timeout-s", type=float, default=900.0)
    parser.add_argument("--memory-mb", type=int, default=2048, help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    parser.add_argument("--execution-env", default="AWS_Lambda_python3.12",
                        help="AWS_EXECUTION_ENV (decides the reply encoding, as in the image)")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the environments")
    parser.add_argument("--s3-gateway", default="", metavar="http://127.0.0.1:PORT",
                        help="the local S3's endpoint: the one host address the environments reach "
                             "(the S3 gateway endpoint's stand-in); none: loopback only")
    # The local server's options, passed to each environment's runtime as the image's ENV does.
    parser.add_argument("--idle-workers", type=int, default=1)
    parser.add_argument("--max-warm-workers", type=int, default=4)
    parser.add_argument("--preload", default="")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("the Lambda-mode harness needs root (namespaces, cgroups, uids)")
    from harness.client import reachable_by_others

    # The code is staged where every uid can read it (environment.task_root()); the interpreter
    # must be reachable itself.
    if not reachable_by_others(args.python):
        parser.error(f"{args.python} must be reachable by an unprivileged uid "
                     "(an interpreter under /root is not); pass --python /usr/bin/python3")
    try:
        s3_gateway = parse_s3_gateway(args.s3_gateway) if args.s3_gateway else None
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    expected_key_id = options.take_local_access_key_id()
    # matplotlib's font cache, built where the environments can read but not write it, as the
    # image build does (Dockerfile; coding_env_runtime/font_cache.py). Once per machine.
    font_cache_dir = font_cache.default_dir(args.python)
    if font_cache_dir is not None and not font_cache.build(args.python, font_cache_dir):
        font_cache_dir = None
    opts = EnvironmentOpts(
        python=args.python,
        memory_mb=args.memory_mb,
        execution_env=args.execution_env,
        s3_gateway=s3_gateway,
        runtime_settings={
            options.IDLE_WORKERS_ENV: str(args.idle_workers),
            options.MAX_WARM_WORKERS_ENV: str(args.max_warm_workers),
            options.PRELOAD_ENV: args.preload,
            **({options.FONT_CACHE_ENV: font_cache_dir} if font_cache_dir else {}),
        },
    )
    pool = Pool(opts, args.max_environments)
    server = ThreadingHTTPServer((args.host, args.port), _HarnessInvokeHandler)
    server.expected_key_id = expected_key_id  # type: ignore[attr-defined]
    server.pool = pool  # type: ignore[attr-defined]
    server.function_timeout_s = args.function_timeout_s  # type: ignore[attr-defined]
    serve(server, pool.close)
    return 0


if __name__ == "__main__":
    sys.exit(main())
