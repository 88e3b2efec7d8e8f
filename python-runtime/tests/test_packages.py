"""The known package set: one list (packages.json), the image's pins agree with it, the executor
reports it, and the ``openenv`` policy lets ``additional_imports`` name any of it."""

from __future__ import annotations

import re
import unittest
from pathlib import Path

from coding_env_runtime import handler, packages
from coding_env_runtime.contract import PackagesRequest, parse_event

from .support import Episode, RuntimeTestCase

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
#: The runtime's own dependency, pinned in the image but not offered to user code as such.
RUNTIME_DEPENDENCIES = {"cloudpickle"}


def pinned_requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s#]+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


class PackageListTest(unittest.TestCase):
    def test_the_list_names_at_least_the_promised_packages(self) -> None:
        self.assertLessEqual({"numpy", "pandas", "scipy", "sympy", "matplotlib"}, set(packages.listed()))

    def test_the_image_requirements_pin_exactly_the_list(self) -> None:
        pins = pinned_requirements()
        listed = {name: entry["pin"] for name, entry in packages.listed().items()}
        self.assertEqual({k: v for k, v in pins.items() if k not in RUNTIME_DEPENDENCIES}, listed)

    def test_every_listed_package_is_installed_here(self) -> None:
        # What npm start checks; the message names the Debian packages to install.
        self.assertEqual(packages.problems(strict=False), [])

    def test_the_packages_op_reports_every_listed_package(self) -> None:
        self.assertIsInstance(parse_event({"op": "packages"}), PackagesRequest)
        reply = handler.handler({"contract_version": 1, "op": "packages"})
        self.assertEqual(reply["contract_version"], 1)
        self.assertEqual(set(reply["packages"]), set(packages.listed()))
        self.assertTrue(all(isinstance(v, str) and v for v in reply["packages"].values()), reply)


class PackageImportTest(RuntimeTestCase):
    """One step imports every listed package (about a CPU-second): the ``openenv`` policy naming
    them all in ``additional_imports``, printing what the cell then defines and each version."""

    names: list[str]
    result: dict

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.names = sorted(packages.listed())
        episode = Episode(cls.runtime, {"mode": "openenv", "additional_imports": cls.names}, timeout_ms=60_000)
        code = "".join(f"import {name}\nprint({name!r}, {name}.__version__)\n" for name in cls.names)
        cls.result = episode.step(code + "print(sorted(n for n in dir() if not n.startswith('_')))")

    def test_openenv_policy_imports_each_package_named_in_additional_imports(self) -> None:
        self.assertEqual(self.result["exit_code"], 0, self.result["stderr"])
        defined = self.result["stdout"].splitlines()[-1]
        for name in self.names:
            self.assertIn(repr(name), defined)

    def test_reported_versions_are_what_imports(self) -> None:
        reported = packages.installed()
        self.assertEqual(self.result["exit_code"], 0, self.result["stderr"])
        for name in reported:
            self.assertIn(f"{name} {reported[name]}", self.result["stdout"])


if __name__ == "__main__":
    unittest.main()
