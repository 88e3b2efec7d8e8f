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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

from harness.client import HarnessProcess, unavailable_reason  # noqa: E402
from harness.environment import CANARY_CREDENTIALS, MAX_RESPONSE_BYTES  # noqa: E402

REPLY_LIMIT = 6_000_000
FULL = {"mode": "full"}
_UNAVAILABLE = unavailable_reason()


def _uid_processes(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    pids.append(int(name))
            except OSError:
                continue
    return pids


def _frozen(group: str) -> bool:
    if os.path.exists(os.path.join(group, "freezer.state")):  # cgroup v1
        return Path(group, "freezer.state").read_text().strip() == "FROZEN"
    return "frozen 1" in Path(group, "cgroup.events").read_text().splitlines()


@unittest.skipIf(_UNAVAILABLE is not None, _UNAVAILABLE or "")
class LambdaModeTestCase(unittest.TestCase):
    harness: HarnessProcess
    max_environments = 2
    harness_args: tuple[str, ...] = ()

    @classmethod
    def setUpClass(cls) -> None:
        cls.harness = HarnessProcess(*cls.harness_args, max_environments=cls.max_environments)
        cls.harness.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.harness.stop()

    def episode_id(self) -> str:
        return f"lm-{uuid.uuid4().hex[:10]}"

    def run_code(self, code: str, **event: object) -> dict:
        return self.harness.step({"episode_id": self.episode_id(), "code": code, "policy": FULL, **event})


class CredentialsAndFilesTest(LambdaModeTestCase):
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
        )
        result = self.run_code(probe)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        for value in CANARY_CREDENTIALS.values():
            self.assertNotIn(value, result["stdout"] + result["stderr"])
        # The canaries are there to be stolen: the runtime process (seen from outside) has them.
        group = self.harness.environment_groups()[0]
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
    def test_every_process_of_the_environment_is_frozen_between_invocations(self) -> None:
        result = self.run_code(
            "import threading, subprocess, time\n"
            "threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()\n"
            "subprocess.Popen(['sleep', '3600'])\n'started'"
        )
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        uid = json.loads(self.run_code("import os\nos.getuid()")["stdout"])
        group = next(g for g in self.harness.environment_groups() if os.path.exists(g))
        self.assertTrue(_frozen(group))
        members = {int(p) for p in Path(group, "cgroup.procs").read_text().split()}
        # Nothing of the environment's uid runs outside its (frozen) group.
        self.assertTrue(set(_uid_processes(uid)) <= members, (_uid_processes(uid), members))

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


class PayloadLimitTest(LambdaModeTestCase):
    def test_a_megabyte_of_nul_characters_gives_a_valid_reply(self) -> None:
        status, headers, body = self.harness.invoke_raw(
            json.dumps({"episode_id": self.episode_id(), "code": "print('\\x00' * 2**20)"}).encode()
        )
        self.assertEqual(status, 200)
        self.assertNotIn("X-Amz-Function-Error", headers, body[:300])
        self.assertLessEqual(len(body), REPLY_LIMIT)
        result = json.loads(body)
        self.assertTrue(result["stdout_truncated"])
        self.assertEqual(result["exit_code"], 0)
        self.assertGreater(len(result["stdout"]), 900_000)  # cut by serialized size, not emptied
        self.assertEqual(set(result["stdout"]), {"\x00"})

    def test_a_state_too_large_for_the_reply_is_refused_with_the_input_state(self) -> None:
        episode = self.episode_id()
        first = self.harness.step({"episode_id": episode, "policy": FULL, "code": "kept = 42"})
        status, headers, body = self.harness.invoke_raw(json.dumps({
            "episode_id": episode, "policy": FULL, "state_version": 1, "snapshot": first["snapshot"],
            "code": "import os\nblob = os.urandom(5 * 2**20)\nprint('\\x00' * 2**20)",
        }).encode())
        self.assertEqual(status, 200)
        self.assertNotIn("X-Amz-Function-Error", headers, body[:300])
        self.assertLessEqual(len(body), REPLY_LIMIT)
        result = json.loads(body)
        self.assertEqual(result["error_code"], "state_too_large")
        self.assertEqual(result["exit_code"], 1)
        self.assertEqual(result["snapshot"], first["snapshot"])
        self.assertIn("state", result["stderr"])
        again = self.harness.step({
            "episode_id": episode, "policy": FULL, "state_version": 1, "snapshot": first["snapshot"], "code": "kept",
        })
        self.assertEqual(again["stdout"], "42")

    def test_a_large_state_that_fits_keeps_what_output_fits(self) -> None:
        status, headers, body = self.harness.invoke_raw(json.dumps({
            "episode_id": self.episode_id(), "policy": FULL,
            "code": "import os\nblob = os.urandom(4 * 2**20)\nprint('\\x00' * 2**20)",
        }).encode())
        self.assertEqual(status, 200)
        self.assertNotIn("X-Amz-Function-Error", headers, body[:300])
        self.assertLessEqual(len(body), REPLY_LIMIT)
        result = json.loads(body)
        self.assertIsNone(result["error_code"])
        self.assertGreater(result["snapshot_bytes"], 4 * 2**20)
        self.assertTrue(result["stdout_truncated"])

    def test_a_request_above_six_megabytes_is_refused_as_lambda_does(self) -> None:
        payload = json.dumps({"episode_id": "big", "code": "1", "pad": "x" * (6 * 2**20)}).encode()
        status, headers, body = self.harness.invoke_raw(payload)
        self.assertEqual(status, 413)
        self.assertEqual(headers.get("x-amzn-ErrorType"), "RequestEntityTooLargeException")
        self.assertIn("6291456", json.loads(body)["message"])

    def test_lambda_limit_is_the_one_the_harness_enforces(self) -> None:
        self.assertGreater(MAX_RESPONSE_BYTES, REPLY_LIMIT)


