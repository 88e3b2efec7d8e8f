"""One settings loader on the Python side: options.py is the only module that reads a
``CODING_ENV_*`` variable, each name it exports is read, and the names infra (and the image)
set for the executor are names it reads."""

from __future__ import annotations

import ast
import os
import re
import unittest
from pathlib import Path
from unittest import mock

from coding_env_runtime import options

RUNTIME_DIR = Path(options.__file__).resolve().parent
PYTHON_RUNTIME_DIR = RUNTIME_DIR.parent
REPO_ROOT = PYTHON_RUNTIME_DIR.parent
#: How infra/test/settings-names.test.ts finds the names in options.py (keep the two alike).
INFRA_NAME_LINE = re.compile(r'^[A-Z][A-Z0-9_]*_ENV = "(CODING_ENV_[A-Z0-9_]+)"$', re.MULTILINE)
A_NAME = re.compile(r"CODING_ENV_[A-Z0-9_]+")


def exported_names() -> dict[str, str]:
    """options' ``<NAME>_ENV`` constants: constant name -> variable name."""
    return {
        key: value
        for key, value in vars(options).items()
        if key.endswith("_ENV") and isinstance(value, str) and A_NAME.fullmatch(value)
    }


def _is_os_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ"
            and isinstance(node.value, ast.Name) and node.value.id == "os")


