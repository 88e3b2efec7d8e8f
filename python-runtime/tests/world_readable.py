"""A copy of the runtime package and its tests that an unprivileged user can import.

The checkout may sit where ``nobody`` cannot enter (CI clones under /root); tests that start the
runtime as ``nobody`` import it from a copy under /tmp instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def readable_by_others(path: str) -> bool:
    """Every directory from / down to ``path`` can be entered by another user."""
    path = os.path.realpath(path)
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _other_bytecode(directory: str, names: list[str]) -> list[str]:
    """copytree's filter: in a ``__pycache__``, every file but this interpreter's bytecode."""
    if os.path.basename(directory) != "__pycache__":
        return []
    return [n for n in names if not n.endswith(f".{sys.implementation.cache_tag}.pyc")]


def package_copy() -> str:
    """A new world-readable directory holding ``coding_env_runtime`` and ``tests`` (the caller
    removes it), with the checkout's bytecode: ``nobody`` cannot write any into the copy, so
    without it the runtime and every zygote it starts compiled their modules at each start. The
    interpreter uses a module's bytecode only while it matches the source (copies keep their
    times), else compiles the source as before."""
    copy = tempfile.mkdtemp(prefix="ce-runtime-copy-")
    os.chmod(copy, 0o755)
    for name in ("coding_env_runtime", "tests"):
        shutil.copytree(PACKAGE_ROOT / name, Path(copy) / name, ignore=_other_bytecode)
    for root, dirs, files in os.walk(copy):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    return copy
