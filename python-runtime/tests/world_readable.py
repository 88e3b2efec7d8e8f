"""A copy of the runtime package and its tests that an unprivileged user can import.

The checkout may sit where ``nobody`` cannot enter (CI clones under /root); tests that start the
runtime as ``nobody`` import it from a copy under /tmp instead.
"""

from __future__ import annotations

import os
import shutil
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


def package_copy() -> str:
    """A new world-readable directory holding ``coding_env_runtime`` and ``tests`` (the caller
    removes it)."""
    copy = tempfile.mkdtemp(prefix="ce-runtime-copy-")
    os.chmod(copy, 0o755)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("coding_env_runtime", "tests"):
        shutil.copytree(PACKAGE_ROOT / name, Path(copy) / name, ignore=ignore)
    for root, dirs, files in os.walk(copy):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    return copy
