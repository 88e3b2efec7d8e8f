"""Builds one emulated Lambda execution environment and starts its runtime (run as root).

    python3 -I -c "...; from harness.env_init import main; main(sys.stdin.read())" <root>  < config.json

Steps, in this order:
1. die with the harness (parent-death signal; this first process stays outside the freezer
   group to thaw and kill a frozen environment if the harness dies);
2. new mount, PID, IPC, network and UTS namespaces: what a Firecracker microVM gives each
   Lambda environment (its own processes, SysV/POSIX IPC, loopback-only network here: the
   executor has no route out in AWS either);
3. as PID 1 of that namespace: join the environment's freezer group (everything started below
   is in it, so the harness freezes the whole environment at once); every mount read-only and nosuid, a private tmpfs on ``/tmp``
   (the only writable place), a minimal ``/dev`` (null, zero, full, random, urandom; no
   ``/dev/shm``), a ``/proc`` of the namespace;
4. the runtime process: capability bounding set emptied, the environment's own non-root uid
   and gid with no supplementary groups (so no capabilities), ``RLIMIT_NPROC`` and
   ``RLIMIT_NOFILE`` 1024, Lambda's environment variables (fake AWS credentials as canaries),
   exec of ``harness.bootstrap``. PID 1 stays, as root, only to reap orphans; when the runtime
   exits, PID 1 exits and the kernel kills whatever is left in the namespace.

The S3 gateway endpoint's stand-in (``config["s3_gateway"]``, optional): PID 1 binds a listening
socket on the local S3's own address (``127.0.0.1:<port>``) inside the environment's network
namespace, before the runtime exists, and hands it to this keeper, which stays in the host's
namespace. The keeper relays each connection made to it to that one address of the host and to
nothing else. Pre-signed URLs of the API work unchanged inside the environment; every other port
of the host (the local DynamoDB, the Invoke endpoint, the API) stays out of reach, as the VPC's
gateway endpoint routes the executor's subnet to S3 only. The local S3 itself refuses what is not
signed with the stack's credentials, as S3 refuses what the endpoint lets through unsigned.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable

#: The C library already loaded (find_library would run ldconfig in a child process, on every
#: environment's start).
_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"
#: Connections the S3 gateway stand-in relays at once per environment; a new one beyond replaces the
#: one idle the longest.
#: Each costs the keeper (a host process outside the environment's memory cap) two threads and two
#: buffers: at most 64 MiB per environment, whatever user code opens.
GATEWAY_MAX_CONNECTIONS = 128
#: Bytes moved per socket call by the relay (states of hundreds of MiB go through it).
_RELAY_CHUNK = 256 * 1024


def _fail(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    ) != 0:
        _fail(f"mount {target}")


def _prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        _fail(f"prctl({option})")


def _mount_points() -> list[tuple[str, set[str]]]:
    from .freezer import _unescape

    points = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split(" - ")[0].split()
            points.append((_unescape(fields[4]), set(fields[5].split(","))))
    return points


def _read_only_everywhere() -> None:
    """Every mount of this (private) namespace becomes read-only and nosuid."""
    for point, options in _mount_points():
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        flags |= MS_NODEV if "nodev" in options else 0
        flags |= MS_NOEXEC if "noexec" in options else 0
        try:
            _mount(None, point, None, flags)
        except OSError:
            if point == "/":
                raise
            # A mount hidden below another one (or a special one) cannot be remounted; what
            # stays visible must be read-only, checked below for the paths that matter.


def _minimal_dev() -> None:
    # Detach the host's /dev submounts (/dev/shm, /dev/pts...) rather than only covering them.
    for point, _ in reversed(_mount_points()):
        if point.startswith("/dev/"):
            _libc.umount2(point.encode(), MNT_DETACH)
    _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for name, minor in (("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)):
        path = f"/dev/{name}"
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        os.chmod(path, 0o666)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    _mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)


def _loopback_up() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


def _gateway_listener(gateway: dict, handoff: socket.socket) -> None:
    """In PID 1, after loopback is up: listen on the local S3's address inside the namespace and
    hand the socket to the keeper (host namespace). Closed here before the runtime is forked, so
    nothing in the environment holds it (user code cannot accept the runtime's S3 connections)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((gateway["host"], gateway["port"]))
        listener.listen(128)
        socket.send_fds(handoff, [b"L"], [listener.fileno()])
    finally:
        listener.close()
        handoff.close()


class _Relayed:
    """One relayed connection: its two sockets and when bytes last moved on it."""

    def __init__(self, inside: socket.socket) -> None:
        self.inside = inside
        self.outside: socket.socket | None = None
        self.active = time.monotonic()
        self.cut = False

    def close(self) -> None:
        """End it from outside its threads (both wake up from their receive)."""
        self.cut = True
        for sock in (self.inside, self.outside):
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _pipe(source: socket.socket, sink: socket.socket, relayed: _Relayed) -> None:
    """One direction of a relayed connection, until EOF or an error; then half-close."""
    buffer = bytearray(_RELAY_CHUNK)
    view = memoryview(buffer)
    try:
        while True:
            size = source.recv_into(buffer)
            if not size:
                break
            relayed.active = time.monotonic()
            sink.sendall(view[:size])
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def _relay(relayed: _Relayed, target: tuple[str, int], release: Callable[[], None]) -> None:
    inside = relayed.inside
    try:
        try:
            outside = socket.create_connection(target, timeout=10)
        except OSError:
            return  # the local S3 is down: the environment sees its connection closed
        with outside:
            relayed.outside = outside
            if relayed.cut:
                return
            outside.settimeout(None)
            other = threading.Thread(target=_pipe, args=(outside, inside, relayed), daemon=True)
            other.start()
            _pipe(inside, outside, relayed)
            other.join()
    finally:
        inside.close()
        release()


def _serve_gateway(listener: socket.socket, target: tuple[str, int]) -> None:
    """The keeper's relay: every connection to the listener (inside the environment) goes to
    ``target`` (in the host's namespace), and only there.

    At the cap, a new connection replaces the one idle the longest (closed), rather than being
    refused: a frozen warm worker could otherwise hold every slot across invocations, and the
    runtime's own state download for the next episode (made before that worker is dropped)
    would be refused. The runtime moves state only while no user code runs, so its connection
    is never the idlest one."""
    slots = threading.BoundedSemaphore(GATEWAY_MAX_CONNECTIONS)
    live: set[_Relayed] = set()
    lock = threading.Lock()
    while True:
        try:
            inside, _ = listener.accept()
        except OSError:
            return
        if not slots.acquire(blocking=False):
            with lock:
                idlest = min(live, key=lambda r: r.active, default=None)
            if idlest is not None:
                idlest.close()
            if not slots.acquire(timeout=5):
                inside.close()
                continue
        relayed = _Relayed(inside)
        with lock:
            live.add(relayed)

        def release(relayed: _Relayed = relayed) -> None:
            with lock:
                live.discard(relayed)
            slots.release()

        threading.Thread(target=_relay, args=(relayed, target, release), daemon=True).start()


def _receive_gateway(handoff: socket.socket, target: tuple[str, int]) -> None:
    """In the keeper: take the listener PID 1 made and relay it (nothing if PID 1 failed)."""
    try:
        _, fds, _, _ = socket.recv_fds(handoff, 1, 1)
    except OSError:
        fds = []
    finally:
        handoff.close()
    if not fds:
        return
    listener = socket.socket(fileno=fds[0])
    threading.Thread(target=_serve_gateway, args=(listener, target), daemon=True).start()


def _build_filesystem(tmp_bytes: int) -> None:
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _read_only_everywhere()
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_bytes},mode=1777")
    _minimal_dev()
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _drop_to(uid: int, gid: int, nproc: int, nofile: int) -> None:
    with open(_LAST_CAP_FILE) as fh:
        last_cap = int(fh.read())
    for cap in range(last_cap + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # all uids non-zero: the kernel clears every capability


def _run_runtime(config: dict) -> None:
    """In the forked child: become the runtime (never returns)."""
    try:
        _drop_to(config["uid"], config["uid"], config["nproc"], config["nofile"])
        os.chdir(config["task_root"])
        null = os.open("/dev/null", os.O_RDONLY)
        if null != 0:
            os.dup2(null, 0)
            os.close(null)
        argv = [config["python"], "-m", "harness.bootstrap", str(config["channel_fd"])]
        os.execve(config["python"], argv, config["environment"])
    except BaseException as exc:  # noqa: BLE001 - report and die; the harness sees EOF
        print(f"lambda harness: starting the runtime failed: {exc}", file=sys.stderr, flush=True)
    os._exit(127)


def _be_init(config: dict) -> None:
    """PID 1 of the environment (never returns)."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _build_filesystem(config["tmp_bytes"])
        _loopback_up()
        socket.sethostname("localhost")
        if config.get("gateway_fd") is not None:
            _gateway_listener(config["s3_gateway"], socket.socket(fileno=config["gateway_fd"]))
    except BaseException as exc:  # noqa: BLE001
        print(f"lambda harness: building the environment failed: {exc}", file=sys.stderr, flush=True)
        os._exit(126)
    runtime = os.fork()
    if runtime == 0:
        _run_runtime(config)
    os.close(config["channel_fd"])
    os.environ.clear()
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if pid == runtime:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code & 0xFF)  # a signal as the shell says it


def _remove_group(path: str) -> None:
    """Remove an (emptying) group, then its parent if this was the last environment in it."""
    for _ in range(200):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.01)  # its last tasks are still exiting
            continue
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass  # another environment is still in it
        break


def main(raw_config: str) -> None:
    """The environment's keeper, outside its freezer group: it waits for PID 1 and, should the
    harness die (even by SIGKILL), kills and thaws the environment, which a frozen environment
    cannot do for itself (a frozen task's pending SIGKILL waits for the thaw)."""
    config = json.loads(raw_config)
    os.close(0)  # the harness's pipe; the runtime gets /dev/null below
    init = 0

    def on_harness_death(_signum: int, _frame: object) -> None:
        if init:
            os.kill(init, signal.SIGKILL)  # PID 1 gone: the kernel kills its whole namespace
        with open(config["freeze_file"], "w") as fh:
            fh.write(config["thaw_value"])
        if init:
            os.waitpid(init, 0)
        for group in (config["cgroup"], config["memory_cgroup"]):
            if group:
                _remove_group(group)
        os._exit(1)

    signal.signal(signal.SIGTERM, on_harness_death)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != config["harness_pid"]:
        os._exit(1)  # the harness died before we got here
    # Only the PID namespace here: this process keeps the host's mounts (it must be able to
    # write the freezer file when the environment's are read-only).
    own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    if _libc.unshare(CLONE_NEWPID) != 0:
        _fail("unshare(CLONE_NEWPID)")
    gateway = config.get("s3_gateway")
    handoff = None
    if gateway:
        handoff, inner = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        config["gateway_fd"] = inner.detach()
    init = os.fork()  # the first child in a new PID namespace is its PID 1
    if init == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.close(own_pid_namespace)  # the host's PID namespace: nothing inside keeps a handle on it
        if handoff is not None:
            handoff.close()  # the keeper's end
        for group in (config["cgroup"], config["memory_cgroup"]):
            if group:
                with open(os.path.join(group, "cgroup.procs"), "w") as fh:
                    fh.write("0")  # this process: all it starts is in the group from now on
        if _libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWUTS) != 0:
            print("lambda harness: unshare failed", file=sys.stderr, flush=True)
            os._exit(125)
        _be_init(config)
    os.close(config["channel_fd"])
    # Back to this process's own PID namespace for its children: the kernel refuses to start a
    # thread while they differ, and the relay runs in threads.
    if _libc.setns(own_pid_namespace, CLONE_NEWPID) != 0:
        _fail("setns(CLONE_NEWPID)")
    os.close(own_pid_namespace)
    if handoff is not None:
        os.close(config["gateway_fd"])
        _receive_gateway(handoff, (gateway["host"], gateway["port"]))
    while True:
        try:
            _, status = os.waitpid(init, 0)
            break
        except InterruptedError:
            continue
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main(sys.stdin.read())
