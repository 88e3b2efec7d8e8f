"""matplotlib's font cache, built once instead of in every worker.

matplotlib keeps the list of the system's fonts in ``$MPLCONFIGDIR/fontlist-v<N>.json`` and,
when the file is missing, scans every font of the system to build it (a second or more) the
first time a process imports it. A worker's MPLCONFIGDIR is inside its working directory, which
is wiped after every step, so every worker that imported matplotlib paid that scan. Now:

- the cache is built once, where user code cannot write: at image build (the Dockerfile sets
  ``CODING_ENV_MPL_FONT_CACHE``; the Lambda-mode harness stages one the same way), else, in
  root mode, by the runtime at start-up into a root-owned directory (kept across restarts);
- a zygote reads its bytes once at start (before it leaves the host's mounts), and each worker
  writes them into its own MPLCONFIGDIR right before matplotlib is first imported (an import
  hook: nothing is written for a step that does not use matplotlib), so matplotlib finds the
  cache and scans nothing. A non-root runtime without a prebuilt cache works as before.

    python3 -m coding_env_runtime.font_cache <directory>   # build one (image build, harness)
"""

from __future__ import annotations

import os
import sys
from typing import Any

# hashlib, shutil, subprocess and tempfile are imported where the runtime parent builds the
# cache, not here: every zygote imports this module, and their imports were a tenth of its
# start's CPU.

_ROOT_CACHE_PARENT = "/var/cache/coding-env"
_PREFIX, _SUFFIX = "fontlist-v", ".json"
_MAX_FILE_BYTES = 8 * 1024 * 1024


def default_dir(python: str) -> str | None:
    """Where this runtime's cache is (or goes): the prebuilt one if configured, else (root) one
    per interpreter under /var/cache, else None (each worker builds its own, as before)."""
    # Imported here, not at the top: the zygote preloads this module, and needs none of options'.
    from .options import font_cache_dir

    configured = font_cache_dir()
    if configured:
        return configured
    if os.geteuid() != 0:
        return None  # a directory of our uid would be user code's to rewrite in Lambda mode
    import hashlib

    key = hashlib.sha256(os.path.realpath(python).encode()).hexdigest()[:12]
    return os.path.join(_ROOT_CACHE_PARENT, f"matplotlib-{key}")


def present(directory: str) -> bool:
    try:
        return any(n.startswith(_PREFIX) and n.endswith(_SUFFIX) for n in os.listdir(directory))
    except OSError:
        return False


def build(python: str, directory: str, *, timeout_s: float = 600.0) -> bool:
    """Build the cache into ``directory`` with ``python``'s matplotlib, unless it is there.
    Files appear whole (renamed into place) and read-only for others. False if matplotlib is
    not installed or the build failed."""
    if present(directory):
        return True
    import shutil
    import subprocess
    import tempfile

    os.makedirs(directory, mode=0o755, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".build-", dir=directory)
    try:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": scratch,
               "MPLCONFIGDIR": scratch, "MPLBACKEND": "Agg"}
        done = subprocess.run(
            [python, "-I", "-c", "import os; os.nice(10); import matplotlib.font_manager"],
            env=env, cwd=scratch, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, timeout=timeout_s, check=False,
        )
        built = [n for n in os.listdir(scratch) if n.startswith(_PREFIX) and n.endswith(_SUFFIX)]
        if done.returncode != 0 or not built:
            return False
        for name in built:
            os.chmod(os.path.join(scratch, name), 0o644)
            os.replace(os.path.join(scratch, name), os.path.join(directory, name))
        os.chmod(directory, 0o755)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def read(directory: str | None) -> dict[str, bytes]:
    """The cache's files (name -> bytes), empty when there is none."""
    files: dict[str, bytes] = {}
    if not directory:
        return files
    try:
        names = os.listdir(directory)
    except OSError:
        return files
    for name in names:
        if name.startswith(_PREFIX) and name.endswith(_SUFFIX) and "/" not in name:
            try:
                with open(os.path.join(directory, name), "rb") as fh:
                    data = fh.read(_MAX_FILE_BYTES + 1)
            except OSError:
                continue
            if len(data) <= _MAX_FILE_BYTES:
                files[name] = data
    return files


class _WriteBeforeMatplotlib:
    """A meta path finder that finds nothing: on the import of ``matplotlib`` it first puts the
    cache files into ``$MPLCONFIGDIR`` (when missing), then lets the normal finders import it."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self._files = files

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name != "matplotlib":
            return None
        directory = os.environ.get("MPLCONFIGDIR")
        if not directory:
            return None
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            for file_name, data in self._files.items():
                target_path = os.path.join(directory, file_name)
                if not os.path.exists(target_path):
                    with open(target_path, "wb") as fh:
                        fh.write(data)
        except OSError:
            pass  # matplotlib builds its own, as without a cache
        return None

    def invalidate_caches(self) -> None:
        return None


def install_writer(files: dict[str, bytes]) -> None:
    """In a worker (before user code): write the cache before matplotlib's first import."""
    if files:
        sys.meta_path.insert(0, _WriteBeforeMatplotlib(files))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m coding_env_runtime.font_cache <directory>")
    sys.exit(0 if build(sys.executable, sys.argv[1]) else 1)
