"""The worker: one sandboxed process serving the steps of exactly one episode.

Forked from the zygote, it waits for its first step, applies the step's limits, restores the
snapshot (or starts fresh), then serves steps of the same episode while the runtime keeps it warm.
File descriptors: 0 = /dev/null, 1/2 = the runtime's output files, 3 = the runtime's socket.
"""

from __future__ import annotations

import _socket  # not ``socket``: see zygote.py
import builtins
import errno
import os
import resource
import signal
import sys
from typing import Any

from . import cell, sandbox, seeding, workfiles
from . import display as rich_display
from .policy import ImportPolicy
from .wire import PayloadReader, WireError, recv_frame_header, send_frame

WORKER_SOCKET_FD = 3
#: matplotlib's config and font cache (MPLCONFIGDIR) inside the working directory: the runtime's,
#: never part of the episode's files.
MPL_CONFIG_DIR = ".matplotlib"


def _wipe_directory(path: str) -> None:
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for name in entries:
        sandbox.remove_path(os.path.join(path, name))


def _other_pids_visible() -> bool:
    """With /proc mounted hidepid=2 (root mode) only our own uid's processes are listed."""
    me = str(os.getpid())
    return any(
        name.isdigit() and name != me and not sandbox.is_zombie(int(name)) for name in os.listdir("/proc")
    )


def _kill_leftovers(private_uid: bool, hidepid: bool) -> None:
    """End every process user code started; the runtime verifies this from outside anyway."""
    if private_uid:
        # kill(-1) as our private uid reaches every process of that uid but ourselves. It walks
        # every process on the machine (milliseconds), so with hidepid only when /proc shows
        # one of ours.
        for _ in range(100 if hidepid else 3):
            if hidepid and not _other_pids_visible():
                break
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            _reap()
    else:
        sandbox.kill_tree(sandbox.children_of(os.getpid()))
    _reap()


def _reap() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _output_files_intact(expected: tuple[int, int]) -> bool:
    try:
        return (os.fstat(1).st_ino, os.fstat(2).st_ino) == expected
    except OSError:
        return False


def _reseed() -> None:
    """Modules preloaded in the zygote seeded their generators there: every worker would
    otherwise draw the same "random" numbers as every other episode."""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        try:
            numpy.random.seed()
        except Exception:  # noqa: BLE001
            pass


def _reset_to_cold(table: dict[str, Any], pristine_table: dict[str, Any], pristine_builtins: dict[str, Any]) -> None:
    """Warm equals cold: what a restore in a fresh worker would not bring back is undone here.

    Interval timers stop (a restore has none); the episode's builtins table and the real
    ``builtins`` module are put back if the cell changed them (a restore rebuilds both).
    """
    for which in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
        signal.setitimer(which, 0)
    if table != pristine_table:
        table.clear()
        table.update(pristine_table)
    current = builtins.__dict__
    if current != pristine_builtins:
        current.clear()
        current.update(pristine_builtins)


def _apply_step_limits(header: dict[str, Any]) -> None:
    memory_bytes = int(header["memory_mb"]) * 1024 * 1024
    sandbox.set_limit(resource.RLIMIT_AS, memory_bytes)
    sandbox.set_limit(resource.RLIMIT_DATA, memory_bytes)


