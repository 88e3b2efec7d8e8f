"""Process-level hardening helpers (Linux): prctl flags, resource limits, privilege drop."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
from collections.abc import Iterable

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

#: The C library already loaded in this process (find_library would run ldconfig in a child
#: process in every zygote's start: one zygote per episode).
_libc = ctypes.CDLL(None, use_errno=True)


CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

#: Directories user code can write to on a stock Linux; each gets a private tmpfs in root mode.
PRIVATE_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")


def remove_path(path: str) -> None:
    """Remove a file, link or directory tree that user code left behind; never raises."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            _remove_tree(path)
        else:
            os.unlink(path)
    except OSError:
        pass


def _remove_tree(path: str) -> None:
    """``shutil.rmtree(path, ignore_errors=True)`` without importing anything: a worker wipes a
    directory its step left under the step's memory limit, where an import (shutil brings bz2, lzma
    and fnmatch, ~1 MB) could fail a step that succeeded; and every zygote imports this module,
    where shutil was ~3% of its start. Walks by directory descriptors, never following a link."""
    for _, dirs, files, dir_fd in os.fwalk(path, topdown=False, follow_symlinks=False):
        for name in files:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except OSError:
                pass
        for name in dirs:
            try:
                os.rmdir(name, dir_fd=dir_fd)
            except NotADirectoryError:  # a link to a directory is listed with the directories
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except OSError:
                    pass
            except OSError:
                pass
    os.rmdir(path)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} failed: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def private_namespaces(*, network: bool, ipc: bool) -> None:
    """Root only, before the privilege drop: a private mount namespace, and optionally a network
    namespace (its own loopback, left down: nothing of the host, not even its 127.0.0.1
    services, is reachable; bringing it up costs ~15 ms per worker) and an IPC namespace (SysV
    shm/msg/sem and POSIX message queues are private and die with the worker)."""
    flags = CLONE_NEWNS | (CLONE_NEWNET if network else 0) | (CLONE_NEWIPC if ipc else 0)
    _check(_libc.unshare(flags), "unshare(CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWIPC)")
    # Its own groups appear as "/" in /proc/self/cgroup (the host's layout stays hidden).
    _libc.unshare(CLONE_NEWCGROUP)


CLONE_NEWUSER = 0x10000000


def unprivileged_namespaces() -> None:
    """Not root, in a new worker before its seccomp filter (which refuses new user namespaces):
    a user namespace of its own, and in it a network namespace (a loopback left down: nothing of
    the machine's network, not even its 127.0.0.1 services, is reachable) and an IPC namespace.
    The worker keeps its uid towards the host's files; inside, it has no capability over
    anything of the host."""
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC), "unshare(CLONE_NEWUSER|CLONE_NEWNET)")


