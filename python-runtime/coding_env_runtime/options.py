"""The runtime's options (``RuntimeOpts``), its settings from the environment, and the checks
of its environment.

This is the only module that reads ``CODING_ENV_*`` variables (tests/test_settings_names.py
checks it): the others take the values from the functions below. The names are the
``<NAME>_ENV = "CODING_ENV_..."`` lines; infra/lib/executor.ts sets some of them on the executor
Lambda and infra/test/settings-names.test.ts reads these lines to check it sets only names read
here, so keep each on one line of that form.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from .zygote_client import RuntimeFailure

#: A cell's memory in MB when the event names none (infra sets it per deployment). @default 1024
WORKER_MEMORY_MB_ENV = "CODING_ENV_WORKER_MEMORY_MB"
#: The most memory in MB an event may ask for. @default the default's, at least 1024
WORKER_MAX_MEMORY_MB_ENV = "CODING_ENV_WORKER_MAX_MEMORY_MB"
#: ``RuntimeOpts.idle_workers`` of the Lambda entry point (the Dockerfile sets it).
IDLE_WORKERS_ENV = "CODING_ENV_IDLE_WORKERS"
#: ``RuntimeOpts.max_warm_workers`` of the Lambda entry point.
MAX_WARM_WORKERS_ENV = "CODING_ENV_MAX_WARM_WORKERS"
#: ``RuntimeOpts.preload`` of the Lambda entry point, comma-separated modules.
PRELOAD_ENV = "CODING_ENV_PRELOAD"
#: ``RuntimeOpts.max_warm_memory_bytes`` in MB, when the options leave it unset.
MAX_WARM_MEMORY_MB_ENV = "CODING_ENV_MAX_WARM_MEMORY_MB"
#: The parent's copy of warm episodes' states kept in S3, in MB. @default 256
STATE_CACHE_MB_ENV = "CODING_ENV_STATE_CACHE_MB"
#: A directory holding a prebuilt matplotlib font cache (the image's), read-only for user code.
FONT_CACHE_ENV = "CODING_ENV_MPL_FONT_CACHE"
#: The only access key id the local executor accepts; removed once read (never inherited).
LOCAL_ACCESS_KEY_ENV = "CODING_ENV_LOCAL_ACCESS_KEY_ID"


def worker_memory_mb() -> int:
    """A cell's default memory (``CODING_ENV_WORKER_MEMORY_MB``, else 1024)."""
    return int(os.environ.get(WORKER_MEMORY_MB_ENV, "1024"))


def worker_max_memory_mb() -> int:
    """The per-deployment ceiling (``CODING_ENV_WORKER_MAX_MEMORY_MB``, else the default's,
    at least 1024)."""
    return int(os.environ.get(WORKER_MAX_MEMORY_MB_ENV, str(max(worker_memory_mb(), 1024))))


def max_warm_memory_mb() -> int | None:
    """``CODING_ENV_MAX_WARM_MEMORY_MB``, or None when unset."""
    raw = os.environ.get(MAX_WARM_MEMORY_MB_ENV)
    return int(raw) if raw else None


def state_cache_bytes() -> int:
    """``CODING_ENV_STATE_CACHE_MB`` (default 256) in bytes."""
    return int(os.environ.get(STATE_CACHE_MB_ENV, "256")) * 1024 * 1024


def font_cache_dir() -> str | None:
    """The prebuilt font cache's directory (``CODING_ENV_MPL_FONT_CACHE``), or None."""
    return os.environ.get(FONT_CACHE_ENV) or None


def take_local_access_key_id() -> str | None:
    """Read and remove ``CODING_ENV_LOCAL_ACCESS_KEY_ID``, so nothing started later (the zygote,
    workers) inherits it."""
    return os.environ.pop(LOCAL_ACCESS_KEY_ENV, None) or None


def check_interpreter_reachable(python: str) -> None:
    """Root mode runs user code as unprivileged uids, which must be able to read the
    interpreter's standard library (an interpreter under /root, say pyenv's, is not)."""
    path = os.path.dirname(os.path.realpath(python))
    while True:
        if not os.stat(path).st_mode & 0o001:
            raise RuntimeFailure(
                f"the interpreter {python} is under {path}, which the sandbox's unprivileged users "
                "cannot enter; use a system-wide Python (e.g. /usr/bin/python3 with "
                "python3-cloudpickle) via CODING_ENV_PYTHON, or run the runtime as a non-root user"
            )
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def memory_total_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 4 * 2**30


