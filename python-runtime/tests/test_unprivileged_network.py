"""A runtime that is not root (a local stack started by a user) keeps user code off the
machine's network: each worker has its own user, network and IPC namespace, so the stack's own
services on 127.0.0.1 (its DynamoDB, the executor) cannot be reached even by code that has read
the stack's secret from a file of the same uid.

The runtime runs as ``nobody`` from a world-readable copy of the package (the checkout may sit
under /root, which ``nobody`` cannot enter), with the option on and, as the control that shows
the attack works without it, off.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import unittest
from unittest import mock

from .world_readable import package_copy

NOBODY = 65534

DRIVER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from coding_env_runtime.runtime import Runtime, RuntimeOpts
from tests.support import Episode
import os
port, isolated = int(sys.argv[2]), sys.argv[3] == "on"
# As the local executor run by a user: namespaces on, and no scrub of the shared /tmp.
runtime = Runtime(RuntimeOpts(idle_workers=1, unprivileged_namespaces=isolated, scrub_shared_dirs=not isolated))
# Another program of the same user writes a file in /tmp while the runtime runs.
theirs = f"/tmp/ce-user-file-{os.getpid()}"
open(theirs, "w").write("mine")
ep = Episode(runtime, {"mode": "full"})
probe = (
    "import socket\n"
    "try:\n"
    f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
    "    s.sendall(b'hello')\n"
    "    r = 'connected'\n"
    "except OSError as e:\n"
    "    r = type(e).__name__\n"
    "r"
)
out = {
    "privileged": runtime.privileged,
    "namespaces": runtime.pool.opts.unprivileged_namespaces,
    "connect": ep.step(probe),
    "after": ep.step("6 * 7"),
    "their_file_kept": os.path.exists(theirs),
}
if os.path.exists(theirs):
    os.unlink(theirs)
runtime.close()
for value in out.values():
    if isinstance(value, dict):
        value.pop("snapshot", None)
print(json.dumps(out))
"""


def _userns_for_nobody() -> bool:
    try:
        run = subprocess.run(["unshare", "-Urn", "true"], user=NOBODY, group=NOBODY, extra_groups=[],
                             capture_output=True, timeout=10, cwd="/")
    except (OSError, subprocess.SubprocessError):
        return False
    return run.returncode == 0


@unittest.skipUnless(os.geteuid() == 0, "needs root to start the runtime as another user")
@unittest.skipUnless(_userns_for_nobody(), "this kernel refuses unprivileged user namespaces")
class UnprivilegedNetworkTest(unittest.TestCase):
    copy: str
    listener: socket.socket
    received: list[bytes]

    @classmethod
    def setUpClass(cls) -> None:
        cls.copy = package_copy()
        # A service of the machine on 127.0.0.1, as the local stack's DynamoDB is.
        cls.listener = socket.create_server(("127.0.0.1", 0))
        cls.received = []

        def accept() -> None:
            while True:
                try:
                    conn, _ = cls.listener.accept()
                except OSError:
                    return
                with conn:
                    conn.settimeout(2)
                    try:
                        cls.received.append(conn.recv(16))
                    except OSError:
                        pass

        threading.Thread(target=accept, daemon=True).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.listener.close()
        shutil.rmtree(cls.copy, ignore_errors=True)

    def _run(self, isolated: bool) -> dict:
        port = self.listener.getsockname()[1]
        run = subprocess.run(
            ["/usr/bin/python3", "-c", DRIVER, self.copy, str(port), "on" if isolated else "off"],
            user=NOBODY, group=NOBODY, extra_groups=[], env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
            cwd="/tmp", capture_output=True, text=True, timeout=120,
        )
        if run.returncode != 0:
            raise AssertionError(f"driver failed: {run.stderr[-3000:]}")
        return json.loads(run.stdout.strip().splitlines()[-1])

    def test_user_code_cannot_reach_the_machines_loopback_services(self) -> None:
        out = self._run(isolated=True)
        self.assertFalse(out["privileged"])
        self.assertTrue(out["namespaces"])
        self.assertEqual(out["connect"]["exit_code"], 0, out["connect"]["stderr"])
        self.assertNotIn("connected", out["connect"]["stdout"])
        self.assertIn("Error", out["connect"]["stdout"])
        self.assertEqual(out["after"]["stdout"].strip(), "42")
        # The user's other programs' files in /tmp are left alone.
        self.assertTrue(out["their_file_kept"])

    def test_without_the_namespaces_the_same_code_reaches_them(self) -> None:
        before = len(self.received)
        out = self._run(isolated=False)
        self.assertFalse(out["namespaces"])
        self.assertEqual(out["connect"]["stdout"].strip().strip("'\""), "connected")
        # Lambda's scrub (the default) removes what appeared in /tmp with the runtime's uid.
        self.assertFalse(out["their_file_kept"])
        self.assertGreater(len(self.received), before)


class LocalServerOptionsTest(unittest.TestCase):
    def test_the_local_executor_asks_for_the_namespaces_only_when_not_root(self) -> None:
        from coding_env_runtime import local_server

        args = argparse.Namespace(idle_workers=1, max_warm_workers=2, preload="")
        with mock.patch.object(local_server.os, "geteuid", return_value=1000):
            as_user = local_server.runtime_opts(args)
        with mock.patch.object(local_server.os, "geteuid", return_value=0):
            as_root = local_server.runtime_opts(args)
        self.assertTrue(as_user.unprivileged_namespaces)
        self.assertFalse(as_root.unprivileged_namespaces)
        # Run by a user, /tmp is shared with the user's other programs: no scrub of it.
        self.assertFalse(as_user.scrub_shared_dirs)
        self.assertTrue(as_root.scrub_shared_dirs)


if __name__ == "__main__":
    unittest.main()