def unprivileged_namespaces_available() -> bool:
    """Whether this kernel lets this (unprivileged) process make the namespaces of
    ``unprivileged_namespaces`` (some distributions turn unprivileged user namespaces off)."""
    pid = os.fork()
    if pid == 0:
        try:
            unprivileged_namespaces()
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the child only reports by its exit status
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def leave_host_mounts(needed: list[str]) -> None:
    """Root only (the zygote, once): a mount namespace of its own without the host's mounts
    that user code does not need (see ``hide_host_mounts``); its workers inherit it."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    hide_host_mounts(needed)
    read_only_host_mounts()


MNT_DETACH = 2
#: Mount points a worker keeps besides those holding the interpreter and its libraries.
_KEPT_MOUNT_ROOTS = ("/proc", "/sys", "/dev", *PRIVATE_TMP_DIRS)


def _unescape_mount_path(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def hide_host_mounts(needed: list[str]) -> None:
    """Root only, in the worker's own mount namespace: detach every mount that user code does
    not need (data volumes, the host's tooling), so neither its files nor its paths (in
    /proc/self/mountinfo) are visible. Kept: /, /proc, /sys, /dev, the private temporary
    directories, and whatever holds a path in ``needed`` (the interpreter, its libraries)."""
    try:
        with open("/proc/self/mountinfo") as fh:
            points = [_unescape_mount_path(line.split()[4]) for line in fh]
    except (OSError, IndexError):
        return
    real_needed = [os.path.realpath(p) for p in needed if p]

    def kept(point: str) -> bool:
        if point == "/sys/fs/cgroup" or point.startswith("/sys/fs/cgroup/"):
            return False  # other workers' groups (their memory use, their names)
        if point == "/" or any(point == r or point.startswith(r + "/") for r in _KEPT_MOUNT_ROOTS):
            return True
        return any(path == point or path.startswith(point.rstrip("/") + "/") for path in real_needed)

    detached: list[str] = []
    for point in sorted(set(points), key=len):
        if kept(point) or any(point.startswith(d.rstrip("/") + "/") for d in detached):
            continue
        # A lazy detach takes the mounts below it along: one call per hidden subtree.
        if _libc.umount2(point.encode(), MNT_DETACH) == 0:
            detached.append(point)


MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
#: Per-mount flags that a read-only bind remount must restate, or it would clear them.
_MOUNT_FLAG_BITS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024,
                    "nodiratime": 2048, "relatime": 1 << 21, "strictatime": 1 << 24}


def read_only_host_mounts() -> None:
    """Root only, in the zygote's mount namespace (after ``hide_host_mounts``): every mount
    that is left, the host's root filesystem first, becomes read-only here (not on the host).
    A world-writable directory of the host (a build's output directory left 0777, a spool
    directory) would otherwise take files from user code: a file planted for the host's own
    tools or for the next tenant that gets the same uid, or the host's disk filled outside
    every tmpfs limit. Workers then mount their private tmpfs over the temporary
    directories; /proc stays as it is (each worker mounts its own)."""
    try:
        with open("/proc/self/mountinfo") as fh:
            entries = [line.split() for line in fh]
    except OSError:
        return
    for fields in sorted(entries, key=lambda f: len(f[4]) if len(f) > 5 else 0):
        if len(fields) < 6:
            continue
        point, options = _unescape_mount_path(fields[4]), fields[5].split(",")
        if point == "/proc" or point.startswith("/proc/") or "ro" in options:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        for option in options:
            flags |= _MOUNT_FLAG_BITS.get(option, 0)
        try:
            mount("none", point, None, flags, None)
        except OSError:
            pass  # a mount that refuses (none known): its permissions still apply


_MASKED_PROC_FILES = ("/proc/key-users", "/proc/keys")


def private_mounts(tmp_bytes: int) -> None:
    """Root only, in the worker's own mount namespace (``private_namespaces``): fresh tmpfs on
    every world-writable directory and a /proc that shows only the caller's own uid (hidepid), so
    one episode cannot see another episode's files or any process but its own; all of it vanishes
    with the worker."""
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    for path in PRIVATE_TMP_DIRS:
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_bytes},mode=1777")
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    # Kernel-wide tables that name other workers' uids (every uid that ever had a keyring, with
    # its key counts: who else runs here and how much): empty in the worker.
    for table in _MASKED_PROC_FILES:
        if os.path.exists(table):
            mount("/dev/null", table, None, MS_BIND, None)
    if os.path.isdir("/dev/mqueue"):  # show this IPC namespace's queues, not the host's
        mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)


def prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}) failed: {os.strerror(err)}")


def best_effort(step, what: str) -> None:  # noqa: ANN001
    """Run a hardening step; where the platform forbids it (a seccomp filter), warn and go on."""
    try:
        step()
    except OSError as exc:
        import sys

        print(f"coding-env runtime: {what} unavailable: {exc}", file=sys.stderr, flush=True)


def make_undumpable() -> None:
    """Same-uid processes can no longer read our /proc/<pid>/environ, mem, fd links (ptrace)."""
    prctl(PR_SET_DUMPABLE, 0)


def become_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


def no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
_KEYCTL_GET_PERSISTENT = 22
_KEYCTL_CLEAR = 7
_KEY_SPEC_THREAD_KEYRING = -1
_KEY_SPEC_USER_KEYRING = -4
_KEY_SPEC_USER_SESSION_KEYRING = -5


def clear_user_keyrings() -> None:
    """Empty the calling uid's kernel keyrings that outlive its processes: the user and user
    session keyrings (kept by the kernel for the uid, not for a process) and the persistent
    keyring (kept for days). Keys user code added there would otherwise reach the next
    episode or tenant that runs as this uid (a private uid is reused; Lambda mode has one)."""
    import platform

    number = _SYS_KEYCTL.get(platform.machine())
    if number is None:
        return
    syscall = _libc.syscall
    syscall.restype = ctypes.c_long
    for keyring in (_KEY_SPEC_USER_KEYRING, _KEY_SPEC_USER_SESSION_KEYRING):
        syscall(number, _KEYCTL_CLEAR, ctypes.c_long(keyring))
    persistent = syscall(number, _KEYCTL_GET_PERSISTENT, ctypes.c_long(-1), ctypes.c_long(_KEY_SPEC_THREAD_KEYRING))
    if persistent > 0:
        syscall(number, _KEYCTL_CLEAR, ctypes.c_long(persistent))


#: System calls user code never needs whose effects outlive every process or escape the
#: freeze: kernel keyrings (kept per uid), POSIX message queues (kept per IPC namespace until
#: unlinked; Lambda mode cannot list them to remove them), io_uring (kernel worker threads
#: doing I/O for a frozen process) and userfaultfd (stalls the kernel mid-copy, a race tool).
_DENIED_SYSCALLS = {
    "x86_64": (0xC000003E, (248, 249, 250, 240, 241, 425, 426, 427, 323)),
    "aarch64": (0xC00000B7, (217, 218, 219, 180, 181, 425, 426, 427, 282)),
}
#: (clone, unshare, clone3): a new user namespace is refused. Inside one an unprivileged
#: process is root with every capability over namespaces of its own, which opens the kernel's
#: whole namespace-gated attack surface (netfilter, mounts of filesystems, ...) to user code.
#: clone and unshare carry the flags in their first argument (the filter can read it); clone3
#: passes them in a struct the filter cannot read, so it answers ENOSYS, on which the C
#: library falls back to clone (threads, fork, posix_spawn keep working).
_NAMESPACE_SYSCALLS = {"x86_64": (56, 272, 435), "aarch64": (220, 97, 435)}
CLONE_NEWUSER = 0x10000000
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_SECCOMP_RET_ALLOW, _SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
_X32_SYSCALL_BIT = 0x40000000
#: Offsets in struct seccomp_data: nr, arch, args[0] (its low 32 bits: both are little-endian).
_DATA_NR, _DATA_ARCH, _DATA_ARG0_LOW = 0, 4, 16


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _assemble(program: list[tuple]) -> list[tuple[int, int, int, int]]:
    """Classic BPF with labels: an item is ``("label", name)`` or ``(code, jt, jf, k)`` whose
    ``jt``/``jf`` may name a later label (resolved to the relative jump BPF wants)."""
    positions: dict[str, int] = {}
    index = 0
    for item in program:
        if item[0] == "label":
            positions[item[1]] = index
        else:
            index += 1
    out: list[tuple[int, int, int, int]] = []
    for item in program:
        if item[0] == "label":
            continue
        code, jt, jf, k = item
        here = len(out)

        def offset(target: int | str) -> int:
            return positions[target] - here - 1 if isinstance(target, str) else target

        out.append((code, offset(jt), offset(jf), k))
    return out


def seccomp_program(machine: str) -> list[tuple[int, int, int, int]]:
    """The worker's filter for ``machine`` (see ``deny_lingering_syscalls``)."""
    import errno

    audit_arch, numbers = _DENIED_SYSCALLS[machine]
    clone, unshare, clone3 = _NAMESPACE_SYSCALLS[machine]
    ld_w_abs, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    return _assemble([
        (ld_w_abs, 0, 0, _DATA_ARCH),
        (jeq, 0, "deny", audit_arch),  # a foreign ABI: refuse everything
        (ld_w_abs, 0, 0, _DATA_NR),
        (jge, "deny", 0, _X32_SYSCALL_BIT),
        *((jeq, "deny", 0, number) for number in numbers),
        (jeq, "enosys", 0, clone3),
        (jeq, "flags", 0, clone),
        (jeq, "flags", 0, unshare),
        (ret, 0, 0, _SECCOMP_RET_ALLOW),
        ("label", "flags"),
        (ld_w_abs, 0, 0, _DATA_ARG0_LOW),
        (jset, "deny", 0, CLONE_NEWUSER),
        (ret, 0, 0, _SECCOMP_RET_ALLOW),
        ("label", "enosys"),
        (ret, 0, 0, _SECCOMP_RET_ERRNO | errno.ENOSYS),
        ("label", "deny"),
        (ret, 0, 0, _SECCOMP_RET_ERRNO | errno.EPERM),
    ])


