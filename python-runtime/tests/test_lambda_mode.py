"""Hostile steps against the executor's real handler in emulated Lambda environments.

The harness (python-runtime/harness/) runs the runtime as a non-root uid without capabilities,
on a read-only tree with only /tmp writable, frozen between invocations, with canary AWS
credentials in its environment and Lambda's 6 MB limits. Every attack below asserts the safe
outcome; each names the protection that makes it hold.
"""


from __future__ import annotations

import json
import os
import sys
import time
import unittest
import uuid
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

from coding_env_runtime.sandbox import is_zombie  # noqa: E402
from harness.environment import CANARY_CREDENTIALS  # noqa: E402
from harness.testing import FULL, LambdaModeTestCase, frozen, uid_processes  # noqa: E402


class CredentialsAndFilesTest(LambdaModeTestCase):
    # The test process's harness: each test uses episodes of its own and looks only for what
    # they left (their own secrets, files, IPC key); the environment is found by its uid.
    share_harness = True

    def test_canary_credentials_are_in_the_runtime_but_unreadable_from_user_code(self) -> None:
        probe = (
            "import os\n"
            "found = [dict(os.environ)]\n"
            "for pid in os.listdir('/proc'):\n"
            "    if pid.isdigit():\n"
            "        for name in ('environ', 'cmdline', 'mem'):\n"
            "            try:\n"
            "                with open(f'/proc/{pid}/{name}', 'rb') as fh:\n"
            "                    found.append(fh.read(1 << 16).decode('latin-1'))\n"
            "            except OSError:\n"
            "                pass\n"
            "print(found)\n"
            "print(os.getuid())\n"
        )
        result = self.run_code(probe)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        for value in CANARY_CREDENTIALS.values():
            self.assertNotIn(value, result["stdout"] + result["stderr"])
        # The canaries are there to be stolen: the runtime process (seen from outside) has them.
        group = self.harness.environment_group_of(int(result["stdout"].strip().splitlines()[-1]))
        with open(os.path.join(group, "cgroup.procs")) as fh:
            pids = [int(p) for p in fh.read().split()]
        environs = []
        for pid in pids:
            try:
                environs.append(Path(f"/proc/{pid}/environ").read_bytes())
            except OSError:
                continue
        self.assertTrue(any(CANARY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"].encode() in e for e in environs))

    def test_code_tree_and_everything_but_tmp_are_read_only(self) -> None:
        target = os.path.join(PACKAGE_ROOT, "coding_env_runtime", "handler.py")
        before = Path(target).read_bytes()
        probe = (
            "import errno, os\n"
            "out = {}\n"
            f"for path in [{target!r}, {PACKAGE_ROOT + '/planted.py'!r}, '/var/tmp/x', '/etc/x', '/x']:\n"
            "    try:\n"
            "        open(path, 'a').write('planted = True\\n')\n"
            "        out[path] = 'written'\n"
            "    except OSError as e:\n"
            "        out[path] = errno.errorcode.get(e.errno)\n"
            "open('/tmp/ok', 'w').write('x')\n"
            "out['/tmp'] = os.path.exists('/tmp/ok')\n"
            "out['/dev/shm'] = os.path.exists('/dev/shm')\n"
            "out"
        )
        result = self.run_code(probe)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        outcome = json.loads(result["stdout"])
        for path in (target, PACKAGE_ROOT + "/planted.py", "/etc/x", "/x"):
            self.assertIn(outcome[path], ("EROFS", "EACCES"), path)
        # /var/tmp is world-writable on the host: only the read-only mount stops this one.
        self.assertEqual(outcome["/var/tmp/x"], "EROFS")
        self.assertTrue(outcome["/tmp"])
        self.assertFalse(outcome["/dev/shm"])
        self.assertEqual(Path(target).read_bytes(), before)
        self.assertFalse(os.path.exists(PACKAGE_ROOT + "/planted.py"))

    def test_runs_without_root_capabilities_and_with_lambda_limits(self) -> None:
        probe = (
            "import os, resource\n"
            "caps = {l.split(':')[0]: l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')}\n"
            "[os.getuid(), caps, resource.getrlimit(resource.RLIMIT_NPROC)[1] <= 1024,"
            " resource.getrlimit(resource.RLIMIT_NOFILE)[1] <= 1024]"
        )
        uid, caps, nproc_ok, nofile_ok = json.loads(self.run_code(probe)["stdout"])
        self.assertNotEqual(uid, 0)
        self.assertEqual(set(caps.values()), {"0000000000000000"})
        self.assertTrue(nproc_ok and nofile_ok)

    def test_a_step_cannot_read_another_episodes_files(self) -> None:
        secret = f"B-SECRET-{uuid.uuid4().hex}"
        writer = self.run_code(
            f"open('secret.txt', 'w').write({secret!r})\nopen('/tmp/b-secret', 'w').write({secret!r})\n'written'"
        )
        self.assertEqual(writer["exit_code"], 0, writer["stderr"])
        reader = self.run_code(
            "import os\nfound = []\n"
            "for top in ('/tmp', '/var/tmp', os.getcwd(), os.path.expanduser('~')):\n"
            "    for root, _, files in os.walk(top):\n"
            "        for name in files:\n"
            "            try:\n"
            "                found.append(open(os.path.join(root, name), errors='replace').read(4096))\n"
            "            except OSError:\n"
            "                pass\n"
            "'\\n'.join(found)"
        )
        self.assertEqual(reader["exit_code"], 0, reader["stderr"])
        self.assertNotIn(secret, reader["stdout"])

    def test_a_background_process_cannot_read_the_next_episodes_files(self) -> None:
        # Episode A leaves a daemon that copies every file it can find into /tmp; episode B then
        # writes a secret during its own step; A's next step looks for it.
        spy = (
            "import os, time, glob\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        while True:\n"
            "            for path in glob.glob('/tmp/**', recursive=True):\n"
            "                try:\n"
            "                    data = open(path, errors='replace').read(4096)\n"
            "                    with open('/tmp/loot', 'a') as fh:\n"
            "                        fh.write(data)\n"
            "                except OSError:\n"
            "                    pass\n"
            "            time.sleep(0.01)\n"
            "    os._exit(0)\n"
            "'spy started'"
        )
        self.run_code(spy)
        secret = f"B-SECRET-{uuid.uuid4().hex}"
        self.run_code(f"open('secret.txt', 'w').write({secret!r})\nimport time\ntime.sleep(0.5)\n'b'")
        loot = self.run_code("import os\nopen('/tmp/loot').read() if os.path.exists('/tmp/loot') else ''")
        self.assertNotIn(secret, loot["stdout"])

    def test_sysv_ipc_objects_do_not_outlive_their_episode(self) -> None:
        # One Lambda environment is one IPC namespace shared by every episode it serves.
        libc = (
            "import ctypes, ctypes.util\n"
            "libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)\n"
            "libc.shmat.restype = ctypes.c_void_p\n"
            "libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]\n"
            "KEY = 0x5EC12E7\n"
        )
        secret = f"IPC-{uuid.uuid4().hex[:12]}"
        planted = self.run_code(
            libc + "shmid = libc.shmget(KEY, 4096, 0o1000 | 0o666)\n"
            f"ctypes.memmove(libc.shmat(shmid, None, 0), {secret.encode()!r}, {len(secret)})\nshmid"
        )
        self.assertGreaterEqual(int(planted["stdout"]), 0, planted["stderr"])
        found = self.run_code(
            libc + "shmid = libc.shmget(KEY, 0, 0)\n"
            f"ctypes.string_at(libc.shmat(shmid, None, 0), {len(secret)}).decode() if shmid >= 0 else 'absent'"
        )
        self.assertEqual(found["stdout"], '"absent"')


class FreezeTest(LambdaModeTestCase):
    # The test process's harness: the environment its steps ran in is found by its uid, and
    # whatever else it serves must be frozen too.
    share_harness = True

    def test_every_process_of_the_environment_is_frozen_between_invocations(self) -> None:
        result = self.run_code(
            "import threading, subprocess, time\n"
            "threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()\n"
            "subprocess.Popen(['sleep', '3600'])\n'started'"
        )
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        uid = json.loads(self.run_code("import os\nos.getuid()")["stdout"])
        group = self.harness.environment_group_of(uid)
        self.assertTrue(frozen(group))
        members = {int(p) for p in Path(group, "cgroup.procs").read_text().split()}
        # Nothing of the environment's uid runs outside its (frozen) group. A process that exited
        # just before the freeze (likely the earlier episode's killed worker or its child) leaves
        # the group at once but stays a zombie until the frozen zygote reaps it; it runs nothing.
        # Counting it failed this test once in five full runs on a loaded machine.
        running = {p for p in uid_processes(uid) if not is_zombie(p)}
        self.assertTrue(running <= members, (uid_processes(uid), members))

    def test_a_signal_timer_gets_no_cpu_between_invocations(self) -> None:
        episode = self.episode_id()
        armed = self.harness.step({
            "episode_id": episode, "policy": FULL,
            "code": "import signal, time\nticks = []\n"
                    "signal.signal(signal.SIGALRM, lambda *_: ticks.append(time.time()))\n"
                    "signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)\n'armed'",
        })
        replied = time.time()
        time.sleep(1.0)
        asked = time.time()
        after = self.harness.step({
            "episode_id": episode, "policy": FULL, "state_version": 1, "snapshot": armed["snapshot"],
            "code": f"[t for t in ticks if {replied + 0.05} < t < {asked - 0.05}]",
        })
        self.assertEqual(after["exit_code"], 0, after["stderr"])
        self.assertEqual(json.loads(after["stdout"]), [])


if __name__ == "__main__":
    unittest.main()