@dataclass
class RuntimeOpts:
    """Options of the runtime; defaults suit one Lambda execution environment or a laptop."""

    #: Interpreter for the zygote (needs cloudpickle). @default the current interpreter
    python: str = sys.executable
    #: Spares kept ready for cold steps: each a freshly started zygote (its own string-hash
    #: seed) with one pre-forked worker, used by one episode. Each costs an interpreter's
    #: memory (~30 MB; ~130 MB with numpy and pandas preloaded) and its start's CPU. @default 2
    idle_workers: int = 2
    #: Zygotes kept for their episode after its worker went (evicted, crashed...): a cold
    #: restore of that episode here forks from it, with its hash seed (LRU beyond). @default 4
    kept_zygotes: int = 4
    #: With no spare ready, a new episode's worker is forked from a zygote its tenant already
    #: has (kept, or a live worker's): a few ms instead of an interpreter start on the step,
    #: but the episode shares that earlier episode's hash seed (never another tenant's). False:
    #: every episode waits for an interpreter of its own. @default True
    share_tenant_zygotes: bool = True
    #: Interpreters (zygotes: kept, or of live workers) one tenant's episodes may hold here.
    #: Each costs ~7 MB PSS, ~40 MB with numpy and pandas preloaded, for its zygote and the
    #: pages its worker no longer shares with any other episode's; a tenant's new episode
    #: beyond the bound forks from the tenant's most recently used zygote (sharing its hash
    #: seed, never another tenant's) instead of taking a spare. @default 8
    interpreters_per_tenant: int = 8
    #: Warm workers kept after a step (LRU beyond). @default 16
    max_warm_workers: int = 16
    #: Total memory of warm workers (LRU beyond); ``CODING_ENV_MAX_WARM_MEMORY_MB``.
    #: @default half of the machine's memory
    max_warm_memory_bytes: int | None = None
    #: A warm worker unused this long is discarded. @default 600
    warm_ttl_s: float = 600.0
    #: RLIMIT_FSIZE of user code. @default 64 MiB
    max_file_bytes: int = 64 * 1024 * 1024
    #: RLIMIT_NPROC: processes per worker uid (root mode) or per runtime uid. @default 64 / 256
    max_processes: int | None = None
    max_open_files: int = 256
    #: RLIMIT_CPU backstop over a worker's life; the deadline is the real per-step limit.
    max_cpu_seconds: int = 3600
    #: Largest snapshot a worker may return. @default 256 MiB
    max_snapshot_bytes: int = 256 * 1024 * 1024
    #: Where workers' private directories live. @default a new /tmp/coding-env-runtime-XXXX
    work_root: str | None = None
    #: Run user code as unprivileged uids (only possible when the runtime is root). @default True
    drop_privileges: bool = True
    #: Root mode: private mount namespace per worker (tmpfs on /tmp, /var/tmp, /dev/shm,
    #: /run/lock; /proc with hidepid). @default True
    private_mounts: bool = True
    #: Root mode: a network namespace per worker (its own loopback only). @default True
    private_network: bool = True
    #: Root mode: an IPC namespace per worker (SysV and POSIX IPC die with it). @default True
    private_ipc: bool = True
    #: Not root: a user namespace per worker with a network and an IPC namespace in it, so user
    #: code reaches nothing of the machine's network (the local stack's DynamoDB and executor
    #: included) where the kernel allows unprivileged user namespaces; where it does not, a
    #: warning and workers without them. Off in Lambda, which has none and no services to reach.
    #: The local executor (``local_server``) turns it on when it runs as non-root. @default False
    unprivileged_namespaces: bool = False
    #: Not root: after every step, remove what appeared in /tmp, /var/tmp, /dev/shm and /run/lock
    #: since start-up with this uid as owner (user code's leftovers, which would otherwise reach
    #: the next episode). Right in Lambda, where the environment is this runtime's alone; on a
    #: machine shared with the user's other programs it would remove their files too, so the
    #: local executor run by a user turns it off (leftovers of one episode in those directories
    #: can then reach another: run the local stack as root for private ones). @default True
    scrub_shared_dirs: bool = True
    #: Root mode: a freezer and a memory control group per worker. @default True
    use_cgroups: bool = True
    #: Size of each private tmpfs (capped by the worker's memory, which it counts toward).
    #: @default 256 MiB
    tmp_bytes: int = 256 * 1024 * 1024
    #: Extra modules the zygote imports so workers get them for free (e.g. ``("numpy",)``);
    #: they count toward every worker's address space (``memory_mb``). The reference's
    #: allow-list and common stdlib modules are always preloaded. @default ()
    preload: tuple[str, ...] = ()
    #: Private uids (root mode) come from blocks of ``uid_block_size`` starting at ``uid_base``;
    #: each runtime on the machine claims a free block with a lock file, so two runtimes (say,
    #: two local servers) never hand out the same uid. @default 200000, 1000 per block
    uid_base: int = 200_000
    uid_block_size: int = 1_000
    uid_blocks: int = 1_000


def opts_from_environment(defaults: RuntimeOpts | None = None) -> RuntimeOpts:
    """The Lambda entry point's options: ``defaults`` (``RuntimeOpts()``) with
    ``CODING_ENV_IDLE_WORKERS``, ``CODING_ENV_MAX_WARM_WORKERS`` and ``CODING_ENV_PRELOAD``
    (comma-separated modules for the zygote to import) applied."""
    opts = defaults if defaults is not None else RuntimeOpts()
    if os.environ.get(IDLE_WORKERS_ENV):
        opts.idle_workers = int(os.environ[IDLE_WORKERS_ENV])
    if os.environ.get(MAX_WARM_WORKERS_ENV):
        opts.max_warm_workers = int(os.environ[MAX_WARM_WORKERS_ENV])
    if os.environ.get(PRELOAD_ENV):
        opts.preload = module_list(os.environ[PRELOAD_ENV])
    return opts


def module_list(text: str) -> tuple[str, ...]:
    """Comma-separated module names (``CODING_ENV_PRELOAD``, the local server's ``--preload``)."""
    return tuple(m.strip() for m in text.split(",") if m.strip())