def deny_lingering_syscalls() -> None:
    """A seccomp filter (inherited by everything the worker starts, never removable) that
    answers EPERM to ``_DENIED_SYSCALLS``, to the x32 ABI (other numbers for the same calls)
    and to clone/unshare asking for a new user namespace, and ENOSYS to clone3
    (``_NAMESPACE_SYSCALLS``). Sets no_new_privs first, which an unprivileged process needs
    for a filter. The worker's own namespaces (root mode) are made after this: only
    CLONE_NEWUSER is refused, and the worker never asks for it."""
    import errno
    import platform

    if platform.machine() not in _DENIED_SYSCALLS:
        raise OSError(errno.ENOSYS, f"no system call table for {platform.machine()}")
    program = seccomp_program(platform.machine())
    filters = (_SockFilter * len(program))(*(_SockFilter(*insn) for insn in program))
    prog = _SockFprog(len(program), filters)
    no_new_privs()
    _check(_libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp filter")


def set_limit(which: int, value: int) -> None:
    """Set soft and hard limit; only lowers (an unprivileged process cannot raise a hard limit)."""
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY and value > hard:
        value = hard
    resource.setrlimit(which, (value, value))


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


#: /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN; without it, scan /proc.
HAS_PROC_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _children_by_scan(pid: int) -> list[int]:
    result: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and int(fields[1]) == pid:
            result.append(int(name))
    return result


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list), from /proc; empty if it is gone."""
    if not HAS_PROC_CHILDREN:
        return _children_by_scan(pid)
    result: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return result
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                result.extend(int(x) for x in fh.read().split())
        except OSError:
            continue
    return result


def descendants_of(pid: int) -> list[int]:
    seen: list[int] = []
    stack = children_of(pid)
    while stack:
        child = stack.pop()
        if child in seen:
            continue
        seen.append(child)
        stack.extend(children_of(child))
    return seen


def is_zombie(pid: int) -> bool:
    """True if ``pid`` is dead but not yet reaped (or already gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def kill_tree(root_pids: Iterable[int], *, rounds: int = 50) -> None:
    """Stop, then kill, every process below (and including) ``root_pids``, until none is left.

    SIGSTOP first so a fork bomb cannot outrun the walk; repeated until a walk finds nothing.
    """
    roots = list(root_pids)
    for _ in range(rounds):
        roots = [pid for pid in roots if not is_zombie(pid)] or roots
        found: list[int] = []
        for root in roots:
            found.extend(descendants_of(root))
        targets = [*roots, *found] if roots else found
        if not found:
            kill_all(roots)
            return
        for pid in targets:
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
        kill_all(targets)
