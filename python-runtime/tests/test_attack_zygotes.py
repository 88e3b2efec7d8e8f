"""Attacks on the processes an episode shares or sits next to: its zygote (which, beyond the
tenant's interpreter bound or in a burst, also forks the tenant's other episodes' workers), the
runtime, and another episode's frozen warm worker. As root (root mode), each worker has its own
uid; tests/test_attack_lambda_reply.py covers what one uid allows in Lambda mode. Each test
asserts the safe outcome."""

from __future__ import annotations

import json
import os
import unittest

from coding_env_runtime.runtime import Runtime, RuntimeOpts
from tests.test_isolation_root import ROOT, TenantEpisode

#: Everything a process may try on another without ptrace rights or with them: signals,
#: scheduling, limits, its memory (/proc/<pid>/mem, process_vm_readv) and its descriptors
#: (pidfd_getfd). Prints what succeeded, per target (``only``: these attempts alone, if any).
TOUCH = """
import ctypes, json, os, resource, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(4096)
def mapped(pid):
    try:  # a readable mapping of the target (unreadable maps: a usual executable's address)
        for line in open(f"/proc/{{pid}}/maps"):
            if line.split()[1].startswith("r"):
                return int(line.split("-")[0], 16)
    except OSError:
        pass
    return 0x400000
def read_mem(pid):
    with open(f"/proc/{{pid}}/mem", "rb") as fh:
        fh.seek(mapped(pid))
        fh.read(1)
def attempts(pid):
    yield "SIGSTOP", lambda: os.kill(pid, signal.SIGSTOP)
    yield "SCHED_IDLE", lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    yield "setpriority", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)
    yield "prlimit", lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (4, 4))
    yield "mem", lambda: read_mem(pid)
    yield "environ", lambda: open(f"/proc/{{pid}}/environ", "rb").read(1)
    def vm_read():
        local, remote = iovec(ctypes.addressof(buf), 1), iovec(mapped(pid), 1)
        one, none = ctypes.c_ulong(1), ctypes.c_ulong(0)  # full-width variadic arguments
        if libc.syscall(310, ctypes.c_long(pid), ctypes.byref(local), one, ctypes.byref(remote), one, none) < 0:
            raise OSError(ctypes.get_errno(), "process_vm_readv")
    yield "process_vm_readv", vm_read
    def getfd():
        pidfd = os.pidfd_open(pid)
        try:
            fd = libc.syscall(438, ctypes.c_long(pidfd), ctypes.c_long(0), ctypes.c_ulong(0))  # pidfd_getfd: its fd 0
            if fd < 0:
                raise OSError(ctypes.get_errno(), "pidfd_getfd")
        finally:
            os.close(pidfd)
    yield "pidfd_getfd", getfd
done = {{}}
for pid in {pids}:
    for name, attempt in attempts(pid):
        if {only!r} and name not in {only!r}:
            continue
        try:
            attempt()
            done.setdefault(str(pid), []).append(name)
        except OSError:
            pass
print(json.dumps(done))
"""


@unittest.skipUnless(ROOT, "root mode only")
class SharedZygoteTest(unittest.TestCase):
    def test_an_episode_cannot_touch_its_shared_zygote_the_runtime_or_a_sibling_episode(self) -> None:
        # One interpreter per tenant: the tenant's second episode forks from the first one's
        # zygote (documented: same tenant only). Episode A then goes after that zygote (every
        # later worker of B inherits its state), the runtime and B's frozen warm worker.
        runtime = Runtime(RuntimeOpts(idle_workers=1, interpreters_per_tenant=1, max_warm_workers=8))
        self.addCleanup(runtime.close)
        a, b = TenantEpisode(runtime, "tenant-a"), TenantEpisode(runtime, "tenant-a")
        first_a = a.step("import os\nprint(os.getpid(), os.getppid())")
        first_b = b.step("import os\nprint(os.getpid(), os.getppid())")
        a_pid, zygote = map(int, first_a["stdout"].split())
        b_pid, b_zygote = map(int, first_b["stdout"].split())
        self.assertEqual(zygote, b_zygote)  # the shared zygote
        self.assertEqual(runtime.pool.tenant_zygote_forks, 1)
        out = a.step(TOUCH.format(pids=[zygote, os.getpid(), b_pid], only=()))
        self.assertEqual((out["exit_code"], json.loads(out["stdout"])), (0, {}), out["stderr"])
        # B is untouched: warm, its limits and scheduling as they were; a new worker of the
        # shared zygote too.
        probe = "import os, resource\nprint(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0), resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 4)"
        later_b = b.step(probe)
        self.assertEqual((later_b["warm"], later_b["stdout"]), (True, "0 0 True\n"), later_b["stderr"])
        third = TenantEpisode(runtime, "tenant-a").step(probe + "\nprint(os.getppid())")
        self.assertEqual(third["stdout"], f"0 0 True\n{zygote}\n", third["stderr"])
        self.assertNotEqual(a_pid, b_pid)


if __name__ == "__main__":
    unittest.main()
