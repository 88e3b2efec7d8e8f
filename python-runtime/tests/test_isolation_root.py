"""Isolation attacks against the runtime in root mode (issue 10): each asserts the safe outcome
and would fail without the protection it names."""

from __future__ import annotations

import os
import socket
import threading
import time
import unittest
import uuid

from coding_env_runtime import handles, hygiene, sandbox
from coding_env_runtime.contract import DiscardRequest, EventError, parse_event
from coding_env_runtime.runtime import RuntimeOpts
from coding_env_runtime.zygote_client import PACKAGE_ROOT
from tests.support import Episode, RuntimeTestCase

ROOT = os.geteuid() == 0


def alive(pid: int) -> bool:
    """Running, or able to run again: not gone, not a zombie, no SIGKILL pending."""
    if sandbox.is_zombie(pid):
        return False
    try:
        with open(f"/proc/{pid}/status") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        return False
    pending = int(fields.get("ShdPnd", "0").strip(), 16) | int(fields.get("SigPnd", "0").strip(), 16)
    return not pending & (1 << 8)  # bit of SIGKILL (9)


class TenantEpisode(Episode):
    """An episode of a given tenant (and id), driven like the API does."""

    def __init__(self, runtime, tenant: str, episode_id: str | None = None, policy=None, **limits) -> None:  # noqa: ANN001
        super().__init__(runtime, policy or {"mode": "full"}, **limits)
        self.tenant = tenant
        if episode_id is not None:
            self.episode_id = episode_id

    def event(self, code: str, **limits):  # noqa: ANN201
        return {**super().event(code, **limits), "tenant_id": self.tenant}


# --- 1/2: tenants, episodes, discard, busy ---------------------------------------------------


class TenantKeyTest(RuntimeTestCase):
    def test_same_episode_id_in_two_tenants_never_shares_a_worker(self) -> None:
        # The victim keeps a secret outside its snapshot (module state); the attacker rebuilds
        # the victim's exact snapshot under its own id, then steps the victim's episode id.
        shared_id = f"ep_{uuid.uuid4().hex}"
        setup = "import sys\nx = 1\nsys.modules['math'].tenant_secret = {!r}"
        victim = TenantEpisode(self.runtime, "tenant-a", shared_id)
        victim.step(setup.format("A-secret"))
        forger = TenantEpisode(self.runtime, "tenant-b")
        forger.step(setup.format("B"))
        self.assertEqual(forger.snapshot, victim.snapshot)  # identical snapshots are easy to make
        attacker = TenantEpisode(self.runtime, "tenant-b", shared_id)
        attacker.snapshot, attacker.state_version = forger.snapshot, forger.state_version
        result = attacker.step("import math\ngetattr(math, 'tenant_secret', None)")
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertFalse(result["warm"])
        self.assertNotIn("A-secret", result["stdout"])
        # The victim's own worker is still its own and warm.
        again = victim.step("import math\nmath.tenant_secret")
        self.assertEqual((again["warm"], again["stdout"]), (True, '"A-secret"'))

    def test_tenant_of_the_event_and_of_the_invocation_must_agree(self) -> None:
        event = {"episode_id": "e", "code": "1", "tenant_id": "a"}
        self.assertEqual(parse_event(event, "a").tenant_id, "a")
        self.assertEqual(parse_event({"episode_id": "e", "code": "1"}, "b").tenant_id, "b")
        self.assertEqual(parse_event({"episode_id": "e", "code": "1"}).tenant_id, "default")
        with self.assertRaises(EventError):
            parse_event(event, "b")

    def test_incarnations_do_not_share_a_worker(self) -> None:
        first = TenantEpisode(self.runtime, "t")
        first.step("x = 1")
        second = TenantEpisode(self.runtime, "t", first.episode_id)
        second.snapshot, second.state_version = first.snapshot, first.state_version
        request = parse_event({**second.event("x"), "incarnation": "other"})
        self.assertFalse(self.runtime.run_step(request)["warm"])


