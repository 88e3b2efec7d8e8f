"""The runtime as Lambda runs it: not root, so no uid change and no private mounts.

The runtime itself is started as an unprivileged user (nobody) in a child process; the steps it
runs must still be isolated as far as that mode allows: empty environment, non-dumpable runtime
processes, timeouts and leftover processes killed through the subreaper and process tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unittest
import uuid

from .world_readable import package_copy, readable_by_others

NOBODY = 65534

DRIVER = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from coding_env_runtime.runtime import Runtime, RuntimeOpts
from tests.support import Episode
marker = sys.argv[2]
runtime = Runtime(RuntimeOpts(idle_workers=1))
out = {"privileged": runtime.privileged, "euid": os.geteuid()}
ep = Episode(runtime, {"mode": "full"})
out["first"] = ep.step("import os\nkept = 1\nprint(sorted(os.environ))\nos.getuid()")
out["warm"] = ep.step("kept + 1")
out["timeout"] = ep.step("import time\ntime.sleep(60)", timeout_ms=500)
out["after_timeout"] = ep.step("kept")
out["daemon"] = ep.step(
    f"import os, subprocess\nsubprocess.Popen(['sleep', '{marker}'])\n"
    f"os.system('(setsid sleep {marker} &)')\n'ok'")
time.sleep(0.2)
seen = []
for pid in os.listdir('/proc'):
    if pid.isdigit() and int(pid) != os.getpid():  # the driver's argv holds the marker
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as fh:
                if marker.encode() in fh.read():
                    seen.append(pid)
        except OSError:
            pass
out["survivors"] = seen
zygote = runtime._zygote.pid
out["zygote_environ_owner"] = os.stat(f"/proc/{zygote}/environ").st_uid
out["read_zygote_environ"] = ep.step(
    f"try:\n    open('/proc/{zygote}/environ','rb').read()\n    r = 'readable'\n"
    f"except OSError as e:\n    r = type(e).__name__\nr")
out["tmp_file"] = ep.step(f"open('/tmp/ce-{marker}', 'w').write('x')\n'written'")
out["tmp_file_left"] = os.path.exists(f"/tmp/ce-{marker}")
out["kill_zygote"] = ep.step("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(5)")
out["after_kill_zygote"] = ep.step("kept")
out["fork_bomb"] = ep.step("import os\nwhile True:\n    os.fork()", timeout_ms=3000)
out["after_bomb"] = Episode(runtime).step("6 * 7")
# Lambda mode (one uid): a warm worker is stopped between its steps, and no other episode's
# worker exists while a step runs.
from tests.test_isolation_root import POSIX_TIMER
a = Episode(runtime, {"mode": "full"})
a_pid = int(a.step("import os\nos.getpid()")["stdout"])
for _ in range(500):  # its SIGSTOP is pending at once; it stops when next scheduled
    with open(f"/proc/{a_pid}/stat", "rb") as fh:
        out["warm_worker_state"] = fh.read().rsplit(b")", 1)[1].split()[0].decode()
    if out["warm_worker_state"] == "T":
        break
    time.sleep(0.01)
b = Episode(runtime, {"mode": "full"})
out["other_episode_during_step"] = b.step(
    f"try:\n    state = open('/proc/{a_pid}/stat').read().rsplit(')', 1)[1].split()[0]\n"
    f"    status = dict(l.split(':', 1) for l in open('/proc/{a_pid}/status') if ':' in l)\n"
    "    pending = int(status['ShdPnd'], 16) | int(status['SigPnd'], 16)\n"
    "    if pending & (1 << 8):\n        state = 'killed'  # SIGKILL pending: no user code runs again\n"
    "except OSError:\n    state = 'gone'\nstate")
ipc_key = 0x5EE000 + os.getpid() % 0xFFF
ipc = "import ctypes\nlibc = ctypes.CDLL(None)\n"
out["ipc_left"] = Episode(runtime, {"mode": "full"}).step(
    ipc + f"[libc.shmget({ipc_key}, 4096, 0o1000 | 0o600), libc.msgget({ipc_key}, 0o1000 | 0o600)]")
out["ipc_found"] = Episode(runtime, {"mode": "full"}).step(
    ipc + f"[libc.shmget({ipc_key}, 0, 0), libc.msgget({ipc_key}, 0)]")
timer = Episode(runtime, {"mode": "full"})
out["timer_first"] = timer.step(POSIX_TIMER)
time.sleep(1.5)  # ~300 ticks if the worker ran meanwhile
out["timer_second"] = timer.step("ticks")
runtime.close()
for value in out.values():
    if isinstance(value, dict):
        value.pop("snapshot", None)
print(json.dumps(out))
"""


