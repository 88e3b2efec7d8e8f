"""Attacks on the runtime in root mode (the local default) by a tenant with all of Python: each
asserts the safe outcome and fails without the protection it names."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import unittest
import uuid

from coding_env_runtime.runtime import Runtime, RuntimeOpts
from tests.support import RuntimeTestCase
from tests.test_isolation_root import ROOT, TenantEpisode

#: add_key/keyctl through ctypes: a key in the uid's user keyring, which the kernel keeps for
#: the uid (not for a process) after every process of it is gone.
KEYS = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
ADD_KEY, KEYCTL, SEARCH, READ, USER_KEYRING = 248, 250, 10, 11, -4
def plant(secret):
    return libc.syscall(ADD_KEY, b"user", b"canary", secret, len(secret), USER_KEYRING)
def find():
    key = libc.syscall(KEYCTL, SEARCH, USER_KEYRING, b"user", b"canary", 0)
    if key < 0:
        return None
    buf = ctypes.create_string_buffer(256)
    n = libc.syscall(KEYCTL, READ, key, buf, 256)
    return buf.raw[:max(n, 0)].decode()
"""


@unittest.skipUnless(ROOT, "root mode only")
class HostFilesystemTest(RuntimeTestCase):
    def test_a_world_writable_host_directory_takes_no_file(self) -> None:
        # A directory of the host left 0777 (here: a CDK build's asset directories were): user
        # code could plant a file there for the host's tools (the next deploy uploads it) or
        # for the next tenant, or fill the host's disk outside every tmpfs limit.
        target = f"/var/lib/coding-env-attack-{uuid.uuid4().hex[:8]}"
        os.makedirs(target)
        os.chmod(target, 0o777)
        self.addCleanup(shutil.rmtree, target, True)
        result = self.episode({"mode": "full"}).step(
            f"try:\n    open({target!r} + '/planted.py', 'w').write('x')\n    print('written')\n"
            "except OSError as exc:\n    print('refused', exc.errno)"
        )
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertIn("refused", result["stdout"])
        self.assertEqual(os.listdir(target), [])

    def test_the_private_temporary_directories_stay_writable(self) -> None:
        result = self.episode({"mode": "full"}).step(
            "import os\nfor d in ('/tmp', '/var/tmp', '/dev/shm', os.getcwd()):\n"
            "    open(d + '/f', 'w').write('x'); os.unlink(d + '/f')\nprint('ok')"
        )
        self.assertEqual((result["exit_code"], result["stdout"].strip()), (0, "ok"), result["stderr"])


def as_uid(uid: int, code: str) -> str:
    """Run ``KEYS + code`` in a child that takes ``uid`` (outside any sandbox); its output."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(KEYS + code, {})
            os.write(write_end, out.getvalue().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as fh:
        output = fh.read()
    os.waitpid(pid, 0)
    return output.strip()


@unittest.skipUnless(ROOT, "root mode only")
class KernelObjectsTest(RuntimeTestCase):
    def test_keyring_message_queue_and_io_uring_calls_are_refused(self) -> None:
        # Keys outlive every process of a uid (the next tenant with the uid finds them); a
        # POSIX queue outlives its creator; io_uring's kernel threads do I/O for a frozen process.
        result = self.episode({"mode": "full"}).step(
            KEYS + "rt = ctypes.CDLL('librt.so.1', use_errno=True)\n"
            "print(plant(b'A-secret'), rt.mq_open(b'/q', 0o102, 0o600, None),"
            " libc.syscall(425, 8, ctypes.create_string_buffer(120)), libc.syscall(0x40000000 + 248))"
        )
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(result["stdout"].split(), ["-1"] * 4)

    def test_the_kernels_table_of_uids_with_keys_names_no_other_worker(self) -> None:
        # /proc/key-users lists every uid that ever had a keyring (each worker's private uid)
        # with its key counts: which other workers exist, and how active they are.
        for _ in range(2):
            self.episode({"mode": "full"}).step("1")
        result = self.episode({"mode": "full"}).step(
            "import os\nlisted = [line.split(':')[0].strip() for line in open('/proc/key-users')]\n"
            "print([u for u in listed if u != str(os.getuid())])"
        )
        self.assertEqual((result["exit_code"], result["stdout"].strip()), (0, "[]"), result["stderr"])

    def test_ordinary_programs_still_run_under_the_filter(self) -> None:
        result = self.episode({"mode": "full"}).step(
            "import subprocess, multiprocessing, threading\n"
            "print(subprocess.run(['python3', '-c', 'print(6 * 7)'], capture_output=True, text=True).stdout.strip())"
        )
        self.assertEqual((result["exit_code"], result["stdout"].strip()), (0, "42"), result["stderr"])


#: Every way to a new user namespace (inside one an unprivileged process holds every capability
#: over namespaces of its own: the kernel's namespace-gated code becomes reachable), then the
#: ways of starting processes and threads that must keep working (clone3 answers ENOSYS so the
#: C library falls back to clone).
USER_NAMESPACES = r"""
import ctypes, multiprocessing, os, platform, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
CLONE, CLONE3 = {"x86_64": (56, 435), "aarch64": (220, 435)}[platform.machine()]
def errno_of(rc):
    return ctypes.get_errno() if rc < 0 else "created"