class ProcessLimitTest(LambdaModeTestCase):
    harness_args = ("--memory-mb", "512")

    def test_the_environment_is_capped_at_the_function_memory_size(self) -> None:
        # Five children of 200 MB each, every one within the step's own per-process limit: the
        # environment's memory (512 MB here, the function's memory size in Lambda) stops them.
        hog = (
            "import os\n"
            "ends = []\n"
            "for _ in range(5):\n"
            "    r, w = os.pipe()\n"
            "    if os.fork() == 0:\n"
            "        os.close(r)\n"
            "        block = bytearray(200 * 2**20)\n"
            "        block[::4096] = b'x' * len(block[::4096])\n"
            "        os.write(w, b'1')\n"
            "        __import__('time').sleep(60)\n"
            "        os._exit(0)\n"
            "    os.close(w)\n"
            "    ends.append(r)\n"
            "[os.read(r, 1).decode() for r in ends].count('')"
        )
        result = self.run_code(hog, limits={"timeout_ms": 20000})
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertGreaterEqual(int(result["stdout"]), 1)  # at least one was killed for memory
        self.assertEqual(self.run_code("6 * 7")["stdout"], "42")

    def test_a_fork_bomb_hits_the_process_limit_and_the_environment_survives(self) -> None:
        bomb = self.run_code("import os\nwhile True:\n    os.fork()", limits={"timeout_ms": 5000})
        self.assertEqual(bomb["exit_code"], 1)
        # Stopped by the process limit (fork fails), not by the step's deadline.
        self.assertFalse(bomb["timed_out"])
        self.assertIn("BlockingIOError", bomb["stderr"])
        after = self.run_code("6 * 7")
        self.assertEqual(after["stdout"], "42")
        uid = json.loads(self.run_code("import os\nos.getuid()")["stdout"])
        self.assertLess(len(_uid_processes(uid)), 32)  # the bomb's processes are gone


