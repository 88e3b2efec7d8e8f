"""matplotlib's font cache is built once (coding_env_runtime/font_cache.py), not in every worker
that draws a figure, in root mode and in Lambda mode; user code cannot rewrite it for the next
episode. Real matplotlib (Debian's python3-matplotlib)."""

from __future__ import annotations

import importlib.util
import sys
import unittest
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

from coding_env_runtime.runtime import Runtime, RuntimeOpts  # noqa: E402
from harness.testing import FULL, LambdaModeTestCase  # noqa: E402
from tests.support import Episode  # noqa: E402
from tests.test_isolation_root import ROOT  # noqa: E402

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

#: A figure step that reports whether matplotlib scanned the fonts (and wrote its cache) or
#: read the cache: its font manager logs either line.
FIGURE = """
import io, logging
log_text = io.StringIO()
log = logging.getLogger("matplotlib.font_manager")
log.addHandler(logging.StreamHandler(log_text))
log.setLevel(logging.DEBUG)
import matplotlib.pyplot as plt
plt.plot([1, 2, 3])
plt.title("font")
print("built" if "generated new fontManager" in log_text.getvalue() else
      "read" if "Using fontManager instance" in log_text.getvalue() else "neither")
"""

#: Tries to rewrite the cache the next episodes' workers read; prints what happened.
REWRITE = """
import os
directory = {directory!r}
try:
    for name in os.listdir(directory):
        open(os.path.join(directory, name), "w").write("{{}}")
    open(os.path.join(directory, "fontlist-v999.json"), "w").write("{{}}")
    print("rewritten")
except OSError as exc:
    print("refused")
"""


@unittest.skipUnless(HAS_MATPLOTLIB and ROOT, "root mode with matplotlib")
class RootModeFontCacheTest(unittest.TestCase):
    runtime: Runtime

    @classmethod
    def setUpClass(cls) -> None:
        cls.runtime = Runtime(RuntimeOpts(idle_workers=1))
        # Built at start the first time on a machine (kept under /var/cache after that); the
        # spare started before it was there goes without it, hence "read" from the second step.
        cls.runtime.pool.font_cache_ready.wait(600)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.runtime.close()

    def figure_step(self) -> str:
        result = Episode(self.runtime, FULL).step(FIGURE)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(len(result.get("display", [])), 1)  # the figure is still shown
        return result["stdout"].strip()

    def test_figure_steps_read_the_prebuilt_font_cache_and_user_code_cannot_rewrite_it(self) -> None:
        directory = self.runtime.pool.font_cache_dir
        self.assertIsNotNone(directory)
        # New episodes: cold workers. The rewrite (no figure) takes the spare that may have
        # started before the cache was there; the figure runs in the spare started after it. It
        # reads the cache: one rewritten would be unreadable and matplotlib would scan again
        # ("built"). One figure step for both (each costs ~0.7 CPU-s).
        result = Episode(self.runtime, FULL).step(REWRITE.format(directory=directory))
        self.assertEqual(result["stdout"].strip(), "refused", result["stderr"])
        self.assertEqual(self.figure_step(), "read")


@unittest.skipUnless(HAS_MATPLOTLIB, "matplotlib is not installed")
class LambdaModeFontCacheTest(LambdaModeTestCase):
    # The test process's harness: the cache is a read-only mount no earlier step can change, the
    # figure runs in a new episode, and the refused rewrite leaves nothing behind.
    share_harness = True

    def figure_step(self) -> str:
        result = self.run_code(FIGURE)
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        return result["stdout"].strip()

    def test_figure_steps_read_the_staged_font_cache_and_user_code_cannot_rewrite_it(self) -> None:
        from coding_env_runtime import font_cache

        directory = font_cache.default_dir(sys.executable)  # where the harness built it
        result = self.run_code(REWRITE.format(directory=directory))
        self.assertEqual(result["stdout"].strip(), "refused", result["stderr"])
        # A cold worker after the attempt reads the staged cache: one rewritten would be
        # unreadable and matplotlib would scan again ("built"). One figure step for both.
        self.assertEqual(self.figure_step(), "read")


if __name__ == "__main__":
    unittest.main()