outcome = {"unshare": errno_of(libc.unshare(CLONE_NEWUSER))}
child = libc.syscall(CLONE, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
if child == 0:
    os._exit(0)
if child > 0:
    os.waitpid(child, 0)
outcome["clone"] = errno_of(child)
outcome["clone3"] = errno_of(libc.syscall(CLONE3, ctypes.create_string_buffer(88), 88))
outcome["unshare -U"] = subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode
thread = threading.Thread(target=lambda: outcome.__setitem__("thread", "ran"))
thread.start()
thread.join()
pid = os.fork()
if pid == 0:
    os._exit(7)
outcome["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
outcome["subprocess"] = subprocess.run(["python3", "-c", "print(6 * 7)"], capture_output=True, text=True).stdout.strip()
receiver, sender = multiprocessing.Pipe(duplex=False)  # no Pool: Lambda has no /dev/shm
process = multiprocessing.get_context("fork").Process(target=sender.send, args=([1, 2],))
process.start()
outcome["multiprocessing"] = receiver.recv()
process.join()
print(sorted(outcome.items()))
"""
#: EPERM for clone/unshare asking for a user namespace, ENOSYS for clone3; the rest works.
USER_NAMESPACES_REFUSED = repr(sorted({
    "unshare": 1, "clone": 1, "clone3": 38, "unshare -U": 1, "thread": "ran", "fork": 7,
    "subprocess": "42", "multiprocessing": [1, 2],
}.items()))


@unittest.skipUnless(ROOT, "root mode only")
class UserNamespaceTest(RuntimeTestCase):
    def test_no_user_namespace_can_be_created_and_processes_and_threads_still_start(self) -> None:
        result = self.episode({"mode": "full"}).step(USER_NAMESPACES)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(result["stdout"].strip(), USER_NAMESPACES_REFUSED)


@unittest.skipUnless(ROOT, "root mode only")
class UidReuseTest(unittest.TestCase):
    def test_keys_an_earlier_holder_of_the_uid_left_are_cleared_before_user_code_runs(self) -> None:
        # A key in a uid's user keyring stays after every process of the uid is gone: left by
        # a worker of a runtime without the filter, or another program that used the uid.
        base = 900_000 + (uuid.uuid4().int % 1000) * 100
        runtime = Runtime(RuntimeOpts(idle_workers=0, uid_base=base, uid_block_size=1, uid_blocks=100))
        self.addCleanup(runtime.close)
        uid = runtime.pool._free_uids[0]
        self.assertEqual(as_uid(uid, "print(plant(b'A-secret') > 0, find())"), "True A-secret")
        result = TenantEpisode(runtime, "tenant-b").step("import os\nprint(os.getuid())")
        self.assertEqual((result["exit_code"], result["stdout"].strip()), (0, str(uid)), result["stderr"])
        self.assertEqual(as_uid(uid, "print(find())"), "None")


def forged_reply(header: bytes) -> str:
    """A cell that writes a reply frame of its own on the worker's channel (fd 3)."""
    return (
        "import os, struct, time\n"
        f"header = {header!r}\n"
        "os.write(3, struct.pack('!II', len(header), 0) + header)\n"
        "time.sleep(1)\n"
    )


class ReplyChannelTest(RuntimeTestCase):
    def test_a_deeply_nested_reply_header_is_a_crashed_step_not_a_runtime_failure(self) -> None:
        # Within the header size cap, JSON nested deeper than the parser's recursion limit
        # raised RecursionError (not ValueError) in the runtime: the invocation failed as the
        # runtime's own error instead of the cell's (a 5xx through the API).
        for header in (b"[" * 300_000, b'{"a":' * 200_000):
            result = self.episode({"mode": "full"}).step(forged_reply(header))
            self.assertEqual((result["exit_code"], result["error_code"]), (1, "crashed"), result["stderr"])
        self.assertEqual(self.episode().step("print(6 * 7)")["stdout"].strip(), "42")

if __name__ == "__main__":
    unittest.main()
