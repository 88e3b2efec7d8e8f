"""What can be checked of the container image here: its files, pins and entry points."""

from __future__ import annotations

import importlib
import re
import unittest
from pathlib import Path

from coding_env_runtime import handler

ROOT = Path(__file__).resolve().parent.parent


class PackagingTest(unittest.TestCase):
    def test_dockerfile_uses_lambda_python_312_arm64_and_the_handler(self) -> None:
        text = (ROOT / "Dockerfile").read_text()
        self.assertRegex(text, r"(?m)^FROM public\.ecr\.aws/lambda/python:3\.1[2-9]-arm64$")
        # The build itself fails when the runtime does not import on the image's interpreter.
        self.assertRegex(text, r"(?m)^RUN .*python3 -I -c .*import")
        self.assertIn("import coding_env_runtime.handler", text)
        cmd = re.search(r'(?m)^CMD \["([^"]+)"\]$', text)
        assert cmd is not None
        module_name, _, attr = cmd.group(1).rpartition(".")
        self.assertTrue(callable(getattr(importlib.import_module(module_name), attr)))
        self.assertIn("COPY coding_env_runtime/", text)

    def test_requirements_pin_the_runtime_and_user_packages(self) -> None:
        lines = [
            line.strip()
            for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        pinned = dict(line.split("==") for line in lines)
        self.assertEqual(set(pinned), {"cloudpickle", "numpy", "pandas", "scipy", "sympy", "matplotlib"})

    def test_entry_points_import(self) -> None:
        for module in ("coding_env_runtime.handler", "coding_env_runtime.local_server", "coding_env_runtime.zygote"):
            importlib.import_module(module)

    def test_handler_runs_an_event_end_to_end(self) -> None:
        try:
            result = handler.handler({"episode_id": "pkg", "code": "print('hello')\n6 * 7"}, None)
        finally:
            handler.shutdown()
        self.assertEqual(result["stdout"], "hello\n\n42")
        self.assertEqual(result["contract_version"], 1)
        self.assertTrue(result["runtime_version"].startswith("1."))
        for field in ("stdout", "stderr", "exit_code", "snapshot", "state_version", "snapshot_bytes",
                      "dropped", "duration_ms", "timed_out", "out_of_memory", "crashed",
                      "stdout_truncated", "stderr_truncated", "warm", "error_code"):
            self.assertIn(field, result)

    def test_malformed_event_raises(self) -> None:
        from coding_env_runtime.contract import EventError

        for event in ({}, {"episode_id": "x"}, {"episode_id": "x", "code": "1", "limits": {"timeout_ms": -1}},
                      {"episode_id": "x", "code": "1", "policy": {"mode": "root"}}, []):
            with self.subTest(event=event), self.assertRaises(EventError):
                handler.handler(event, None)
