"""The known package set (``packages.json``, next to this file): what user code may import
beyond the standard library, the same names locally and in AWS.

``installed()`` is what the executor reports (``{"op": "packages"}``, shown by the API's
``/metadata``): each listed package's installed version, read from its distribution metadata
without importing it (the runtime parent never imports user-facing packages), or None when it is
missing. ``python -m coding_env_runtime.packages --check`` exits 1 when a package is missing
(``npm start`` runs it and prints the apt-get line); ``--strict`` also requires the pinned
versions (the image build).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

LIST_PATH = Path(__file__).with_name("packages.json")

_installed: dict[str, str | None] | None = None


def listed() -> dict[str, dict[str, Any]]:
    """The package list: name -> {"pin": version, "debian": package}."""
    return dict(json.loads(LIST_PATH.read_text(encoding="utf-8"))["packages"])


def _version(name: str) -> str | None:
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        # Importable but without distribution metadata (a vendored copy): present, version unknown.
        return "unknown"


def installed() -> dict[str, str | None]:
    """Each listed package's installed version (None: missing). Cached: it cannot change while
    the process runs."""
    global _installed
    if _installed is None:
        _installed = {name: _version(name) for name in listed()}
    return dict(_installed)


def problems(strict: bool) -> list[str]:
    """What is missing (and, when ``strict``, what differs from its pin), one line each."""
    found = installed()
    lines: list[str] = []
    for name, entry in listed().items():
        version = found[name]
        if version is None:
            lines.append(f"{name} is missing")
        elif strict and version != entry["pin"]:
            lines.append(f"{name} is {version}, the list pins {entry['pin']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a listed package is missing")
    parser.add_argument("--strict", action="store_true", help="also require the pinned versions")
    args = parser.parse_args(argv)
    if not (args.check or args.strict):
        print(json.dumps(installed(), sort_keys=True))
        return 0
    lines = problems(args.strict)
    if not lines:
        return 0
    missing = [listed()[name]["debian"] for name, version in installed().items() if version is None]
    print(f"coding-env: the Python at {sys.executable} does not have the package set user code is offered (coding_env_runtime/packages.json):", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    if missing:
        print(f"  install them (Debian/Ubuntu, as root): apt-get install {' '.join(missing)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
