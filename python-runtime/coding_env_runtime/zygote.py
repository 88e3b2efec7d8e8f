"""The zygote: a clean, single-threaded process that forks workers on the runtime's request.

Started by the runtime with an empty, fixed environment. It imports everything a worker needs
once, so a worker costs only a fork. The pool has each zygote fork one worker (one episode):
the interpreter's string-hash secret, fixed at its start, is then that episode's alone. It is a child subreaper (daemons that user code leaves
behind reparent here, where the runtime can find and kill them) and non-dumpable.

Control protocol (SOCK_SEQPACKET, one JSON message per packet, file descriptors attached):
- ``{"op": "spawn", "id", "spec"}`` + fds ``[worker_socket, stdout_file, stderr_file]`` ->
  ``{"op": "spawned", "id", "pid"}``
- ``{"op": "kill_uid", "id", "uid"}`` -> ``{"op": "killed", "id"}``: kills every process of a
  worker's private uid (root mode), from a helper that takes that uid.
- unsolicited ``{"op": "exit", "pid", "status"}`` for every reaped worker.
- unsolicited ``{"op": "ready"}`` once, when its imports are done and it serves requests.
The zygote exits (killing its workers) when the runtime closes the control socket.
"""

from __future__ import annotations

# The C socket module, not ``socket``: its enums and ``selectors`` were ~3% of every zygote's
# start (one per episode), and a zygote and its workers need only a socket on a given fd.
import _socket
import json
import os
import select
import signal
import sys
import types
from typing import Any

from . import cell, font_cache, sandbox, worker  # noqa: F401 - preloaded so a fork needs no import

#: Worker socket, stdout, stderr; then (root mode) its cgroup.procs files and freezer state.
_MAX_FDS = 6

#: Imported once here so a worker's imports (and snapshot restores that import them) are free.
#: The import policy still applies: it checks the import statement, not sys.modules. Not
#: ``dataclasses``: with the ``inspect`` it imports, ~4% of every zygote's start, for the few
#: episodes that use it (cloudpickle 3, the image's, imports it anyway).
PRELOAD = (
    "collections", "datetime", "itertools", "math", "queue", "random", "re", "stat",
    "statistics", "time", "unicodedata", "json", "enum", "typing", "functools",
    "decimal", "fractions", "string", "textwrap", "heapq", "bisect", "copy", "operator",
)


def _preload(extra: str) -> None:
    import importlib

    for name in (*PRELOAD, *(m.strip() for m in extra.split(",") if m.strip())):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional module only loses the speed-up
            pass


#: Where user code sees the runtime's modules (their real place is this machine's business).
VISIBLE_ROOT = "/coding-env"