def serve(
    sock: _socket.socket, workdir: str, private_uid: bool, hidepid: bool, scratch_dirs: tuple[str, ...]
) -> None:
    namespace: dict[str, Any] | None = None
    policy: ImportPolicy | None = None
    #: The episode's files as of its last step: written back before every step (warm or cold),
    #: since the working directory is wiped after each one.
    files: list[workfiles.Entry] = []
    builtins_table: dict[str, Any] | None = None
    pristine_table: dict[str, Any] = {}
    pristine_builtins = dict(builtins.__dict__)
    my_pid = os.getpid()
    output_files = (os.fstat(1).st_ino, os.fstat(2).st_ino)
    send_frame(sock, {"op": "ready", "pid": my_pid})
    while True:
        try:
            # The payload (a cold step's state) stays on the socket: restoring reads it straight
            # into the arrays' own memory.
            header, payload_len = recv_frame_header(sock)
        except WireError:
            os._exit(0)
        if header.get("op") != "step":
            os._exit(0)
        if namespace is not None and payload_len:
            try:  # a warm worker already holds the state: never sent one, dropped if it were
                PayloadReader(sock, payload_len).drain()
            except WireError:
                os._exit(0)
        cap = int(header["max_output_bytes"])
        out = cell.CappedFdWriter(1, cap)
        err = cell.CappedFdWriter(2, cap)
        reply: dict[str, Any] = {"op": "result", "exit_code": 0, "dropped": []}
        os.chdir(workdir)
        rich_display.reset()
        try:
            if namespace is None:
                _apply_step_limits(header)
                policy = ImportPolicy.from_json(header["policy"])
                if payload_len:
                    reader = PayloadReader(sock, payload_len)
                    try:
                        files = workfiles.read_archive(reader)
                        namespace = cell.restore_namespace(reader, policy)
                        if reader.remaining:
                            raise ValueError("trailing bytes after the state")
                    except BaseException as exc:  # noqa: BLE001
                        # The runtime is still sending: read the rest so it gets our reply.
                        try:
                            reader.drain()
                        except WireError:
                            os._exit(0)
                        if isinstance(exc, MemoryError):
                            raise
                        err.write(
                            "The episode's saved state could not be restored "
                            f"({type(exc).__name__}: {exc}). Reset the episode.\n"
                        )
                        reply.update(exit_code=1, error_code="snapshot_restore_failed")
                        send_frame(sock, reply)
                        os._exit(0)
                    del reader
                else:
                    namespace = cell.new_namespace(policy)
                if isinstance(header.get("seed"), int) and seeding.state() is None:
                    # A fresh seeded episode (or one whose only state is uploaded files): a
                    # snapshot of a seeded episode's step carries the generators' states.
                    seeding.seed_episode(header["seed"])
            _wipe_directory(workdir)
            workfiles.unpack_directory(workdir, files)
            assert policy is not None
            if builtins_table is None:
                builtins_table = namespace["__builtins__"]
                pristine_table = dict(builtins_table)
            # User code may have deleted or replaced it; exec would then add the real builtins.
            namespace["__builtins__"] = builtins_table
            outcome = cell.run_cell(namespace, header["code"], header["cell_name"], policy, out, err)
            if os.getpid() != my_pid:  # a process user code forked: it must not answer the runtime
                os._exit(0)
            reply.update(exit_code=outcome.exit_code, error_code=outcome.error_code)
            if outcome.out_of_memory:
                reply["out_of_memory"] = True
                send_frame(sock, reply)
                os._exit(0)
            # First, before any runtime code below calls a builtin the cell may have replaced.
            _reset_to_cold(builtins_table, pristine_table, pristine_builtins)
            try:
                _kill_leftovers(private_uid, hidepid)
                sandbox.remove_path(os.path.join(workdir, MPL_CONFIG_DIR))
                packed = workfiles.pack_directory(workdir)
                for directory in scratch_dirs:
                    _wipe_directory(directory)
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
                # The cell left every file descriptor open: say so, keep the input state.
                err.write(
                    f"OSError: [Errno {exc.errno}] Too many open files: the step left all "
                    f"{resource.getrlimit(resource.RLIMIT_NOFILE)[0]} file descriptors of the process "
                    "open; the episode's state is as it was before this step. Close files you open.\n"
                )
                send_frame(sock, {"op": "result", "exit_code": 1, "error_code": "too_many_open_files", "dropped": []})
                os._exit(0)
            saved = cell.save_namespace(namespace)
            for item in saved.dropped:
                # Warm equals cold: a name the snapshot could not keep is gone now too.
                namespace.pop(item["name"], None)
            files = packed.entries
            reply["dropped"] = saved.dropped + packed.dropped
            reply["reusable"] = _output_files_intact(output_files)
            outputs = rich_display.take()
            if outputs:
                reply["display"] = outputs
            send_frame(sock, reply, workfiles.payload_parts(workfiles.encode_archive(files), saved.parts))
            # The parts are views of the namespace's arrays: holding them would stop user code
            # from resizing those arrays in the next step.
            del saved
        except MemoryError:
            if os.getpid() != my_pid:
                os._exit(0)
            try:
                err.write("MemoryError: the step ran out of memory\n")
                send_frame(sock, {"op": "result", "exit_code": 1, "out_of_memory": True,
                                  "error_code": "out_of_memory", "dropped": []})
            finally:
                os._exit(0)
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                os._exit(0)
            raise


def main_after_fork(spec: dict[str, Any]) -> None:
    """Entry in the zygote's child, fds already in place. Never returns."""
    try:
        os.setsid()
        workdir = spec["workdir"]
        scratch_dirs: tuple[str, ...] = (workdir,)
        if spec.get("private_mounts"):
            sandbox.private_namespaces(network=bool(spec.get("private_network")), ipc=bool(spec.get("private_ipc")))
            # Root mode: private tmpfs everywhere user code can write; the working directory is
            # the private /tmp itself.
            sandbox.private_mounts(int(spec["tmp_bytes"]))
            workdir = "/tmp"
            scratch_dirs = tuple(d for d in sandbox.PRIVATE_TMP_DIRS if os.path.isdir(d))
        else:
            os.makedirs(workdir, mode=0o700, exist_ok=True)
        sandbox.set_limit(resource.RLIMIT_CORE, 0)
        sandbox.set_limit(resource.RLIMIT_FSIZE, int(spec["max_file_bytes"]))
        sandbox.set_limit(resource.RLIMIT_NOFILE, int(spec["max_open_files"]))
        sandbox.set_limit(resource.RLIMIT_CPU, int(spec["max_cpu_seconds"]))
        if spec.get("uid") is not None:
            if not spec.get("private_mounts"):
                os.chown(workdir, int(spec["uid"]), int(spec["gid"]))
                os.chmod(workdir, 0o700)
            sandbox.set_limit(resource.RLIMIT_NPROC, int(spec["max_processes"]))
            sandbox.drop_privileges(int(spec["uid"]), int(spec["gid"]))
        else:
            sandbox.set_limit(resource.RLIMIT_NPROC, int(spec["max_processes"]))
        # After the credential change (which resets both flags):
        sandbox.best_effort(sandbox.die_with_parent, "PR_SET_PDEATHSIG")
        sandbox.best_effort(sandbox.make_undumpable, "PR_SET_DUMPABLE")
        sandbox.best_effort(sandbox.no_new_privs, "PR_SET_NO_NEW_PRIVS")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # file-size limit: EFBIG, not death
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.umask(0o077)
        os.chdir(workdir)
        os.environ.clear()
        os.environ.update(
            {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "HOME": workdir,
                "TMPDIR": workdir,
                # Figures render off-screen; cells show them without plt.show() (display.py).
                "MPLBACKEND": "Agg",
                "MPLCONFIGDIR": os.path.join(workdir, MPL_CONFIG_DIR),
                "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
            }
        )
        sys.argv = [""]
        _reseed()
        sock = _socket.socket(fileno=WORKER_SOCKET_FD)
        serve(sock, workdir, spec.get("uid") is not None, bool(spec.get("private_mounts")), scratch_dirs)
    except BaseException:  # noqa: BLE001 - never return into the zygote's loop
        pass
    os._exit(70)