class DiscardTest(RuntimeTestCase):
    def test_discard_kills_the_warm_worker_at_once(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        pid = int(ep.step("import os\nos.getpid()")["stdout"])
        self.assertTrue(alive(pid))
        reply = self.runtime.run_step(parse_event({"op": "discard", "episode_id": ep.episode_id, "tenant_id": "t"}))
        self.assertEqual(reply, {"contract_version": 1, "discarded": 1})
        self.assertFalse(alive(pid))  # dead on return, its memory released
        after = ep.step("os.getpid()")
        self.assertFalse(after["warm"])

    def test_discard_of_another_tenant_leaves_the_worker(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        ep.step("x = 1")
        self.assertEqual(self.runtime.discard("other", ep.episode_id), 0)
        self.assertTrue(ep.step("x")["warm"])

    def test_discard_request_parses(self) -> None:
        request = parse_event({"op": "discard", "episode_id": "e", "incarnation": "i"}, "t")
        self.assertEqual(request, DiscardRequest("t", "e", "i"))


class BusyTest(RuntimeTestCase):
    def test_second_concurrent_step_of_an_episode_is_busy_and_runs_nothing(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        ep.step("ran = []")
        event = ep.event("import time\ntime.sleep(1.5)\nran.append('first')\nran")
        first: dict = {}
        thread = threading.Thread(target=lambda: first.update(self.runtime.run_step(parse_event(event))))
        thread.start()
        deadline = time.monotonic() + 10
        while ("t", ep.episode_id) not in self.runtime._running and time.monotonic() < deadline:
            time.sleep(0.01)
        second = self.runtime.run_step(parse_event(ep.event("ran.append('second')\nran")))
        # Another tenant with the same episode id is not held up.
        other = TenantEpisode(self.runtime, "other", ep.episode_id).step("1")
        thread.join()
        self.assertEqual((second["error_code"], second["exit_code"], second["duration_ms"]), ("busy", 1, 0))
        self.assertEqual(second["snapshot"], ep.snapshot)
        self.assertEqual(other["error_code"], None)
        self.assertEqual(first["stdout"], '["first"]')
        ep.snapshot, ep.state_version = first["snapshot"], first["state_version"]
        self.assertEqual(ep.step("ran")["stdout"], '["first"]')  # the busy step never ran


# --- 3: nothing runs between steps -----------------------------------------------------------

POSIX_TIMER = r"""
import ctypes, signal
ticks = 0
def on_tick(*_):
    global ticks
    ticks += 1
signal.signal(signal.SIGALRM, on_tick)
libc = ctypes.CDLL(None, use_errno=True)
class timespec(ctypes.Structure):
    _fields_ = [("s", ctypes.c_long), ("ns", ctypes.c_long)]
class itimerspec(ctypes.Structure):
    _fields_ = [("interval", timespec), ("value", timespec)]
timer = ctypes.c_void_p()
assert libc.timer_create(1, None, ctypes.byref(timer)) == 0  # CLOCK_MONOTONIC, SIGALRM
period = itimerspec(timespec(0, 5_000_000), timespec(0, 5_000_000))
assert libc.timer_settime(timer, 0, ctypes.byref(period), None) == 0
del libc, timer, period, timespec, itimerspec
ticks
"""

FORGER = r"""
import json, os, struct, threading
header = json.dumps({"op": "result", "exit_code": 77, "dropped": []}).encode()
frame = struct.pack("!II", len(header), 0) + header
wrote = threading.Event()
def forge():
    while True:
        try:
            os.write(3, frame)
        except OSError:
            return
        wrote.set()
threading.Thread(target=forge, daemon=True).start()
wrote.wait()
kept = 'changed'
"""


class FrozenBetweenStepsTest(RuntimeTestCase):
    def setUp(self) -> None:
        # An earlier test's discarded worker may still be going: without cgroups, what it started is
        # reparented to its zygote until the uid is killed, and a step's sweep meanwhile counts
        # that as escaped and keeps no worker warm (these tests need the warm one).
        deadline = time.monotonic() + 30
        while any(w.discarded for w in list(self.runtime.pool.live.values())) and time.monotonic() < deadline:
            time.sleep(0.05)

    def assert_frozen(self, ep: Episode) -> None:
        key = next(k for k in self.runtime._warm if k[1] == ep.episode_id)
        worker = self.runtime._warm[key]
        if worker.group is not None:
            self.assertTrue(worker.group.wait_frozen())
            pids = worker.group.pids()
        else:
            pids = [worker.pid]
            self.assertTrue(handles._wait_stopped(worker.pid))
            for tid in os.listdir(f"/proc/{worker.pid}/task"):
                with open(f"/proc/{worker.pid}/task/{tid}/stat", "rb") as fh:
                    self.assertEqual(fh.read().rsplit(b")", 1)[1].split()[0], b"T")
        self.assertTrue(pids)

    def test_posix_timer_gets_no_cpu_between_steps(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        first = ep.step(POSIX_TIMER)
        self.assertEqual(first["exit_code"], 0, first["stderr"])
        self.assert_frozen(ep)
        time.sleep(1.5)  # ~300 ticks if the worker ran meanwhile
        second = ep.step("ticks")
        self.assertTrue(second["warm"])
        # A few ticks land while the steps themselves run (more on a loaded machine), none between.
        self.assertLessEqual(int(second["stdout"]) - int(first["stdout"]), 30)

    def test_interval_timer_does_not_survive_the_step(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        first = ep.step(
            "import signal\nticks = 0\ndef on_tick(*_):\n    global ticks\n    ticks += 1\n"
            "signal.signal(signal.SIGALRM, on_tick)\nsignal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)\nticks"
        )
        time.sleep(0.5)
        second = ep.step("import time\ntime.sleep(0.2)\nticks")
        self.assertTrue(second["warm"])
        # Warm as cold: no timer after a restore. A few ticks may land between the cell's last
        # line and the end of the step; a live timer would add ~40 during the next step alone.
        self.assertLessEqual(int(second["stdout"]) - int(first["stdout"]), 5)

    def test_forged_reply_from_a_thread_is_discarded(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        ep.step("kept = 'before'")
        result = ep.step(FORGER)
        self.assertNotEqual(result["exit_code"], 77)
        self.assertTrue(result["crashed"], result["stderr"])
        self.assertIn("private channel", result["stderr"])
        after = ep.step("kept")
        self.assertEqual(after["stdout"], '"before"')

    def test_child_left_running_does_not_outlive_the_step(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        result = ep.step(
            "import os, time\npid = os.fork()\nif pid == 0:\n    os.setsid()\n"
            "    while True:\n        time.sleep(0.001)\npid"
        )
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        # Its pid as seen inside the worker's namespaces is its pid on the host too (only the
        # mount, network and IPC namespaces are private).
        self.assertFalse(alive(int(result["stdout"])))


class SignalStopFallbackTest(FrozenBetweenStepsTest):
    """Root mode without cgroups: workers are stopped with SIGSTOP between steps."""

    opts = RuntimeOpts(idle_workers=1, use_cgroups=False)


# --- 4: no network to the host ---------------------------------------------------------------


class NetworkTest(RuntimeTestCase):
    def test_host_loopback_services_are_unreachable(self) -> None:
        with socket.socket() as server:
            server.bind(("0.0.0.0", 0))
            server.listen()
            server.setblocking(False)
            port = server.getsockname()[1]
            addresses = ["127.0.0.1", socket.gethostbyname(socket.gethostname())]
            code = (
                "import socket\nresults = []\n"
                f"for address in {addresses!r}:\n"
                "    s = socket.socket()\n    s.settimeout(1)\n"
                "    try:\n"
                f"        s.connect((address, {port}))\n        results.append('connected')\n"
                "    except OSError as exc:\n        results.append(type(exc).__name__)\n"
                "results"
            )
            result = TenantEpisode(self.runtime, "t").step(code)
            self.assertEqual(result["exit_code"], 0, result["stderr"])
            self.assertNotIn("connected", result["stdout"])
            with self.assertRaises(BlockingIOError):
                server.accept()


# --- 5: no residue -----------------------------------------------------------------------------

IPC_PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
found = [libc.shmget({key}, 0, 0), libc.msgget({key}, 0), libc.shmget({key} + 1, 0, 0)]
libc.shmget({key}, 4096, 0o1000 | 0o666)      # IPC_CREAT, readable by anyone
libc.msgget({key}, 0o1000 | 0o666)
libc.shmget({key} + 1, 4096, 0o1000 | 0o600)  # private to this uid
del libc
[os.getuid(), found]
"""


def host_ipc_keys() -> set[int]:
    keys = set()
    for kind in ("shm", "msg"):
        with open(f"/proc/sysvipc/{kind}") as fh:
            for line in fh.read().splitlines()[1:]:
                keys.add(int(line.split()[0]))
    return keys


@unittest.skipUnless(ROOT, "root mode")
class IpcResidueTest(RuntimeTestCase):
    opts = RuntimeOpts(idle_workers=1, uid_block_size=3)

    def test_sysv_objects_die_with_the_worker_even_when_the_uid_is_reused(self) -> None:
        key = 0x5EC000 + uuid.uuid4().int % 0xFFF
        uids = []
        for _ in range(5):
            ep = TenantEpisode(self.runtime, "t")
            result = ep.step(IPC_PROBE.format(key=key))
            self.assertEqual(result["exit_code"], 0, result["stderr"])
            uid, found = eval(result["stdout"])  # noqa: S307 - our own output: a list literal
            uids.append(uid)
            self.assertEqual(found, [-1, -1, -1])  # nothing of an earlier episode
            self.assertFalse({key, key + 1} & host_ipc_keys())
            self.runtime.discard("t", ep.episode_id)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and len(self.runtime.pool._free_uids) < 2:
                time.sleep(0.02)
        self.assertLess(len(set(uids)), len(uids))  # uids were reused meanwhile

    def test_a_uid_with_ipc_objects_left_is_not_reused(self) -> None:
        import ctypes

        uid = 4_100_000 + uuid.uuid4().int % 1000
        key = 0x5ED000 + uuid.uuid4().int % 0xFFF
        libc = ctypes.CDLL(None, use_errno=True)
        pid = os.fork()
        if pid == 0:
            try:
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os._exit(0 if libc.shmget(key, 4096, 0o1000 | 0o600) >= 0 else 1)
            finally:
                os._exit(2)
        self.assertEqual(os.waitpid(pid, 0)[1], 0)
        try:
            self.assertEqual(hygiene.uid_has_residue(uid), "SysV shm object")
        finally:
            libc.shmctl(libc.shmget(key, 0, 0), 0, None)  # IPC_RMID
        self.assertIsNone(hygiene.uid_has_residue(uid))


class FilesResidueTest(RuntimeTestCase):
    def test_every_writable_place_is_private_and_wiped(self) -> None:
        name = f"ce-{uuid.uuid4().hex}"
        places = ["/tmp", "/var/tmp", "/dev/shm", "/run/lock", "."]
        writer = TenantEpisode(self.runtime, "t")
        code = "import os\nwritten = []\n" + "".join(
            f"try:\n    open(os.path.join({p!r}, {name!r}), 'w').write('x')\n    written.append({p!r})\n"
            "except OSError:\n    pass\n"
            for p in places
        ) + "written"
        self.assertEqual(writer.step(code)["exit_code"], 0)
        for place in places[:-1]:
            self.assertFalse(os.path.exists(os.path.join(place, name)))
        reader = TenantEpisode(self.runtime, "t").step(
            "import os\n[p for p in " + repr(places) + f" if os.path.exists(os.path.join(p, {name!r}))]"
        )
        self.assertEqual(reader["stdout"], "[]")


# --- 6: memory covers the whole step -----------------------------------------------------------


@unittest.skipUnless(ROOT, "memory cgroups need root")
class MemoryGroupTest(RuntimeTestCase):
    def test_children_each_within_the_limit_cannot_exceed_it_together(self) -> None:
        ep = TenantEpisode(self.runtime, "t", memory_mb=256)
        result = ep.step(
            "import os, time\npids = []\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n"
            "        block = b'x' * (100 * 2**20)\n        time.sleep(1)\n        os._exit(0)\n"
            "    pids.append(pid)\n[os.waitpid(p, 0)[1] for p in pids]",
            timeout_ms=20000,
        )
        if not result["out_of_memory"]:
            statuses = eval(result["stdout"])  # noqa: S307 - a list of ints
            self.assertIn(9, [s & 0x7F for s in statuses], statuses)  # SIGKILLed by the group's OOM

    def test_tmpfs_counts_toward_the_limit(self) -> None:
        ep = TenantEpisode(self.runtime, "t", memory_mb=256)
        ep.step("kept = 1")
        result = ep.step(
            "for n in range(3):  # files under the 64 MiB file-size limit\n"
            "    with open(f'/dev/shm/fill{n}', 'wb') as fh:\n        for _ in range(5):\n"
            "            fh.write(b'x' * 10 * 2**20)\n"
            "block = b'y' * (150 * 2**20)\nkept = 2",
            timeout_ms=20000,
        )
        self.assertTrue(result["out_of_memory"], result["stderr"])
        self.assertEqual(result["error_code"], "out_of_memory")
        self.assertEqual(ep.step("kept")["stdout"], "1")


class WarmMemoryCapTest(RuntimeTestCase):
    opts = RuntimeOpts(idle_workers=1, max_warm_memory_bytes=70 * 2**20)

    def test_least_recently_used_warm_worker_is_evicted_beyond_the_cap(self) -> None:
        first = TenantEpisode(self.runtime, "t")
        first.step("data = bytes(range(256)) * (160 * 1024)")  # 40 MiB
        second = TenantEpisode(self.runtime, "t")
        second.step("data = bytes(range(256)) * (160 * 1024)")
        self.assertTrue(second.step("len(data)")["warm"])
        self.assertFalse(first.step("len(data)")["warm"])


# --- 11, 12: warm equals cold, exit codes, paths, file descriptors ------------------------------


class WarmEqualsColdTest(RuntimeTestCase):
    def test_dropped_name_is_gone_from_the_live_namespace(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        first = ep.step("f = (i for i in range(3))\nx = 1")
        self.assertEqual(first["dropped"], [{"name": "f", "type": "generator"}])
        second = ep.step("'f' in globals(), x")
        self.assertTrue(second["warm"])
        self.assertEqual(second["stdout"], "[false, 1]")

    def test_patched_builtins_are_restored(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        ep.step("import builtins\nbuiltins.sorted = lambda *a, **k: 'patched'\n__builtins__['abs'] = lambda x: 7")
        result = ep.step("import json\nabs(-1), json.dumps(sorted([2, 1]))")
        self.assertTrue(result["warm"])
        self.assertEqual(result["stdout"], '[1, "[1, 2]"]')

    def test_patched_builtins_of_the_openenv_table_are_restored(self) -> None:
        ep = TenantEpisode(self.runtime, "t", policy={"mode": "openenv", "additional_imports": []})
        ep.step("__builtins__['len'] = lambda x: 42")
        result = ep.step("len([1])")
        self.assertEqual((result["warm"], result["stdout"]), (True, "1"))


class HashSeedTest(RuntimeTestCase):
    def test_tenants_never_share_a_hash_seed(self) -> None:
        code = "hash('coding-env'), hash(b'coding-env')"
        a = TenantEpisode(self.runtime, "tenant-a").step(code)["stdout"]
        b = TenantEpisode(self.runtime, "tenant-b").step(code)["stdout"]
        self.assertNotEqual(a, b)  # one seed per episode: tests/test_hash_seed.py


class NoSpareTest(RuntimeTestCase):
    opts = RuntimeOpts(idle_workers=0)

    def test_concurrent_cold_steps_of_two_tenants_without_spares_both_run(self) -> None:
        slow = TenantEpisode(self.runtime, "slow")
        event = slow.event("import time\ntime.sleep(1.5)\n'done'")
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(self.runtime.run_step(parse_event(event))))
        thread.start()
        deadline = time.monotonic() + 10
        while ("slow", slow.episode_id) not in self.runtime._running and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # its worker is running the cell now
        other = TenantEpisode(self.runtime, "other").step("1")
        thread.join()
        self.assertEqual(other["exit_code"], 0, other["stderr"])
        self.assertEqual((result["exit_code"], result["stdout"]), (0, '"done"'), result["stderr"])


class ExitCodeTest(RuntimeTestCase):
    def test_exit_codes_are_clamped(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        for value, expected in (("2**60", 1), ("-1", 1), ("300", 1), ("True", 1), ("255", 255), ("0", 0)):
            result = ep.step(f"import sys\nsys.exit({value})")
            self.assertEqual(result["exit_code"], expected, value)


class HostPathsTest(RuntimeTestCase):
    def test_no_host_path_is_visible_to_user_code(self) -> None:
        code = r"""
import gc, os, sys, types
seen = [repr(sys.path), os.getcwd(), repr(sys.argv)]
for m in list(sys.modules.values()):
    seen += [str(getattr(m, "__file__", "")), str(getattr(m, "__spec__", "")), str(getattr(m, "__path__", ""))]
    seen.append(str(getattr(getattr(m, "__loader__", None), "path", "")))
frame = sys._getframe()
while frame is not None:
    seen.append(frame.f_code.co_filename)
    frame = frame.f_back
seen += [o.__code__.co_filename for o in gc.get_objects() if isinstance(o, types.FunctionType)]
for name in ("cmdline", "environ", "maps", "mountinfo", "cgroup"):
    try:
        seen.append(open(f"/proc/self/{name}", "rb").read().decode("latin-1"))
    except OSError:
        pass  # not readable at all (the worker is not dumpable)
"\n".join(seen)
"""
        result = TenantEpisode(self.runtime, "t").step(code, max_output_bytes=16 * 2**20)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertFalse(result["stdout_truncated"])
        self.assertNotIn(PACKAGE_ROOT, result["stdout"])
        self.assertNotIn(self.runtime.work_root, result["stdout"])
        self.assertIn("/coding-env/coding_env_runtime/worker.py", result["stdout"])
        # Mounts of the host that user code does not need are gone from its mount table.
        with open("/proc/self/mountinfo") as fh:
            host_points = {line.split()[4] for line in fh}
        hidden = {p for p in host_points if not p.startswith(("/proc", "/sys", "/dev", "/usr", "/tmp", "/run", "/var"))}
        hidden -= {"/"}
        hidden |= {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/freezer"}
        self.assertNotIn("coding-env-", result["stdout"])  # no cgroup path of the host's layout
        for point in hidden:
            self.assertNotIn(f" {point} ", result["stdout"])


class FileDescriptorTest(RuntimeTestCase):
    def test_running_out_of_file_descriptors_is_reported_as_such(self) -> None:
        ep = TenantEpisode(self.runtime, "t")
        ep.step("kept = 1")
        result = ep.step("import os\nfds = []\nwhile True:\n    fds.append(os.open('/dev/null', 0))")
        self.assertEqual(result["exit_code"], 1)
        self.assertEqual(result["error_code"], "too_many_open_files")
        self.assertIn("Too many open files", result["stderr"])
        self.assertFalse(result["crashed"])
        self.assertEqual(ep.step("kept")["stdout"], "1")


class CgroupV2FreezerTest(unittest.TestCase):
    """The cgroup v2 freezer (cgroup.freeze), on a v2 hierarchy mounted next to v1 if any."""

    def test_v2_group_freezes_and_kills_its_processes(self) -> None:
        import subprocess

        from coding_env_runtime import cgroups

        mounts = [m for m in cgroups._mounts() if m[2] == "cgroup2"]
        if not ROOT or not mounts:
            self.skipTest("no writable cgroup v2 hierarchy")
        _v1, own_v2 = cgroups._own_paths()
        own = cgroups._join(mounts[0][0], mounts[0][1], own_v2 or "/")
        memory = cgroups.find_hierarchy("memory")
        if own is None or not os.access(own, os.W_OK) or memory is None:
            self.skipTest("no writable cgroup v2 hierarchy")
        base = os.path.join(own, f"coding-env-test-{os.getpid()}")
        os.makedirs(base, exist_ok=True)
        child = subprocess.Popen(["sleep", "30"])
        group = cgroups.WorkerGroup(cgroups._Hierarchy(base, True), memory, "w1")
        try:
            for procs in group.procs_files:
                cgroups._write(procs, str(child.pid))
            group.freeze()
            self.assertTrue(group.wait_frozen())
            group.thaw()
            self.assertFalse(group.is_frozen())
            self.assertTrue(group.kill_all())
            self.assertEqual(child.wait(timeout=5), -9)
        finally:
            child.kill()
            group.remove()
            cgroups._remove_tree(base)


@unittest.skipUnless(ROOT, "control groups need root")
class CgroupCleanupTest(unittest.TestCase):
    def test_groups_live_below_our_own_and_are_removed_on_close(self) -> None:
        from coding_env_runtime import cgroups
        from coding_env_runtime.runtime import Runtime

        runtime = Runtime(RuntimeOpts(idle_workers=1))
        try:
            manager = runtime.pool.cgroups
            if manager is None:
                self.skipTest("no writable freezer and memory control groups")
            for controller, base in (("freezer", manager.freezer), ("memory", manager.memory)):
                own = cgroups.find_hierarchy(controller)
                self.assertEqual(os.path.dirname(base.own_dir), own.own_dir)  # directly below ours
            bases = [manager.freezer.own_dir, manager.memory.own_dir]
            ep = TenantEpisode(runtime, "t")
            ep.step("x = 1")
            worker = next(iter(runtime._warm.values()))
            self.assertTrue(os.path.isdir(worker.group.freezer_dir))
        finally:
            runtime.close()
        for base in bases:
            self.assertFalse(os.path.exists(base), base)