def _relocate_code(code: types.CodeType, filename: str) -> types.CodeType:
    consts = tuple(_relocate_code(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _relocate_function(func: Any, module_name: str, filename: str) -> None:
    if isinstance(func, (staticmethod, classmethod)):
        func = func.__func__
    if isinstance(func, property):
        for part in (func.fget, func.fset, func.fdel):
            _relocate_function(part, module_name, filename)
        return
    if isinstance(func, types.FunctionType) and func.__module__ == module_name:
        func.__code__ = _relocate_code(func.__code__, filename)


def hide_install_path() -> None:
    """Rename the runtime's own modules and code to ``/coding-env/...``: a worker's user code can
    walk frames, ``sys.modules`` and ``__file__``, and must not learn where this machine keeps
    the runtime. Runs in the zygote before its main loop, so even the frames every worker
    inherits (main, spawn, serve) carry the new names."""
    for name, module in list(sys.modules.items()):
        if name != "coding_env_runtime" and not name.startswith("coding_env_runtime."):
            continue
        is_package = hasattr(module, "__path__")
        parts = name.split(".")
        filename = "/".join([VISIBLE_ROOT, *parts, "__init__.py"] if is_package else [VISIBLE_ROOT, *parts]) + (
            "" if is_package else ".py"
        )
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == name:
                for member in list(vars(value).values()):
                    _relocate_function(member, name, filename)
            else:
                _relocate_function(value, name, filename)
        module.__file__ = filename
        module.__cached__ = None
        loader = getattr(module, "__loader__", None)
        if loader is not None and hasattr(loader, "path"):
            loader.path = filename
        spec = module.__spec__
        if spec is not None:
            spec.origin = filename
            spec.cached = None
        if is_package:
            # Submodules were all imported above; the real directory is no longer needed.
            module.__path__ = [os.path.dirname(filename)]
            if spec is not None:
                spec.submodule_search_locations = [os.path.dirname(filename)]


def _reap(control: _socket.socket, workers: set[int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in workers:
            workers.discard(pid)
            kept = _worker_freezers.pop(pid, None)
            if kept is not None:
                os.close(kept[0])
            _send(control, {"op": "exit", "pid": pid, "status": status})


def _recv_fds(control: _socket.socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """A message and the file descriptors passed with it (``socket.recv_fds``, without the
    ``socket`` module)."""
    int_size = 4  # a C int, SCM_RIGHTS's unit
    data, ancdata, _flags, _addr = control.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * int_size))
    fds: list[int] = []
    for level, kind, cmsg_data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.extend(memoryview(cmsg_data[: len(cmsg_data) - len(cmsg_data) % int_size]).cast("i"))
    return data, fds


def _send(control: _socket.socket, message: dict[str, Any]) -> None:
    try:
        control.send(json.dumps(message).encode())
    except OSError:
        _shutdown()


#: Freezer state file (an open fd, and whether it is v2's cgroup.freeze) of each live worker
#: (root mode): on shutdown they are thawed, since a frozen process only dies once thawed.
_worker_freezers: dict[int, tuple[int, bool]] = {}


def _shutdown() -> None:
    # Every worker (and anything reparented to us) dies with us: they all have PDEATHSIG or
    # are killed here.
    sandbox.kill_all(sandbox.children_of(os.getpid()))  # SIGKILL pending first, then thaw:
    for fd, v2 in _worker_freezers.values():  # they die without running another instruction
        try:
            os.write(fd, b"0" if v2 else b"THAWED")
        except OSError:
            pass
    sandbox.kill_tree(sandbox.children_of(os.getpid()))
    # The emptied groups are removed by the next runtime that starts (stale groups).
    os._exit(0)


def _spawn(spec: dict[str, Any], fds: list[int]) -> int:
    pid = os.fork()
    if pid:
        return pid
    # Child: arrange fds 0..3, close everything else, become the worker.
    try:
        sock_fd, out_fd, err_fd = fds[:3]
        for procs_fd in fds[3 : 3 + int(spec.get("cgroup_join") or 0)]:
            # Root mode: join the worker's freezer and memory groups before anything else, so
            # every process it ever starts is in them (and frozen with it between steps).
            os.write(procs_fd, b"0")
        high = [os.dup(fd) for fd in (sock_fd, out_fd, err_fd)]
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(high[1], 1)
        os.dup2(high[2], 2)
        os.dup2(high[0], worker.WORKER_SOCKET_FD)
        os.closerange(worker.WORKER_SOCKET_FD + 1, 1 << 16)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if spec.get("uid") is not None:
            _clear_keyrings_of(int(spec["uid"]))
        if spec.get("unprivileged_namespaces"):
            # Before the seccomp filter, which refuses new user namespaces. Checked at start-up,
            # so a failure here ends the worker rather than running it on the host's network.
            sandbox.unprivileged_namespaces()
        sandbox.best_effort(sandbox.deny_lingering_syscalls, "seccomp")
        font_cache.install_writer(_font_cache_files)
        worker.main_after_fork(spec)
    finally:
        os._exit(70)


def _clear_keyrings_of(uid: int) -> None:
    """Root mode, in the new worker before it drops privileges: empty the keyrings the kernel
    keeps for its private uid beyond any process (user, user session, persistent), so keys an
    earlier holder of the uid added (another tenant, or a runtime that was killed) are gone.
    The kernel picks those keyrings by the real uid: take it for the calls, keeping root as
    the saved uid to come back."""
    try:
        os.setresuid(uid, uid, 0)
        try:
            sandbox.clear_user_keyrings()
        finally:
            os.setresuid(0, 0, 0)
    except OSError:
        os._exit(71)  # never hand out a uid whose keys could not be cleared


def _kill_uid(uid: int) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            # kill(-1) signals every process of this uid in one pass under the tasklist lock, and
            # a process with a pending SIGKILL cannot finish a fork, so a fork bomb cannot
            # outrun it; a few passes are belt and braces.
            for _ in range(3):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    os._exit(0)
            os._exit(0)
        finally:
            os._exit(2)
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


#: matplotlib's prebuilt font cache (file name -> bytes), read once at start (font_cache.py).
_font_cache_files: dict[str, bytes] = {}


def main(
    control_fd: int, preload: str = "", private_mounts: bool = False, background: bool = False,
    font_cache_dir: str = "",
) -> None:
    global _font_cache_files
    sandbox.best_effort(sandbox.make_undumpable, "PR_SET_DUMPABLE")
    # Before the host's mounts go: the cache's directory need not stay visible to workers.
    _font_cache_files = font_cache.read(font_cache_dir)
    if private_mounts:
        # Root mode: a mount namespace of our own without the host's mounts that user code
        # does not need (data volumes, its tooling, /sys/fs/cgroup); every worker inherits it.
        sandbox.leave_host_mounts([sys.executable, sys.prefix, sys.exec_prefix, *sys.path])
    _preload(preload)
    # Everything loaded so far is shared with every worker: keep the collector from touching
    # (and so copying) those pages in each worker. The boot program turned the collector off
    # for the imports (zygote_client._boot_program), and nothing collects here either, as
    # Python's documentation of gc.freeze advises: a collection walked every object imported
    # (5 ms of each zygote's start, 40 ms with numpy and pandas) to free ~80 KB of cycles the
    # imports left (pure-Python stand-ins that C modules replaced), frozen with the rest now.
    import gc

    gc.freeze()
    gc.enable()
    if background:
        # Started at a low priority (a spare, off every step's path: zygote_client); its
        # workers run user code at the normal one. Root only (an unprivileged process cannot
        # raise its priority), so only root mode starts zygotes in the background.
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    sandbox.best_effort(sandbox.become_subreaper, "PR_SET_CHILD_SUBREAPER")
    control = _socket.socket(fileno=control_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: _shutdown())
    workers: set[int] = set()
    _send(control, {"op": "ready"})  # imports done: a spawn request is answered at once now
    while True:
        _reap(control, workers)
        try:
            ready, _, _ = select.select([control, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        if control not in ready:
            continue
        try:
            data, fds = _recv_fds(control, 1 << 20, _MAX_FDS)
        except InterruptedError:
            continue
        except OSError:
            _shutdown()
        if not data:
            _shutdown()
        message = json.loads(data)
        op = message.get("op")
        if op == "spawn":
            pid = _spawn(message["spec"], fds)
            workers.add(pid)
            spec = message["spec"]
            joined = int(spec.get("cgroup_join") or 0)
            if joined and len(fds) > 3 + joined:
                _worker_freezers[pid] = (os.dup(fds[3 + joined]), bool(spec.get("freezer_v2")))
            for fd in fds:
                os.close(fd)
            _send(control, {"op": "spawned", "id": message["id"], "pid": pid})
        elif op == "kill_uid":
            for fd in fds:
                os.close(fd)
            _kill_uid(int(message["uid"]))
            _send(control, {"op": "killed", "id": message["id"]})
        else:
            for fd in fds:
                os.close(fd)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "")
