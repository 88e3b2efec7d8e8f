"""Process helpers, including the /proc scan used where the kernel lacks /proc/.../children."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import unittest

from coding_env_runtime import sandbox


class ChildrenTest(unittest.TestCase):
    def test_scan_agrees_with_children_file_and_kill_tree_ends_the_tree(self) -> None:
        shell = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
        try:
            deadline = time.monotonic() + 5
            while len(sandbox.descendants_of(shell.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertEqual(sorted(sandbox._children_by_scan(shell.pid)), sorted(sandbox.children_of(shell.pid)))
            self.assertIn(shell.pid, sandbox._children_by_scan(os.getpid()))
            grandchildren = sandbox.descendants_of(shell.pid)
            self.assertEqual(len(grandchildren), 2)
            sandbox.kill_tree([shell.pid])
            shell.wait(timeout=5)
            time.sleep(0.1)
            self.assertTrue(all(sandbox.is_zombie(pid) for pid in grandchildren))
        finally:
            if shell.poll() is None:
                shell.kill()
                shell.wait()


class InterpreterReachableTest(unittest.TestCase):
    def test_interpreter_hidden_from_unprivileged_users_is_refused_in_root_mode(self) -> None:
        import sys
        import tempfile

        from coding_env_runtime.runtime import RuntimeFailure, _check_interpreter_reachable

        _check_interpreter_reachable(sys.executable)  # the test interpreter is reachable
        with tempfile.TemporaryDirectory() as private:
            os.chmod(private, 0o700)
            hidden = os.path.join(private, "python3")
            shutil.copy(os.path.realpath(sys.executable), hidden)
            with self.assertRaises(RuntimeFailure) as ctx:
                _check_interpreter_reachable(hidden)
            self.assertIn("unprivileged users", str(ctx.exception))
