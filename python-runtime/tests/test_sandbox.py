"""Process helpers, including the /proc scan used where the kernel lacks /proc/.../children."""

from __future__ import annotations

import os
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