@unittest.skipUnless(os.geteuid() == 0, "needs root to start the runtime as another user")
@unittest.skipUnless(
    readable_by_others(os.path.dirname(sys.executable)),
    "the interpreter is not reachable by the unprivileged user (nobody)",
)
class UnprivilegedRuntimeTest(unittest.TestCase):
    result: dict

    @classmethod
    def setUpClass(cls) -> None:
        marker = f"{uuid.uuid4().int % 10**6 + 10**6}.75"
        env = {"PATH": "/usr/bin:/bin", "AWS_SECRET_ACCESS_KEY": "do-not-leak", "HOME": "/tmp"}
        # The checkout may be out of nobody's reach (CI clones under /root): run from a copy.
        copy = package_copy()
        try:
            run = subprocess.run(
                [sys.executable, "-c", DRIVER, copy, marker],
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
                env=env,
                cwd="/tmp",
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            shutil.rmtree(copy, ignore_errors=True)
        if run.returncode != 0:
            raise AssertionError(f"driver failed: {run.stderr[-3000:]}")
        cls.result = json.loads(run.stdout.strip().splitlines()[-1])

    def test_runs_unprivileged(self) -> None:
        self.assertFalse(self.result["privileged"])
        self.assertEqual(self.result["first"]["exit_code"], 0, self.result["first"]["stderr"])
        self.assertIn(str(NOBODY), self.result["first"]["stdout"])

    def test_environment_is_clean(self) -> None:
        self.assertNotIn("AWS_SECRET_ACCESS_KEY", self.result["first"]["stdout"])
        self.assertNotIn("do-not-leak", self.result["first"]["stdout"])

    def test_warm_reuse(self) -> None:
        self.assertTrue(self.result["warm"]["warm"])
        self.assertEqual(self.result["warm"]["stdout"], "2")

    def test_timeout_and_recovery(self) -> None:
        self.assertTrue(self.result["timeout"]["timed_out"])
        self.assertEqual(self.result["after_timeout"]["stdout"], "1")

    def test_no_background_process_survives(self) -> None:
        self.assertEqual(self.result["daemon"]["exit_code"], 0, self.result["daemon"]["stderr"])
        self.assertEqual(self.result["survivors"], [])

    def test_runtime_processes_are_not_dumpable(self) -> None:
        # A non-dumpable process's /proc files belong to root, not to the (shared) runtime uid.
        self.assertEqual(self.result["zygote_environ_owner"], 0)
        self.assertEqual(self.result["read_zygote_environ"]["stdout"], '"PermissionError"')

    def test_files_outside_the_workdir_do_not_outlive_the_step(self) -> None:
        self.assertEqual(self.result["tmp_file"]["exit_code"], 0, self.result["tmp_file"]["stderr"])
        self.assertFalse(self.result["tmp_file_left"])

    def test_killing_the_zygote_is_survived(self) -> None:
        # Same uid, so user code can kill its parent; the step reports a crash, the state stays.
        self.assertTrue(self.result["kill_zygote"]["crashed"])
        self.assertEqual(self.result["after_kill_zygote"]["stdout"], "1", self.result["after_kill_zygote"])

    def test_warm_worker_is_stopped_between_steps(self) -> None:
        self.assertEqual(self.result["warm_worker_state"], "T")

    def test_no_other_episode_runs_during_a_step(self) -> None:
        step = self.result["other_episode_during_step"]
        self.assertEqual(step["exit_code"], 0, step["stderr"])
        self.assertIn(step["stdout"], ('"gone"', '"Z"', '"killed"'))

    def test_timer_gets_no_cpu_between_steps(self) -> None:
        first, second = self.result["timer_first"], self.result["timer_second"]
        self.assertEqual(first["exit_code"], 0, first["stderr"])
        self.assertTrue(second["warm"])
        # A few ticks land while the steps themselves run (more on a loaded machine), none between.
        self.assertLessEqual(int(second["stdout"]) - int(first["stdout"]), 30)

    def test_sysv_ipc_does_not_outlive_its_step(self) -> None:
        left = self.result["ipc_left"]
        self.assertEqual(left["exit_code"], 0, left["stderr"])
        self.assertNotIn("-1", left["stdout"])  # both were created
        self.assertEqual(self.result["ipc_found"]["stdout"], "[-1, -1]")

    def test_fork_bomb_is_contained(self) -> None:
        self.assertEqual(self.result["fork_bomb"]["exit_code"], 1)
        self.assertEqual(self.result["after_bomb"]["stdout"], "42")
