"""Attacks on the executor in emulated Lambda environments (one uid for the runtime and user
code, no namespaces of its own): residue one episode leaves for the next episode that the same
execution environment serves. Each asserts the safe outcome and fails without its protection."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

from harness.testing import LambdaModeTestCase  # noqa: E402

#: The next episode looks for everything the first one tried to leave behind.
LOOK = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
rt = ctypes.CDLL("librt.so.1", use_errno=True)
root = os.path.dirname(os.getcwd())
found = sorted(n for n in os.listdir(os.getcwd()) + os.listdir(root) if n.startswith("planted"))
queue = rt.mq_open(b"/planted", 0)
key = libc.syscall(250, 10, -4, b"user", b"planted", 0)  # KEYCTL_SEARCH in the user keyring
print(found, queue >= 0, key >= 0)
"""


class ResidueTest(LambdaModeTestCase):
    max_environments = 1  # every episode in the one environment

    def test_files_in_the_work_root_and_in_idle_workers_directories_do_not_reach_the_next_episode(self) -> None:
        # The working directory's parent (the runtime's work root) and the directories of the
        # pre-forked idle workers belong to user code's uid too: a file there would be in the
        # next episode's working directory (an importable planted.py) or next to it.
        plant = (
            "import os\n"
            "root = os.path.dirname(os.getcwd())\n"
            "open(os.path.join(root, 'planted.txt'), 'w').write('A-secret')\n"
            "for name in os.listdir(root):\n"
            "    path = os.path.join(root, name)\n"
            "    if os.path.isdir(path) and path != os.getcwd():\n"
            "        open(os.path.join(path, 'planted.py'), 'w').write('print(\"A-code\")')\n"
            "print(sorted(os.listdir(root)))\n"
        )
        planted = self.run_code(plant)
        self.assertEqual(planted["exit_code"], 0, planted["stderr"])
        self.assertIn("planted.txt", planted["stdout"])
        for _ in range(3):  # whichever worker the next episodes get
            result = self.run_code(LOOK)
            self.assertEqual(result["exit_code"], 0, result["stderr"])
            self.assertEqual(result["stdout"].strip(), "[] False False")

    def test_message_queues_and_keys_cannot_be_left_for_the_next_episode(self) -> None:
        # A POSIX message queue lives until unlinked and the runtime cannot list them (no
        # /dev/mqueue in Lambda); a key in the uid's user keyring outlives every process.
        plant = (
            "import ctypes\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "libc.syscall.restype = ctypes.c_long\n"
            "rt = ctypes.CDLL('librt.so.1', use_errno=True)\n"
            "queue = rt.mq_open(b'/planted', 0o102, 0o600, None)\n"
            "key = libc.syscall(248, b'user', b'planted', b'A-secret', 8, -4)\n"
            "print(queue >= 0, key >= 0)\n"
        )
        planted = self.run_code(plant)
        self.assertEqual(planted["exit_code"], 0, planted["stderr"])
        self.assertEqual(planted["stdout"].strip(), "False False")  # refused outright
        result = self.run_code(LOOK)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(result["stdout"].strip(), "[] False False")


class UserNamespaceTest(LambdaModeTestCase):
    # The test process's harness: a probe in a new episode that leaves nothing behind (what it
    # starts ends with it; no namespace is created) and needs nothing of a fresh environment.
    share_harness = True

    def test_no_user_namespace_can_be_created_and_processes_and_threads_still_start(self) -> None:
        # Lambda refuses them in its own sandbox; the runtime's filter refuses them anyway (the
        # harness, like a laptop, would allow them), with the same outcome as in root mode.
        from tests.test_attack_root import USER_NAMESPACES, USER_NAMESPACES_REFUSED

        result = self.run_code(USER_NAMESPACES)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(result["stdout"].strip(), USER_NAMESPACES_REFUSED)


class KilledZygoteTest(LambdaModeTestCase):
    max_environments = 1

    def test_a_daemon_whose_zygote_user_code_killed_does_not_run_in_the_next_episode(self) -> None:
        # The zygote runs as user code's uid: killing it sends a daemon (double fork, own
        # session) to init instead of the zygote, out of the runtime's sweep of strays; it then
        # runs while the next episode's step does (and reads its files).
        attack = (
            "import ctypes, os, signal, time\n"
            "zygote = os.getppid()\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        os.closerange(3, 1024)\n"
            "        ctypes.CDLL(None).prctl(15, b'lurker', 0, 0, 0)\n"
            "        while True:\n"
            "            time.sleep(0.01)\n"
            "    os._exit(0)\n"
            "time.sleep(0.2)\n"
            "os.kill(zygote, signal.SIGKILL)\n"
            "time.sleep(0.5)\n"
        )
        self.run_code(attack)  # its step ends as it may (its worker dies with the zygote)
        look = (
            "import os\n"
            "names = []\n"
            "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try:\n"
            "        names.append(open(f'/proc/{pid}/comm').read().strip())\n"
            "    except OSError:\n"
            "        pass\n"
            "print('lurker' in names)\n"
        )
        result = self.run_code(look)
        self.assertEqual((result["exit_code"], result["stdout"].strip()), (0, "False"), result["stderr"])
        again = self.run_code("print(1)")  # the environment still serves steps
        self.assertEqual((again["exit_code"], again["stdout"].strip()), (0, "1"), again["stderr"])


