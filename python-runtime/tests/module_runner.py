"""Runs the test classes (or modules) named on stdin, one at a time, each answered by one JSON
line on stdout; with --list, names the test classes of the modules given instead.

scripts/run-python-tests.mjs starts several of these side by side and hands each the next class
when it has answered: most of the suite waits (on sandbox start-ups, timeouts, child processes)
rather than computes, so classes running side by side shorten it without costing more CPU.

    python3 python-runtime/tests/module_runner.py [-v] [-k PATTERN]...
    stdin:  tests.test_seed.SeedTest  (or several, space-separated)
    stdout: {"name": "tests.test_seed.SeedTest", "ran": 6, "failures": 0, "errors": 0,
             "skipped": 0, "unexpected_successes": 0, "seconds": 1.2, "ok": true, "output": "..."}

    python3 python-runtime/tests/module_runner.py --list [-k PATTERN]... tests.test_seed ...
    stdout: {"name": "tests.test_seed.SeedTest", "tests": 6, "alone": false, "first": false}
            (one per class; a module that cannot be imported is named itself, so running it
            reports why)

A class (or module) that sets ``RUN_ALONE = True`` is run with no other beside it ("alone"); a
class that sets ``RUN_FIRST = True`` (a long one) is started before the others ("first"). The
Lambda-mode classes that share the test process's harness (``share_harness = True``) are listed
with ``"together": "shared-harness"``: run in one process, they start that harness once, not once
per process. A line on stdin may name several classes (space-separated): one answer for all.

Anything else a test (or a process it starts) writes to stdout goes to stderr instead; their
stdin is /dev/null.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import sys
import time
import unittest

TESTS_TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loader_for(patterns: list[str]) -> unittest.TestLoader:
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in patterns]  # as unittest's -k
    return loader


def list_classes(modules: list[str], patterns: list[str]) -> list[dict[str, object]]:
    loader = loader_for(patterns)
    found: list[dict[str, object]] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - running it reports the error
            found.append({"name": name, "tests": 1, "alone": False, "first": True})
            continue
        for attribute, value in vars(module).items():
            # Only the module's own classes (an imported TestCase would run twice).
            if isinstance(value, type) and issubclass(value, unittest.TestCase) and value.__module__ == name:
                count = loader.loadTestsFromTestCase(value).countTestCases()
                alone = getattr(value, "RUN_ALONE", getattr(module, "RUN_ALONE", False)) is True
                first = getattr(value, "RUN_FIRST", False) is True
                entry: dict[str, object] = {"name": f"{name}.{attribute}", "tests": count, "alone": alone, "first": first}
                if getattr(value, "share_harness", False) is True:
                    entry["together"] = "shared-harness"
                if count > 0:
                    found.append(entry)
    return found


def run_tests(name: str, patterns: list[str], verbosity: int) -> dict[str, object]:
    # An import error becomes a failing test.
    suite = loader_for(patterns).loadTestsFromNames(name.split())
    stream = io.StringIO()
    started = time.monotonic()
    result = unittest.TextTestRunner(stream=stream, verbosity=verbosity).run(suite)
    return {
        "name": name,
        "ran": result.testsRun,
        "failures": len(result.failures),
        "errors": len(result.errors),
        "skipped": len(result.skipped),
        "unexpected_successes": len(result.unexpectedSuccesses),
        "seconds": round(time.monotonic() - started, 2),
        "ok": result.wasSuccessful(),
        "output": stream.getvalue(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-k", dest="patterns", action="append", default=[])
    parser.add_argument("-v", dest="verbosity", action="store_const", const=2, default=1)
    parser.add_argument("--list", dest="modules", nargs="*")
    args = parser.parse_args()
    # As `unittest discover -t python-runtime`: the tests are the package `tests` (not this
    # script's directory's loose modules).
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    if TESTS_TOP not in sys.path:
        sys.path.insert(0, TESTS_TOP)
    if args.modules is not None:
        for entry in list_classes(args.modules, args.patterns):
            print(json.dumps(entry))
        return
    # The module names and the answers get descriptors of their own: the processes tests start
    # inherit /dev/null as stdin (none can take a module name) and stderr as stdout.
    names = os.fdopen(os.dup(0), "r")
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    for line in names:
        name = line.strip()
        if name:
            answers.write(json.dumps(run_tests(name, args.patterns, args.verbosity)) + "\n")


if __name__ == "__main__":
    main()