def _key_names(node: ast.AST) -> str | None:
    """The setting a key expression names: a literal CODING_ENV_* or one of options' constants."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and A_NAME.fullmatch(node.value):
        return node.value
    constant = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return exported_names().get(constant or "")


def settings_reads(source: str) -> list[str]:
    """Where ``source`` reads or names a CODING_ENV_* variable other than through options'
    functions: ``os.environ[...]``, ``os.environ.get/pop(...)``, ``os.getenv(...)``, ``... in
    os.environ``, or a literal name outside a docstring."""
    tree = ast.parse(source)
    docstrings = {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and (body := node.body) and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    }
    found: list[str] = []
    for node in ast.walk(tree):
        key: ast.AST | None = None
        if isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            key = node.slice
        elif isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
            if _is_os_environ(node.func.value) or (
                node.func.attr == "getenv" and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
            ):
                key = node.args[0]
        elif isinstance(node, ast.Compare) and any(_is_os_environ(c) for c in node.comparators):
            key = node.left
        elif (isinstance(node, ast.Constant) and id(node) not in docstrings
              and isinstance(node.value, str) and A_NAME.fullmatch(node.value)):
            found.append(f"line {node.lineno}: the literal name {node.value}")
            continue
        name = _key_names(key) if key is not None else None
        if name is not None:
            found.append(f"line {node.lineno}: reads {name}")
    return found


class OnlyOptionsReadsTheEnvironmentTest(unittest.TestCase):
    def test_the_scan_finds_each_way_of_reading(self) -> None:
        # The control: each form the scan must see, so a scan that sees nothing cannot pass below.
        source = (
            'import os\n'
            'from coding_env_runtime.options import PRELOAD_ENV\n'
            'a = os.environ.get("CODING_ENV_X")\n'
            'b = os.environ[PRELOAD_ENV]\n'
            'c = os.getenv(options.IDLE_WORKERS_ENV)\n'
            'd = PRELOAD_ENV in os.environ\n'
            'e = os.environ.pop(options.LOCAL_ACCESS_KEY_ENV, None)\n'
            'f = {"CODING_ENV_Y": 1}\n'
        )
        lines = {int(found.split(":")[0].removeprefix("line ")) for found in settings_reads(source)}
        self.assertEqual(lines, {3, 4, 5, 6, 7, 8}, settings_reads(source))
        self.assertEqual(settings_reads('"""Reads ``CODING_ENV_X``."""\nimport os\nos.environ.get("HOME")\n'), [])

    def test_no_module_but_options_reads_or_names_a_coding_env_variable(self) -> None:
        found = {
            str(path.relative_to(PYTHON_RUNTIME_DIR)): reads
            for path in sorted([*RUNTIME_DIR.glob("*.py"), *(PYTHON_RUNTIME_DIR / "harness").glob("*.py")])
            if path.name != "options.py" and (reads := settings_reads(path.read_text()))
        }
        self.assertEqual(found, {}, "read CODING_ENV_* settings in options.py and take the values from it")


class ExportedNamesTest(unittest.TestCase):
    def test_infra_finds_exactly_the_exported_names(self) -> None:
        # infra/test/settings-names.test.ts reads options.py's source with this pattern.
        source = (RUNTIME_DIR / "options.py").read_text()
        self.assertEqual(set(INFRA_NAME_LINE.findall(source)), set(exported_names().values()))
        self.assertGreater(len(exported_names()), 3)

    def test_each_exported_name_is_read(self) -> None:
        # A value for each name and what options returns for it: a name nothing reads fails.
        samples = {
            options.WORKER_MEMORY_MB_ENV: ("777", lambda: options.worker_memory_mb(), 777),
            options.WORKER_MAX_MEMORY_MB_ENV: ("4321", lambda: options.worker_max_memory_mb(), 4321),
            options.IDLE_WORKERS_ENV: ("7", lambda: options.opts_from_environment().idle_workers, 7),
            options.MAX_WARM_WORKERS_ENV: ("5", lambda: options.opts_from_environment().max_warm_workers, 5),
            options.PRELOAD_ENV: ("json, csv", lambda: options.opts_from_environment().preload, ("json", "csv")),
            options.MAX_WARM_MEMORY_MB_ENV: ("64", lambda: options.max_warm_memory_mb(), 64),
            options.STATE_CACHE_MB_ENV: ("3", lambda: options.state_cache_bytes(), 3 * 2**20),
            options.FONT_CACHE_ENV: ("/opt/fonts", lambda: options.font_cache_dir(), "/opt/fonts"),
            options.LOCAL_ACCESS_KEY_ENV: ("AKID", lambda: options.take_local_access_key_id(), "AKID"),
        }
        self.assertEqual(set(samples), set(exported_names().values()), "give each name a sample here")
        names = set(exported_names().values())
        clean = {k: v for k, v in os.environ.items() if k not in names}
        for name, (raw, read, expected) in samples.items():
            with self.subTest(name=name), mock.patch.dict(os.environ, clean, clear=True):
                unset = read()
                os.environ[name] = raw
                self.assertEqual(read(), expected)
                self.assertNotEqual(unset, expected)

    def test_the_local_access_key_is_removed_once_read(self) -> None:
        with mock.patch.dict(os.environ, {options.LOCAL_ACCESS_KEY_ENV: "AKID"}):
            self.assertEqual(options.take_local_access_key_id(), "AKID")
            self.assertNotIn(options.LOCAL_ACCESS_KEY_ENV, os.environ)

    def test_the_names_infra_and_the_image_set_for_the_executor_are_read_here(self) -> None:
        executor_ts = (REPO_ROOT / "infra" / "lib" / "executor.ts").read_text()
        block = re.search(r"export const EXECUTOR_ENV = Object\.freeze\(\{(.*?)\}\);", executor_ts, re.DOTALL)
        self.assertIsNotNone(block, "infra/lib/executor.ts exports EXECUTOR_ENV")
        assert block is not None
        infra_names = set(re.findall(r'"(CODING_ENV_[A-Z0-9_]+)"', block.group(1)))
        dockerfile = (PYTHON_RUNTIME_DIR / "Dockerfile").read_text()
        image_names = set(re.findall(r"\b(CODING_ENV_[A-Z0-9_]+)=", dockerfile))
        self.assertEqual(infra_names, {options.WORKER_MEMORY_MB_ENV, options.WORKER_MAX_MEMORY_MB_ENV})
        self.assertGreaterEqual(len(image_names), 3)
        self.assertEqual((infra_names | image_names) - set(exported_names().values()), set())

    def test_the_local_stack_passes_the_access_key_by_the_name_read_here(self) -> None:
        # functions/src/local/executor-process.ts sets it by API_ENV.localAccessKeyId (config.ts).
        config_ts = (REPO_ROOT / "functions" / "src" / "config.ts").read_text()
        passed = re.search(r'^  localAccessKeyId: "(CODING_ENV_[A-Z0-9_]+)",$', config_ts, re.MULTILINE)
        self.assertIsNotNone(passed, "functions/src/config.ts names API_ENV.localAccessKeyId")
        assert passed is not None
        self.assertEqual(passed.group(1), options.LOCAL_ACCESS_KEY_ENV)
        self.assertIn("[API_ENV.localAccessKeyId]: opts.accessKeyId",
                      (REPO_ROOT / "functions" / "src" / "local" / "executor-process.ts").read_text())


if __name__ == "__main__":
    unittest.main()
