"""An RL training loop's view of the runtime (not a timed test): short episodes in Lambda mode
with numpy and pandas preloaded, and the memory of many warm episodes in root mode.

    /usr/bin/python3 bench/runtime/rl_loop.py [--quick] [--runtime-root DIR] [--only loop|memory]

``--runtime-root`` is the ``python-runtime`` directory to measure (default: this checkout's), so
two versions can be compared interleaved, e.g. one in a git worktree of an older commit:
    git worktree add /tmp/before <commit>
    for i in 1 2; do for root in /tmp/before/python-runtime python-runtime; do
        /usr/bin/python3 bench/runtime/rl_loop.py --quick --runtime-root $root; done; done

- loop: one Lambda environment (the harness: frozen between invocations, so a spare is only
  built while an invocation runs), episodes of a reset-like first step plus ``steps - 1`` more
  steps of ~10 ms each, back to back: first-step wall p50/p99, all steps per second, and the
  runtime's own counters where it has them (spares started on the step path, forks from a
  zygote of the tenant).
- memory: a root-mode runtime with ``--warm`` warm episodes (each ran one pandas step), PSS of
  the runtime process and of every process under it (zygotes and workers apart), once with
  episodes arriving slowly (a spare ready for each, so each has an interpreter of its own where
  the runtime does that) and once in a burst (back to back).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PANDAS_STEP = "import pandas as pd\ndf = pd.DataFrame({'a': range(1000)})\nint(df.a.sum())"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(statistics.median(values), 2), "p99": round(pct(values, 99), 2),
            "max": round(max(values), 2)}


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def bench_loop(episodes: int, steps: int, preload: str) -> dict[str, Any]:
    from harness.client import HarnessProcess

    args = ("--preload", preload) if preload else ()
    first, all_walls = [], []
    with HarnessProcess(*args, max_environments=1, python=sys.executable) as harness:
        harness.step({"episode_id": "warmup", "code": "1", "policy": {"mode": "full"}})
        started_loop = time.perf_counter()
        for i in range(episodes):
            previous: dict[str, Any] | None = None
            for j in range(steps):
                event: dict[str, Any] = {"episode_id": f"rl-{os.getpid()}-{i}", "policy": {"mode": "full"},
                                         "code": "import time\ntime.sleep(0.01)\nx = 1" if j else "x = 0"}
                if previous is not None:
                    event.update(snapshot=previous["snapshot"], state_version=previous["state_version"])
                started = time.perf_counter()
                previous = harness.step(event)
                wall = (time.perf_counter() - started) * 1000
                all_walls.append(wall)
                if j == 0:
                    first.append(wall)
                if previous.get("exit_code") != 0:
                    raise SystemExit(f"step failed: {previous}")
        elapsed = time.perf_counter() - started_loop
    return {
        "episodes": episodes, "steps_per_episode": steps, "preload": preload,
        "first_step_ms": summary(first), "later_steps_ms": summary([w for k, w in enumerate(all_walls) if k % steps]),
        "steps_per_s": round(len(all_walls) / elapsed, 2),
    }


def bench_memory(warm: int, preload: tuple[str, ...], arrivals: tuple[str, ...]) -> dict[str, Any]:
    from coding_env_runtime.contract import parse_event
    from coding_env_runtime.runtime import Runtime, RuntimeOpts

    out: dict[str, Any] = {}
    for arrival in arrivals:
        runtime = Runtime(RuntimeOpts(preload=preload, max_warm_workers=warm))
        try:
            for i in range(warm):
                if arrival == "spaced" and hasattr(runtime.pool, "wait_ready"):
                    runtime.pool.wait_ready(120)
                result = runtime.run_step(parse_event({"episode_id": f"mem-{arrival}-{i}", "code": PANDAS_STEP,
                                                       "policy": {"mode": "full"}}))
                if result["exit_code"] != 0:
                    raise SystemExit(f"step failed: {result}")
            time.sleep(2)  # discards and refills settle
            zygote_pids = {z.pid for z in runtime.pool.zygotes()}
            worker_pids = set(runtime.pool.live)
            processes = _descendants(os.getpid())
            pss = {pid: _pss_kib(pid) for pid in processes}
            out[arrival] = {
                "warm_workers": len(runtime.pool.warm),
                "zygotes": len([p for p in processes if p in zygote_pids]),
                "pss_total_mib": round((sum(pss.values()) + _pss_kib(os.getpid())) / 1024, 1),
                "pss_runtime_process_mib": round(_pss_kib(os.getpid()) / 1024, 1),
                "pss_zygotes_mib": round(sum(v for p, v in pss.items() if p in zygote_pids) / 1024, 1),
                "pss_workers_mib": round(sum(v for p, v in pss.items() if p in worker_pids) / 1024, 1),
                "pss_other_mib": round(sum(v for p, v in pss.items() if p not in zygote_pids | worker_pids) / 1024, 1),
                "tenant_zygote_forks": getattr(runtime.pool, "tenant_zygote_forks", None),
            }
        finally:
            runtime.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runtime-root", default=str(REPO / "python-runtime"))
    parser.add_argument("--only", choices=("loop", "memory"))
    parser.add_argument("--warm", type=int, default=64)
    parser.add_argument("--preload", default="numpy,pandas")
    parser.add_argument("--arrival", choices=("spaced", "burst", "both"), default="both")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.runtime_root))
    out: dict[str, Any] = {"runtime_root": args.runtime_root, "load_average_at_start": os.getloadavg()}
    if args.only in (None, "loop"):
        out["rl_loop_lambda"] = bench_loop(10 if args.quick else 30, 6, args.preload)
        out["load_average_after_loop"] = os.getloadavg()
    if args.only in (None, "memory"):
        arrivals = ("spaced", "burst") if args.arrival == "both" else (args.arrival,)
        out["memory_root"] = bench_memory(args.warm, tuple(m for m in args.preload.split(",") if m), arrivals)
    out["load_average_at_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
