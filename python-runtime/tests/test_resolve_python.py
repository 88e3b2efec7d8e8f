"""scripts/python.mjs (resolvePython) and scripts/setup-python.mjs, run with the real node."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")
RESOLVE = "import('./scripts/python.mjs').then(async m => console.log(await m.resolvePython()))"


def node(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run(
        [NODE, *args], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


@unittest.skipUnless(NODE, "node is not installed")
class ResolvePythonTest(unittest.TestCase):
    def test_override_with_cloudpickle_is_used(self) -> None:
        run = node(["-e", RESOLVE], CODING_ENV_PYTHON=sys.executable)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(os.path.realpath(run.stdout.strip()), os.path.realpath(sys.executable))

    def test_broken_override_is_an_error_that_says_how_to_fix_it(self) -> None:
        run = node(["-e", RESOLVE], CODING_ENV_PYTHON="/bin/false")
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("CODING_ENV_PYTHON=/bin/false", run.stderr)
        self.assertIn("pip install cloudpickle", run.stderr)

    def test_found_interpreter_imports_cloudpickle_and_is_cached(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "CODING_ENV_PYTHON"}
        run = subprocess.run([NODE, "-e", RESOLVE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        python = run.stdout.strip()
        self.assertTrue(os.path.isabs(python))
        probe = subprocess.run([python, "-c", "import cloudpickle"], capture_output=True, timeout=60)
        self.assertEqual(probe.returncode, 0)
        cache = REPO / "node_modules" / ".cache" / "coding-env" / "python.json"
        self.assertIn(python, cache.read_text())

    def test_setup_never_fails_the_install(self) -> None:
        run = node(["scripts/setup-python.mjs"], CODING_ENV_PYTHON="/bin/false")
        self.assertEqual(run.returncode, 0)
        self.assertIn("cloudpickle", run.stderr)
        ok = node(["scripts/setup-python.mjs"], CODING_ENV_PYTHON=sys.executable)
        self.assertIn("Python runtime interpreter:", ok.stdout)
