"""Root mode's warm-equals-cold, file-descriptor and forged-reply checks (test_isolation_root.py:
WarmEqualsColdTest, FileDescriptorTest, FrozenBetweenStepsTest's forged reply), run in Lambda mode:
the executor's real handler in the harness's emulated Lambda environments (one non-root uid, no
namespaces or cgroups, RLIMIT_NOFILE 1024, frozen between invocations), asserting what
python-runtime/README.md documents for that mode."""

from __future__ import annotations

import sys
import unittest
from pathlib import Path
from typing import Any

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

from harness.testing import FULL, LambdaModeTestCase  # noqa: E402
from tests.test_isolation_root import FORGER  # noqa: E402

#: A reply forged once by a thread, with nothing after it (README: Lambda mode catches a forged
#: reply only when bytes follow it; the worker is not dumpable, so where its main thread waits is
#: not seen).
ONE_FORGED_REPLY = r"""
import json, os, struct, threading
header = json.dumps({"op": "result", "exit_code": 77, "dropped": []}).encode()
threading.Thread(target=lambda: os.write(3, struct.pack("!II", len(header), 0) + header), daemon=True).start()
import time
time.sleep(0.2)
kept = 'changed'
"""


class _Episode:
    """An episode driven as the API drives it: each step carries the last committed state."""

    def __init__(self, case: LambdaModeTestCase, policy: dict[str, Any] | None = None) -> None:
        self.case = case
        self.episode_id = case.episode_id()
        self.policy = policy or FULL
        self.version = 0
        self.snapshot: str | None = None

    def step(self, code: str) -> dict[str, Any]:
        event: dict[str, Any] = {"episode_id": self.episode_id, "policy": self.policy, "code": code}
        if self.snapshot is not None:
            event.update(state_version=self.version, snapshot=self.snapshot)
        result = self.case.harness.step(event)
        if result.get("snapshot") is not None and result["snapshot"] != self.snapshot:
            self.snapshot = result["snapshot"]
            self.version += 1
        return result


class LambdaWarmEqualsColdTest(LambdaModeTestCase):
    share_harness = True

    def test_dropped_name_is_gone_from_the_live_namespace(self) -> None:
        ep = _Episode(self)
        first = ep.step("f = (i for i in range(3))\nx = 1")
        self.assertEqual(first["dropped"], [{"name": "f", "type": "generator"}])
        second = ep.step("'f' in globals(), x")
        self.assertTrue(second["warm"])
        self.assertEqual(second["stdout"], "[false, 1]")

    def test_patched_builtins_are_restored(self) -> None:
        ep = _Episode(self)
        ep.step("import builtins\nbuiltins.sorted = lambda *a, **k: 'patched'\n__builtins__['abs'] = lambda x: 7")
        result = ep.step("import json\nabs(-1), json.dumps(sorted([2, 1]))")
        self.assertTrue(result["warm"])
        self.assertEqual(result["stdout"], '[1, "[1, 2]"]')

    def test_patched_builtins_of_the_openenv_table_are_restored(self) -> None:
        ep = _Episode(self, policy={"mode": "openenv", "additional_imports": []})
        ep.step("__builtins__['len'] = lambda x: 42")
        result = ep.step("len([1])")
        self.assertEqual((result["warm"], result["stdout"]), (True, "1"))


class LambdaFileDescriptorTest(LambdaModeTestCase):
    share_harness = True

    def test_running_out_of_file_descriptors_is_reported_as_such(self) -> None:
        # Lambda mode (RLIMIT_NOFILE 1024, one uid): the cell's own OSError says so; the runtime
        # still has the descriptors it needs to save the state, so (unlike root mode, where the
        # worker's clean-up runs out first and answers error_code too_many_open_files with the input
        # state) the step ends as an ordinary user error and its state is kept.
        ep = _Episode(self)
        ep.step("kept = 1")
        result = ep.step("import os\nfds = []\nwhile True:\n    fds.append(os.open('/dev/null', 0))")
        self.assertEqual(result["exit_code"], 1)
        self.assertIn(result["error_code"], (None, "too_many_open_files"))
        self.assertIn("Too many open files", result["stderr"])
        self.assertFalse(result["crashed"])
        closed = ep.step("import os\nfor fd in globals().get('fds', []):\n    os.close(fd)\nkept")
        self.assertEqual((closed["exit_code"], closed["stdout"]), (0, "1"), closed["stderr"])


class LambdaForgedReplyTest(LambdaModeTestCase):
    """README (Lambda mode): a reply forged by a thread of the step itself is caught only when
    bytes follow it before the runtime looks (the worker is not dumpable, so where its main thread
    waits is not seen); either way it concerns only the stepping episode."""

    share_harness = True

    def assert_only_its_own_episode(self, forger: str) -> None:
        ep = _Episode(self)
        ep.step("kept = 'before'")
        forged = ep.step(forger)
        other = _Episode(self).step("6 * 7")
        after = ep.step("kept")
        # Another episode's step right after it gets its own answer.
        self.assertEqual((other["exit_code"], other["stdout"]), (0, "42"), other["stderr"])
        if forged["exit_code"] != 77:
            # Caught: the worker is killed and the input state kept, as in root mode.
            self.assertTrue(forged["crashed"], forged["stderr"])
            self.assertIn("private channel", forged["stderr"])
            self.assertEqual(after["stdout"], '"before"')
        elif after["exit_code"] != 0:
            # Taken as the step's answer: the episode goes on from the (empty) state it carried,
            # in a worker that is not the forger's (or the forger's bytes crash that step).
            self.assertTrue("NameError" in after["stderr"] or after["crashed"], after["stderr"])
        else:
            self.assertIn(after["stdout"], ('"before"', '"changed"'))

    def test_replies_forged_in_a_loop(self) -> None:
        self.assert_only_its_own_episode(FORGER)

    def test_a_single_forged_reply(self) -> None:
        self.assert_only_its_own_episode(ONE_FORGED_REPLY)


if __name__ == "__main__":
    unittest.main()