#: Sets ``spare_zygotes`` and ``others``: the runtime's other zygotes (each episode gets a
#: zygote of its own) and their workers (the spares' idle workers), waiting for the pool to start
#: one if it has not yet.
OTHER_WORKERS = (
    "import time\n"
    "me, zygote = os.getpid(), os.getppid()\n"
    "runtime = int(open(f'/proc/{zygote}/stat').read().rsplit(')', 1)[1].split()[1])\n"
    "def children(pid):\n"
    "    found = []\n"
    "    for tid in os.listdir(f'/proc/{pid}/task'):\n"
    "        try:\n"
    "            found += [int(p) for p in open(f'/proc/{pid}/task/{tid}/children').read().split()]\n"
    "        except OSError:\n"
    "            pass\n"
    "    return found\n"
    "def cmdline(pid):\n"
    "    try:\n"
    "        return open(f'/proc/{pid}/cmdline', 'rb').read()\n"
    "    except OSError:\n"
    "        return None\n"
    "def spares():\n"
    "    zygotes = [z for z in children(runtime) if z != zygote]\n"
    "    # a worker is a fork of its zygote (not, say, the ldconfig its imports run)\n"
    "    return zygotes, [w for z in zygotes for w in children(z) if cmdline(w) == cmdline(z)]\n"
    "for _ in range(500):\n"
    "    spare_zygotes, others = spares()\n"
    "    if others:\n"
    "        break\n"
    "    time.sleep(0.01)\n"
    "time.sleep(2)  # the spare's start ends (a zygote's imports run children of their own)\n"
    "spare_zygotes, others = spares()\n"
)


class IdleWorkerTest(LambdaModeTestCase):
    max_environments = 1

    def test_a_stopped_idle_worker_does_not_time_out_the_next_episodes_step(self) -> None:
        # The pre-forked idle workers (and the spare being started) run as user code's uid: a
        # step can SIGSTOP them, and the next episode's step (on one of them) then waited for
        # its deadline, or for the stopped spare's start to time out. The stopped spare is
        # continued and serves the next step.
        attack = (
            "import os, signal\n"
            + OTHER_WORKERS +
            "for pid in others + spare_zygotes:\n"
            "    os.kill(pid, signal.SIGSTOP)\n"
            "print(' '.join(map(str, others)))\n"
        )
        stopped = self.run_code(attack)
        self.assertEqual(stopped["exit_code"], 0, stopped["stderr"])
        self.assertTrue(stopped["stdout"].split(), stopped)
        result = self.run_code("import os\nprint(6 * 7, os.getpid())", limits={"timeout_ms": 10000})
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        answer, pid = result["stdout"].split()
        self.assertEqual(answer, "42")
        self.assertIn(pid, stopped["stdout"].split())

    def test_limits_an_earlier_step_lowered_in_an_idle_worker_do_not_reach_the_next_episode(self) -> None:
        # prlimit on another process needs only the same uid (not ptrace): a step could give
        # the next episode's worker a file size limit of 0 bytes, or one open file.
        attack = (
            "import os, resource\n"
            + OTHER_WORKERS +
            "for pid in others:\n"
            "    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, 0))\n"
            "print(len(others) > 0)\n"
        )
        lowered = self.run_code(attack)
        self.assertEqual((lowered["exit_code"], lowered["stdout"].strip()), (0, "True"), lowered["stderr"])
        result = self.run_code("open('f', 'w').write('x' * 10)\nprint(open('f').read())")
        self.assertEqual((result["exit_code"], result["stdout"].strip()), (0, "x" * 10), result["stderr"])

    def test_limits_an_earlier_step_lowered_in_the_zygote_do_not_reach_the_next_episode(self) -> None:
        # Every worker the zygote forks later inherits its limits.
        # The spares' zygotes (one per episode) are the runtime's other children.
        attack = (
            "import os, resource\n"
            + OTHER_WORKERS +
            "for pid in [os.getppid(), *spare_zygotes]:\n"
            "    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, 0))\n"
            "print(resource.prlimit(os.getppid(), resource.RLIMIT_FSIZE), len(spare_zygotes) > 0)\n"
        )
        lowered = self.run_code(attack)
        self.assertEqual((lowered["exit_code"], lowered["stdout"].strip()), (0, "(0, 0) True"), lowered["stderr"])
        for _ in range(3):  # the idle worker, then workers forked since
            result = self.run_code("open('f', 'w').write('x' * 10)\nprint(open('f').read())")
            self.assertEqual((result["exit_code"], result["stdout"].strip()), (0, "x" * 10), result["stderr"])


class RuntimeLimitsTest(LambdaModeTestCase):
    max_environments = 1

    def test_renicing_the_runtime_does_not_slow_later_episodes(self) -> None:
        # The runtime is user code's uid too: setpriority/prlimit on it need nothing more. A
        # niced runtime starts niced zygotes (user code kills the current one to get a new
        # one), so every later episode's code would run at the lowest priority; a lowered limit
        # would break later steps the same way. Instead the environment ends after the
        # attacker's own step and the next step gets a fresh one.
        attack = (
            "import os, signal\n"
            "zygote = os.getppid()\n"
            "runtime = int(open(f'/proc/{zygote}/stat').read().rsplit(')', 1)[1].split()[1])\n"
            "os.setpriority(os.PRIO_PROCESS, runtime, 19)\n"
            "os.kill(zygote, signal.SIGKILL)\n"
        )
        status, _headers, _body = self.harness.invoke(
            {"episode_id": self.episode_id(), "code": attack, "policy": {"mode": "full"}}
        )
        self.assertEqual(status, 200)
        for _ in range(2):
            result = self.run_code("import os\nprint(os.getpriority(os.PRIO_PROCESS, 0))")
            self.assertEqual((result["exit_code"], result["stdout"].strip()), (0, "0"), result["stderr"])