class ServiceTest(LambdaModeTestCase):
    def test_requests_without_the_start_up_key_are_refused(self) -> None:
        event = json.dumps({"episode_id": "k", "code": "1"}).encode()
        for authorization in (None, self.harness.authorization("AKIAWRONGKEY")):
            status, headers, body = self.harness.invoke_raw(event, authorization=authorization)
            self.assertEqual(status, 403)
            self.assertEqual(headers.get("x-amzn-ErrorType"), "UnrecognizedClientException")
            self.assertIn("message", json.loads(body))

    def test_user_code_cannot_reach_the_harness(self) -> None:
        port = int(self.harness.base.rsplit(":", 1)[1])
        result = self.run_code(
            "import socket\ntry:\n    socket.create_connection(('127.0.0.1', %d), timeout=2)\n    r = 'connected'\n"
            "except OSError as e:\n    r = type(e).__name__\nr" % port
        )
        self.assertNotEqual(result["stdout"], '"connected"')

    def test_tenants_get_their_own_environments(self) -> None:
        probe = {"code": "import os\nos.getuid()", "policy": FULL}
        a = self.harness.step({**probe, "episode_id": self.episode_id()}, tenant_id="tenant-a")
        b = self.harness.step({**probe, "episode_id": self.episode_id()}, tenant_id="tenant-b")
        self.assertNotEqual(a["stdout"], b["stdout"])

    def test_one_invocation_per_environment_then_throttled(self) -> None:
        event = {"code": "import time\ntime.sleep(1.5)\n'slept'", "policy": FULL}

        def call(i: int) -> int:
            status, _, _ = self.harness.invoke({**event, "episode_id": f"{self.episode_id()}-{i}"}, tenant_id="busy")
            return status

        with ThreadPoolExecutor(self.max_environments + 1) as pool:
            statuses = sorted(pool.map(call, range(self.max_environments + 1)))
        self.assertEqual(statuses, [200] * self.max_environments + [429])

    def test_discard_reaches_the_handler(self) -> None:
        episode = self.episode_id()
        self.harness.step({"episode_id": episode, "code": "x = 1"}, tenant_id="discarding")
        status, _, body = self.harness.invoke({"op": "discard", "episode_id": episode}, tenant_id="discarding")
        self.assertEqual(status, 200)
        self.assertEqual(body, {"contract_version": 1, "discarded": 1})


class LifecycleTest(LambdaModeTestCase):
    max_environments = 1
    harness_args = ("--function-timeout-s", "3")

    def test_past_the_function_timeout_lambda_answers_timed_out_and_replaces_the_environment(self) -> None:
        status, headers, body = self.harness.invoke({
            "episode_id": self.episode_id(), "code": "import time\ntime.sleep(30)", "limits": {"timeout_ms": 20000},
        })
        self.assertEqual((status, headers.get("X-Amz-Function-Error")), (200, "Unhandled"))
        self.assertIn("Task timed out after 3.00 seconds", body["errorMessage"])
        self.assertEqual(self.run_code("6 * 7")["stdout"], "42")

    def test_user_code_killing_the_runtime_loses_only_its_environment(self) -> None:
        status, headers, body = self.harness.invoke({
            "episode_id": self.episode_id(), "policy": FULL,
            "code": "import os, signal\nfor pid in os.listdir('/proc'):\n    if pid.isdigit() and int(pid) > 1:\n"
                    "        try:\n            os.kill(int(pid), signal.SIGKILL)\n        except OSError:\n            pass",
        })
        self.assertEqual((status, headers.get("X-Amz-Function-Error")), (200, "Unhandled"))
        self.assertEqual(body["errorType"], "Runtime.ExitError")
        self.assertEqual(self.run_code("6 * 7")["stdout"], "42")


@unittest.skipIf(_UNAVAILABLE is not None, _UNAVAILABLE or "")
class ShutdownTest(unittest.TestCase):
    def test_sigterm_ends_every_environment_and_removes_its_groups(self) -> None:
        harness = HarnessProcess(max_environments=2)
        harness.start()
        try:
            uids = [json.loads(harness.step({"episode_id": f"bye-{t}", "code": "import os\nos.getuid()",
                                             "policy": FULL}, tenant_id=t)["stdout"]) for t in ("a", "b")]
            groups = harness.environment_groups()
            self.assertEqual(len(groups), 2)
        finally:
            code = harness.stop()
        self.assertEqual(code, 0)
        self.assertFalse(any(os.path.exists(g) for g in groups))
        self.assertFalse(os.path.exists(os.path.dirname(groups[0])))
        for uid in uids:
            self.assertEqual(_uid_processes(uid), [])

    def test_a_killed_harness_takes_its_frozen_environments_with_it(self) -> None:
        harness = HarnessProcess(max_environments=2)
        harness.start()
        try:
            uid = json.loads(harness.step({"episode_id": "gone", "code": "import os\nos.getuid()",
                                            "policy": FULL})["stdout"])
            group = harness.environment_groups()[0]
            self.assertTrue(_frozen(group))
        finally:
            assert harness.process is not None
            harness.process.kill()  # no SIGTERM handler runs
            harness.stop()
        for _ in range(100):  # the keepers act on their parent-death signal; wait for the outcome
            if not _uid_processes(uid) and not os.path.exists(group):
                break
            time.sleep(0.1)
        self.assertEqual(_uid_processes(uid), [])
        self.assertFalse(os.path.exists(group))


if __name__ == "__main__":
    unittest.main()
