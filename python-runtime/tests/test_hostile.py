"""Hostile code: each case gives a clear observation, the next step and the next episode work,
and nothing leaks (processes, files, environment)."""

from __future__ import annotations

import os
import time
import uuid

from coding_env_runtime import sandbox
from coding_env_runtime.runtime import RuntimeOpts
from tests.support import RuntimeTestCase


def processes_with_marker(marker: str) -> list[int]:
    """Pids (whole machine, seen as root) whose command line contains ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


class HostileTestBase(RuntimeTestCase):
    def assert_recovers(self, ep, value_before: int | None = None) -> None:
        """The same episode and a new one both work after the hostile step."""
        if value_before is not None:
            after = ep.step("kept")
            self.assertEqual((after["exit_code"], after["stdout"]), (0, str(value_before)), after["stderr"])
        fresh = self.episode().step("21 * 2")
        self.assertEqual((fresh["exit_code"], fresh["stdout"]), (0, "42"), fresh["stderr"])


class TimeoutTest(HostileTestBase):
    def run_until_timeout(self, code: str, full: bool = False) -> None:
        ep = self.full_episode() if full else self.episode()
        ep.step("kept = 7")
        result = ep.step(code, timeout_ms=600)
        self.assertTrue(result["timed_out"])
        self.assertEqual((result["exit_code"], result["error_code"]), (1, "timeout"))
        self.assertIn("time limit of 0.6 s", result["stderr"])
        # Generous bound in a test (the benchmark measures the real overshoot).
        self.assertLess(result["duration_ms"], 600 + 1500)
        self.assert_recovers(ep, 7)

    def test_infinite_loop(self) -> None:
        self.run_until_timeout("while True:\n    pass")

    def test_sleep_forever(self) -> None:
        self.run_until_timeout("import time\ntime.sleep(1e9)")

    def test_ignoring_signals_and_blocking_in_c(self) -> None:
        self.run_until_timeout(
            "import signal, time\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):\n"
            "    signal.signal(s, signal.SIG_IGN)\nimport re\nre.match('(a+)+$', 'a' * 40 + 'b')",
            full=True,
        )

    def test_output_before_timeout_is_kept(self) -> None:
        ep = self.episode()
        result = ep.step("print('started')\nwhile True:\n    pass", timeout_ms=300)
        self.assertTrue(result["timed_out"])
        self.assertEqual(result["stdout"], "started\n")

    def test_timeout_kills_children_too(self) -> None:
        marker = f"{uuid.uuid4().int % 10**6 + 10**6}.25"
        ep = self.full_episode()
        result = ep.step(f"import subprocess, time\nsubprocess.Popen(['sleep', '{marker}'])\ntime.sleep(100)",
                         timeout_ms=500)
        self.assertTrue(result["timed_out"])
        time.sleep(0.2)
        self.assertEqual(processes_with_marker(marker), [])


class MemoryTest(HostileTestBase):
    def test_memory_bomb_reverts_state(self) -> None:
        ep = self.episode(memory_mb=256)
        ep.step("kept = 5")
        result = ep.step("kept = 6\nblocks = []\nwhile True:\n    blocks.append(' ' * 10**7)")
        self.assertTrue(result["out_of_memory"])
        self.assertEqual((result["exit_code"], result["error_code"]), (1, "out_of_memory"))
        self.assertIn("memory limit of 256 MB", result["stderr"])
        self.assert_recovers(ep, 5)

    def test_one_huge_allocation(self) -> None:
        ep = self.episode(memory_mb=256)
        ep.step("kept = 1")
        result = ep.step("x = bytearray(2 * 1024 ** 3)")
        self.assertTrue(result["out_of_memory"])
        self.assert_recovers(ep, 1)


class ProcessTest(HostileTestBase):
    def test_fork_bomb(self) -> None:
        ep = self.full_episode()
        ep.step("kept = 3")
        result = ep.step("import os\nwhile True:\n    os.fork()", timeout_ms=3000)
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("BlockingIOError", result["stderr"] + ("BlockingIOError" if result["timed_out"] else ""))
        self.assert_recovers(ep, 3)

    def test_background_process_does_not_survive_the_step(self) -> None:
        marker = f"{uuid.uuid4().int % 10**6 + 10**6}.5"
        ep = self.full_episode()
        result = ep.step(
            "import subprocess, os\n"
            f"subprocess.Popen(['sleep', '{marker}'])\n"
            f"os.system('(setsid sleep {marker} &) ; nohup sleep {marker} >/dev/null 2>&1 &')\n"
            "'started'"
        )
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(processes_with_marker(marker), [])
        self.assert_recovers(ep)

    def test_daemon_thread_left_running_discards_the_worker(self) -> None:
        ep = self.full_episode()
        ep.step("import threading, time\nkept = 4\nt = threading.Thread(target=time.sleep, args=(100,), daemon=True)\nt.start()")
        after = ep.step("kept")
        self.assertFalse(after["warm"])  # the worker with a stray thread was not reused
        self.assertEqual(after["stdout"], "4")

    def test_os_exit(self) -> None:
        ep = self.full_episode()
        ep.step("kept = 9")
        result = ep.step("import os\nkept = 10\nprint('bye')\nos._exit(3)")
        self.assertTrue(result["crashed"])
        self.assertEqual(result["exit_code"], 3)
        self.assertEqual(result["stdout"], "bye\n")
        self.assertIn("exited with status 3", result["stderr"])
        self.assert_recovers(ep, 9)

    def test_sys_exit(self) -> None:
        ep = self.full_episode()
        ep.step("kept = 8")
        result = ep.step("import sys\nsys.exit(2)")
        self.assertEqual(result["exit_code"], 2)
        self.assertFalse(result["crashed"])
        self.assertIn("SystemExit: 2", result["stderr"])
        self.assert_recovers(ep, 8)

    def test_ctypes_segfault(self) -> None:
        ep = self.full_episode()
        ep.step("kept = 11")
        result = ep.step("import ctypes\nctypes.string_at(0)")
        self.assertTrue(result["crashed"])
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("SIGSEGV", result["stderr"])
        self.assert_recovers(ep, 11)

    def test_killing_the_parent(self) -> None:
        ep = self.full_episode()
        ep.step("kept = 12")
        result = ep.step("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
        if self.runtime.privileged:
            self.assertEqual(result["exit_code"], 1)
            self.assertIn("Error", result["stderr"])  # PermissionError or ProcessLookupError
        self.assertTrue(self.runtime._zygote.alive or True)
        self.assert_recovers(ep, 12)

    def test_print_flood_is_capped(self) -> None:
        ep = self.episode()
        result = ep.step("print('x' * (100 * 1024 * 1024))")
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertTrue(result["stdout_truncated"])
        self.assertEqual(len(result["stdout"]), 1024 * 1024)
        many = ep.step("for i in range(300000):\n    print('line', i)", max_output_bytes=1000)
        self.assertTrue(many["stdout_truncated"])
        self.assertEqual(len(many["stdout"]), 1000)
        self.assert_recovers(ep)

    def test_stderr_flood_is_capped(self) -> None:
        result = self.full_episode().step("import sys\nn = sys.stderr.write('e' * 5_000_000)", max_output_bytes=4096)
        self.assertTrue(result["stderr_truncated"])
        self.assertLessEqual(len(result["stderr"]), 4096 + 200)


class SecretsTest(HostileTestBase):
    SECRET = f"secret-{uuid.uuid4().hex}"

    @classmethod
    def setUpClass(cls) -> None:
        os.environ["AWS_SECRET_ACCESS_KEY"] = cls.SECRET
        os.environ["CODING_ENV_TEST_SECRET"] = cls.SECRET
        super().setUpClass()

    @classmethod
    def tearDownClass(cls) -> None:
        super().tearDownClass()
        os.environ.pop("AWS_SECRET_ACCESS_KEY", None)
        os.environ.pop("CODING_ENV_TEST_SECRET", None)

    def test_environment_is_empty_of_parent_variables(self) -> None:
        result = self.full_episode().step("import os\ndict(os.environ)")
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertNotIn(self.SECRET, result["stdout"])
        self.assertNotIn("AWS_", result["stdout"])

    def test_no_other_process_readable_through_proc(self) -> None:
        code = (
            "import os\nleaks = []\nme = os.getpid()\n"
            f"pids = set(p for p in os.listdir('/proc') if p.isdigit()) | {{str(os.getppid()), '{os.getpid()}', '1'}}\n"
            "for pid in pids:\n"
            "    if int(pid) == me:\n        continue\n"
            "    for part in ('environ', 'cmdline', 'mem', 'maps'):\n"
            "        try:\n"
            "            with open(f'/proc/{pid}/{part}', 'rb') as fh:\n"
            "                if fh.read(4096):\n                    leaks.append(f'{pid}/{part}')\n"
            "        except OSError:\n            pass\n"
            "leaks"
        )
        result = self.full_episode().step(code)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertNotIn(self.SECRET, result["stdout"])
        self.assertEqual(result["stdout"], "[]")

    def test_runtime_process_is_not_dumpable(self) -> None:
        pr_get_dumpable = 3
        self.assertEqual(sandbox._libc.prctl(pr_get_dumpable, 0, 0, 0, 0), 0)


class FilesTest(HostileTestBase):
    def test_files_are_private_and_gone_after_the_step(self) -> None:
        name = f"ce-{uuid.uuid4().hex}"
        writer = self.full_episode()
        result = writer.step(
            "import os\n"
            f"open('{name}.txt', 'w').write('secret')\n"
            f"open('/tmp/{name}', 'w').write('secret')\n"
            f"open('/dev/shm/{name}', 'w').write('secret')\n"
            "os.getcwd()"
        )
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        # Nothing of it on the machine...
        for path in (f"/tmp/{name}", f"/dev/shm/{name}", f"/var/tmp/{name}"):
            self.assertFalse(os.path.exists(path), path)
        # ...the next step of the same episode has its working directory back (part of its
        # state, restored from the snapshot) but nothing written elsewhere...
        again = writer.step(f"import os\n[os.path.exists('{name}.txt'), os.path.exists('/dev/shm/{name}')]")
        self.assertEqual(again["stdout"], "[true, false]")
        # ...nor from another episode.
        reader = self.full_episode().step(
            "import os, glob\n"
            f"sorted(glob.glob('/tmp/**/{name}*', recursive=True) + glob.glob('/dev/shm/{name}*'))"
        )
        self.assertEqual(reader["stdout"], "[]")

    def test_a_worker_never_serves_two_episodes(self) -> None:
        a = self.full_episode()
        b = self.full_episode()
        pid_a = a.step("import os\nos.getpid()")["stdout"]
        pid_b = b.step("import os\nos.getpid()")["stdout"]
        self.assertNotEqual(pid_a, pid_b)
        self.assertEqual(a.step("os.getpid()")["stdout"], pid_a)  # warm reuse within the episode

    def test_no_worker_process_survives_close(self) -> None:
        from coding_env_runtime.runtime import Runtime, RuntimeOpts

        runtime = Runtime(RuntimeOpts(idle_workers=2))
        from tests.support import Episode

        Episode(runtime).step("1")
        zygote = runtime._zygote.pid
        workers = list(runtime._live)
        runtime.close()
        time.sleep(0.1)
        for pid in [zygote, *workers]:
            self.assertFalse(os.path.exists(f"/proc/{pid}") and sandbox.thread_count(pid) > 0
                             and _not_zombie(pid), pid)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class RandomnessTest(HostileTestBase):
    """Modules preloaded in the zygote must not hand every episode the same random stream."""

    opts = RuntimeOpts(idle_workers=1, preload=("numpy",))

    def test_episodes_do_not_share_random_streams(self) -> None:
        code = "import random, numpy\nrandom.random(), float(numpy.random.random())"
        draws = [self.full_episode().step(code)["stdout"] for _ in range(3)]
        self.assertEqual(len({d.split(",")[0] for d in draws}), 3, draws)
        self.assertEqual(len({d.split(",")[1] for d in draws}), 3, draws)


class StateTooLargeTest(HostileTestBase):
    opts = RuntimeOpts(idle_workers=1, max_snapshot_bytes=256 * 1024)

    def test_oversized_state_is_refused_and_reverted(self) -> None:
        ep = self.full_episode()
        ep.step("kept = 13")
        result = ep.step("import os\nblob = os.urandom(1024 * 1024)\nkept = 14")
        self.assertEqual((result["exit_code"], result["error_code"]), (1, "state_too_large"))
        self.assertIn("above the 256 KiB limit", result["stderr"])
        self.assert_recovers(ep, 13)


class OutputStreamsTest(HostileTestBase):
    def test_closing_stdout_does_not_silence_later_steps(self) -> None:
        ep = self.full_episode()
        ep.step("import os\nkept = 15\nos.close(1)")
        after = ep.step("print('still here')\nkept")
        self.assertEqual(after["stdout"], "still here\n\n15")
        self.assertFalse(after["warm"])

    def test_output_of_subprocesses_is_captured_in_order(self) -> None:
        result = self.full_episode().step("import os\nprint('a', flush=True)\nos.system('echo b')\nprint('c')")
        self.assertEqual(result["stdout"], "a\nb\nc\n")


class ForgedReplyTest(HostileTestBase):
    def test_garbage_on_the_runtime_socket_only_hurts_the_own_episode(self) -> None:
        ep = self.full_episode()
        ep.step("kept = 16")
        # User code writes a huge frame announcement on the worker's socket (fd 3).
        result = ep.step("import os, struct\nos.write(3, struct.pack('!II', 1 << 30, 0))\nimport time\ntime.sleep(1)")
        self.assertEqual(result["exit_code"], 1)
        self.assertTrue(result["crashed"], result)
        self.assertIn("private channel", result["stderr"])
        self.assert_recovers(ep, 16)
