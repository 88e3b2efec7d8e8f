"""The runtime's side of the zygote: starts it and talks to it over its control socket."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)

#: The zygote's whole environment: nothing of the parent's (no AWS credentials) gets through.
CLEAN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/tmp",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

def _boot_program(package_root: str, font_cache_dir: str | None) -> bytes:
    """Sent on the zygote's stdin (``python -I -``), so the runtime's location is not in its
    command line, which every worker inherits and user code can read in /proc/self/cmdline.
    A ``background`` zygote (root mode) runs at a low CPU priority (nice 10) from its first line
    until its imports are done (``zygote.main`` restores it before any worker exists). The cyclic
    garbage collector is off until then too (``zygote.main`` freezes what was imported and turns
    it back on before any worker exists): the imports allocate enough objects to run it dozens of
    times over everything imported so far, ~4% of the start."""
    return (
        # Non-dumpable first (Lambda mode: until then user code of the same uid could write
        # this process's memory; ``zygotes.StartGate``), before anything else is imported, and
        # say so (the runtime cannot tell from outside: right after the fork the process is
        # non-dumpable as the runtime is, until its exec makes it dumpable).
        "import ctypes, os, sys\n"
        "if ctypes.CDLL(None).prctl(4, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0:\n"
        "    os.write(int(sys.argv[1]), b'{\"op\": \"undumpable\"}')\n"
        "import gc\n"
        "gc.disable()\n"
        "import os, sys\n"
        "if sys.argv[4] == 'background':\n"
        "    os.setpriority(os.PRIO_PROCESS, 0, 10)\n"
        "import sys\n"
        f"sys.path.insert(0, {package_root!r})\n"
        "from coding_env_runtime.zygote import hide_install_path, main\n"
        f"sys.path.remove({package_root!r})\n"
        "hide_install_path()\n"
        "main(int(sys.argv[1]), sys.argv[2], sys.argv[3] == 'private-mounts', sys.argv[4] == 'background',\n"
        f"     font_cache_dir={font_cache_dir or ''!r})\n"
    ).encode()


class RuntimeFailure(RuntimeError):
    """The runtime itself is broken (not the user's code): reported as a Lambda function error."""


class ZygoteClient:
    def __init__(
        self,
        python: str,
        preload: tuple[str, ...],
        *,
        private_mounts: bool = False,
        background: bool = False,
        font_cache_dir: str | None = None,
    ) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = parent_end
        self.process = subprocess.Popen(
            [
                python, "-I", "-", str(child_end.fileno()), ",".join(preload),
                "private-mounts" if private_mounts else "-", "background" if background else "-",
            ],
            env=CLEAN_ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            pass_fds=(child_end.fileno(),),
            cwd="/",
            start_new_session=True,
        )
        child_end.close()
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(_boot_program(PACKAGE_ROOT, font_cache_dir))
            self.process.stdin.close()
        except OSError:
            pass  # it died at once: the first request reports it
        self.pid = self.process.pid
        #: Lambda mode: its limits, priority and CPUs at start (see ``WorkerPool.take_idle``).
        self.traits: tuple[Any, ...] = ()
        #: Workers being forked right now.
        self.spawning = 0
        #: The tenant whose episodes its workers serve (None: a spare, nobody's yet).
        self.tenant: str | None = None
        #: It is kept for an episode, or serves a second one: it is never a spare again.
        self.seed_used = False
        #: Its resident memory once its worker is warm (counted with that worker's).
        self.memory_bytes: int | None = None
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self.alive = True
        #: Its imports are done and it answers requests (``wait_ready``).
        self.ready = False
        #: Its first line made it non-dumpable (``wait_undumpable``).
        self.undumpable = False
        self._reader = threading.Thread(target=self._read_loop, name="zygote-reader", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        while True:
            try:
                data = self._control.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self.alive = False
                    self._cond.notify_all()
                return
            message = json.loads(data)
            with self._cond:
                if message.get("op") == "ready":
                    self.ready = True
                elif message.get("op") == "undumpable":
                    self.undumpable = True
                elif message.get("op") == "exit":
                    self._exits[int(message["pid"])] = int(message["status"])
                else:
                    self._replies[int(message["id"])] = message
                self._cond.notify_all()

    def _request(self, message: dict[str, Any], fds: list[int], timeout_s: float = 10.0) -> dict[str, Any]:
        request_id = next(self._ids)
        message["id"] = request_id
        with self._send_lock:
            if not self.alive:
                raise RuntimeFailure("the worker factory (zygote) is not running")
            try:
                socket.send_fds(self._control, [json.dumps(message).encode()], fds)
            except OSError as exc:
                raise RuntimeFailure(f"the worker factory (zygote) is unreachable: {exc}") from exc
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while request_id not in self._replies:
                remaining = deadline - time.monotonic()
                if not self.alive or remaining <= 0:
                    raise RuntimeFailure("the worker factory (zygote) did not answer")
                self._cond.wait(remaining)
            return self._replies.pop(request_id)

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until its imports are done (a spawn then takes milliseconds, not an import's
        time, so whoever forks a worker of a new zygote holds its locks only that long)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self.ready:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.alive:
                    return False
                self._cond.wait(remaining)
            return True

    def wait_undumpable(self, timeout_s: float) -> bool:
        """Wait until its first line made it non-dumpable (``zygotes.StartGate``)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.undumpable or not self.alive, timeout_s) and self.undumpable

    def spawn(self, spec: dict[str, Any], fds: list[int]) -> int:
        return int(self._request({"op": "spawn", "spec": spec}, fds)["pid"])

    def kill_uid(self, uid: int) -> None:
        self._request({"op": "kill_uid", "uid": uid}, [])

    def wait_exit(self, pid: int, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while pid not in self._exits:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.alive:
                    return None
                self._cond.wait(remaining)
            return self._exits[pid]  # kept until forget_exit: several waiters may ask

    def forget_exit(self, pid: int) -> None:
        with self._cond:
            self._exits.pop(pid, None)

    def stop(self) -> None:
        try:
            # shutdown() first: close() alone does not wake the reader thread blocked in recv,
            # and the zygote would not see EOF until then.
            self._control.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._control.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
