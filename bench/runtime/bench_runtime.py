"""Benchmarks of the Python runtime (not timed tests): prints a table, writes JSON.

Run from the repository root with the runtime's interpreter:
    $(node -e 'import("./scripts/python.mjs").then(async m => console.log(await m.resolvePython()))') \
        bench/runtime/bench_runtime.py [--quick]
or simply `python3 bench/runtime/bench_runtime.py` with a Python that has cloudpickle.
Results go to bench/results/runtime-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python-runtime"))

import cloudpickle  # noqa: E402

from coding_env_runtime import RUNTIME_VERSION, cell, handler  # noqa: E402
from coding_env_runtime.policy import ImportPolicy  # noqa: E402
from coding_env_runtime.runtime import RuntimeOpts  # noqa: E402

import cold_start  # noqa: E402  (bench/runtime/, this script's directory)

COMPUTE = "sum(i*i for i in range(10**6))"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Driver:
    """Calls the Lambda handler in-process, as the Lambda runtime would."""

    def __init__(self, episode_id: str, policy: dict[str, Any] | None = None) -> None:
        self.episode_id = episode_id
        self.snapshot: str | None = None
        self.version = 0
        self.policy = policy or {"mode": "openenv", "additional_imports": []}

    def step(self, code: str, **limits: Any) -> tuple[dict[str, Any], float]:
        event = {
            "episode_id": self.episode_id,
            "state_version": self.version,
            "snapshot": self.snapshot,
            "code": code,
            "policy": self.policy,
            "limits": limits,
        }
        started = time.perf_counter()
        result = handler.handler(event, None)
        elapsed = (time.perf_counter() - started) * 1000
        if result["exit_code"] != 0 and not result["timed_out"]:
            raise RuntimeError(f"step failed: {result['stderr']}")
        self.snapshot, self.version = result["snapshot"], result["state_version"]
        return result, elapsed


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 3),
        "p99_ms": round(pct(values, 99), 3),
        "mean_ms": round(statistics.fmean(values), 3),
    }


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _memory_mib(pid: int) -> dict[str, float]:
    """RSS and PSS (shared pages split among their users) of one process, MiB."""
    found = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss"):
                found[key.lower() + "_mib"] = round(int(value.split()[0]) / 1024, 1)
    return found


def bench_spares(n: int) -> dict[str, Any]:
    """One interpreter per episode (its own hash seed): what a spare costs to start (CPU of the
    zygote's start and imports, wall until it answers) and to keep (memory of a zygote and its
    idle worker), and what a new episode's first step and a cold restore cost with a spare
    ready and with none (the step then starts an interpreter itself)."""
    from coding_env_runtime.contract import parse_event
    from coding_env_runtime.runtime import Runtime

    out: dict[str, Any] = {}
    for label, preload in (("no_preload", ()), ("preload_numpy_pandas", ("numpy", "pandas"))):
        runtime = Runtime(RuntimeOpts(idle_workers=1, preload=preload))
        try:
            runtime.pool.wait_ready(120)
            starts, cpu, memory = [], [], []
            for _ in range(max(n // 4, 3)):
                started = time.perf_counter()
                zygote = runtime.pool._new_zygote()
                zygote.wait_ready(120)
                worker = runtime.pool._spawn_from(zygote)
                starts.append((time.perf_counter() - started) * 1000)
                cpu.append(_cpu_seconds(zygote.pid) * 1000)
                memory.append({"zygote": _memory_mib(zygote.pid), "idle_worker": _memory_mib(worker.pid)})
                runtime._discard(worker, wait=True)
            first, restore, first_no_spare = [], [], []
            seed = runtime.run_step(parse_event({"episode_id": "bench-spare-seed", "code": "x = {'a', 'b'}"}))
            for i in range(max(n // 2, 3)):
                runtime.pool.wait_ready(120)  # a spare is ready, as between real requests
                started = time.perf_counter()
                runtime.run_step(parse_event({"episode_id": f"bench-spare-new-{i}", "code": "print(1)"}))
                first.append((time.perf_counter() - started) * 1000)
                runtime.pool.wait_ready(120)
                started = time.perf_counter()
                runtime.run_step(parse_event({"episode_id": f"bench-spare-restore-{i}", "code": "len(x)",
                                              "snapshot": seed["snapshot"], "state_version": 1}))
                restore.append((time.perf_counter() - started) * 1000)
            # A restore of an episode whose worker went (evicted) but whose zygote is kept.
            kept_restore = []
            for i in range(max(n // 4, 3)):
                episode_id = f"bench-kept-{i}"
                done = runtime.run_step(parse_event({"episode_id": episode_id, "code": "x = 1"}))
                runtime.pool.drop_warm(lambda key, e=episode_id: key[1] != e)  # evicted, zygote kept
                for _ in range(1000):  # kept once its worker is reaped (in the background)
                    if ("default", episode_id, "") in runtime.pool._kept:
                        break
                    time.sleep(0.01)
                started = time.perf_counter()
                runtime.run_step(parse_event({"episode_id": episode_id, "code": "x", "snapshot": done["snapshot"],
                                              "state_version": 1}))
                kept_restore.append((time.perf_counter() - started) * 1000)
        finally:
            runtime.close()
        empty = Runtime(RuntimeOpts(idle_workers=0, preload=preload))
        try:
            for i in range(3):
                started = time.perf_counter()
                empty.run_step(parse_event({"episode_id": f"bench-no-spare-{i}", "code": "print(1)"}))
                first_no_spare.append((time.perf_counter() - started) * 1000)
        finally:
            empty.close()
        out[label] = {
            "spare_start_wall": summary(starts),
            "spare_start_cpu_of_zygote": summary(cpu),
            "spare_memory_mib": memory[-1],
            "new_episode_first_step_spare_ready": summary(first),
            "cold_restore_spare_ready": summary(restore),
            "cold_restore_kept_zygote": summary(kept_restore),
            "new_episode_first_step_no_spare": summary(first_no_spare),
        }
    return out


def bench_spares_lambda(n: int) -> dict[str, Any]:
    """The same through the Lambda-mode harness (one environment, its runtime not root): wall
    of a new episode's first step and of a cold restore with the spare ready (the environment
    thawed only for invocations, so a spare's start overlaps the next steps), and CPU and
    memory of the environment's zygotes, read from outside."""
    from harness.client import HarnessProcess

    out: dict[str, Any] = {}
    with HarnessProcess(max_environments=1, python=sys.executable) as harness:
        def invoke(event: dict[str, Any]) -> tuple[dict[str, Any], float]:
            started = time.perf_counter()
            body = harness.step({"policy": {"mode": "full"}, **event})
            return body, (time.perf_counter() - started) * 1000

        seed, _ = invoke({"episode_id": "seed", "code": "x = {'a', 'b'}\nimport os\nos.getuid()"})
        uid = int(seed["stdout"])
        # The environment is frozen between invocations: a spare is built only while one runs.
        # Each cold step (a new episode's first step, or a restore) is followed by one warm step
        # of the same episode, during which the spare it consumed is rebuilt: "after_short_step"
        # a print(1), "after_1s_step" a 1.5 s sleep. (Steps alternating between episodes are
        # all cold in Lambda mode: one episode at a time.)
        scenarios: dict[str, dict[str, Any]] = {}
        for scenario, between in (("after_short_step", "print(1)"), ("after_1s_step", "import time\ntime.sleep(1.5)")):
            timings: dict[str, list[float]] = {"new_episode_first_step": [], "cold_restore": []}
            for i in range(max(n // 2, 3)):
                for kind in timings:
                    event: dict[str, Any] = {"episode_id": f"{scenario}-{kind}-{i}", "code": "print(1)"}
                    if kind == "cold_restore":
                        event.update(code="len(x)", snapshot=seed["snapshot"], state_version=seed["state_version"])
                    body, wall = invoke(event)
                    timings[kind].append(wall)
                    invoke({"episode_id": event["episode_id"], "code": between, "snapshot": body["snapshot"],
                            "state_version": body["state_version"]})
            scenarios[scenario] = {kind: summary(values) for kind, values in timings.items()}
        # Two episodes alternating (every step cold: one episode at a time): after their first
        # steps each restores from its kept zygote.
        last: dict[str, dict[str, Any]] = {}
        alternating = []
        for i in range(max(n // 2, 3) * 2):
            episode_id = "alt-a" if i % 2 == 0 else "alt-b"
            event: dict[str, Any] = {"episode_id": episode_id, "code": "print(1)"}
            if episode_id in last:
                event.update(snapshot=last[episode_id]["snapshot"], state_version=last[episode_id]["state_version"])
            last[episode_id], wall = invoke(event)
            if i >= 2:
                alternating.append(wall)
        scenarios["alternating_two_episodes_cold_restore_kept_zygote"] = summary(alternating)
        zygotes = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.stat(f"/proc/{name}").st_uid != uid:
                    continue
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if len(argv) > 2 and argv[1:3] == [b"-I", b"-"]:
                zygotes.append({"cpu_ms": round(_cpu_seconds(int(name)) * 1000, 1), **_memory_mib(int(name))})
        out = {**scenarios, "zygotes_now": zygotes}
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--results-dir", default=str(REPO / "bench" / "results"))
    parser.add_argument("--only", choices=("spares", "spares-lambda", "rl-loop"),
                        help="run one section (spares: one interpreter per episode, root and Lambda mode; "
                             "rl-loop: short episodes in Lambda mode and 64 warm episodes' PSS, rl_loop.py)")
    args = parser.parse_args()
    n_warm = 200 if args.quick else 1000
    n_cold = 20 if args.quick else 60

    if args.only == "rl-loop":
        import subprocess

        command = [sys.executable, str(Path(__file__).with_name("rl_loop.py")), *(["--quick"] if args.quick else [])]
        return subprocess.call(command)

    if args.only in ("spares", "spares-lambda"):
        spares: dict[str, Any] = {"load_average_at_start": os.getloadavg(), "privileged": os.geteuid() == 0}
        if args.only == "spares":
            spares["root_mode"] = bench_spares(n_cold)
        if os.geteuid() == 0:
            spares["lambda_mode"] = bench_spares_lambda(n_cold)
        spares["load_average_at_end"] = os.getloadavg()
        out_dir = Path(args.results_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        out_file = out_dir / f"runtime-spares-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
        out_file.write_text(json.dumps(spares, indent=2) + "\n")
        print(json.dumps(spares, indent=2))
        print(f"written: {out_file}")
        return 0

    # Start-up, as a Lambda cold start sees it: runtime + zygote (+ preload) + first step.
    from coding_env_runtime.contract import parse_event
    from coding_env_runtime.runtime import Runtime

    startup: dict[str, float] = {}
    for label, preload in (("no_preload", ()), ("preload_numpy_pandas", ("numpy", "pandas"))):
        started = time.perf_counter()
        fresh = Runtime(RuntimeOpts(idle_workers=1, preload=preload))
        fresh.run_step(parse_event({"episode_id": "bench-start", "code": "1"}))
        startup[label] = round((time.perf_counter() - started) * 1000, 1)
        fresh.close()

    runtime = handler.get_runtime(RuntimeOpts(idle_workers=2))
    time.sleep(0.5)
    results: dict[str, Any] = {
        "runtime_version": RUNTIME_VERSION,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "privileged": runtime.privileged,
        "at": datetime.now(timezone.utc).isoformat(),
        "load_average_at_start": os.getloadavg(),
    }

    results["startup_to_first_step_ms"] = startup
    # A cold executor start in fresh interpreters, as the image configures it (cold_start.py):
    # what config.ts's COLD_START_ALLOWANCE_S must cover besides Lambda's own init.
    results["cold_start"] = cold_start.measure(3 if args.quick else 8)

    # Warm trivial step: print(1) on the episode's warm worker, small state.
    ep = Driver("bench-warm")
    ep.step("x = 1\ny = 'small'")
    warm_internal, warm_wall = [], []
    for _ in range(n_warm):
        res, wall = ep.step("print(1)")
        assert res["warm"], "expected the warm worker"
        warm_internal.append(res["duration_ms"])
        warm_wall.append(wall)
    results["warm_step_print1"] = {"handler_wall": summary(warm_wall), "runtime_internal": summary(warm_internal)}

    # Cold step: a pre-forked idle worker restores a small snapshot (another episode id).
    seed = Driver("bench-seed")
    seed.step("x = 1\ndef f(v):\n    return v + x\nclass C:\n    pass\nc = C()")
    cold = []
    for i in range(n_cold):
        d = Driver(f"bench-cold-{i}")
        d.snapshot, d.version = seed.snapshot, seed.version
        runtime.pool.wait_ready(120)  # a spare is ready, as between real requests
        res, wall = d.step("f(1)")
        assert not res["warm"]
        cold.append(wall)
    results["cold_step_restore_small"] = summary(cold)

    # Worker creation: one fork from a (started) zygote + sandbox setup + ready handshake.
    forks = []
    zygote = runtime.pool._new_zygote()
    zygote.wait_ready(120)
    for _ in range(n_cold):
        started = time.perf_counter()
        worker = runtime.pool._spawn_from(zygote)
        forks.append((time.perf_counter() - started) * 1000)
        runtime.pool.discard(worker, wait=True, keep_zygote=True)
    runtime.pool._drop_zygote(zygote)
    results["worker_fork"] = summary(forks)

    # Isolation costs: freezing a worker between steps and thawing it for the next (the
    # runtime does both on every warm step), and worker start-up with and without the private
    # namespaces (mount, network, IPC) and control groups (freezer, memory) of root mode.
    from coding_env_runtime.handles import Freezer

    isolation: dict[str, Any] = {"cgroups": runtime.pool.cgroups is not None}
    worker = runtime._spawn()
    freeze, thaw = [], []
    for _ in range(n_warm):
        started = time.perf_counter()
        Freezer.freeze(worker)
        frozen = time.perf_counter()
        Freezer.thaw(worker)
        freeze.append((frozen - started) * 1000)
        thaw.append((time.perf_counter() - frozen) * 1000)
    runtime._discard(worker, wait=True)
    isolation["freeze_until_frozen"] = summary(freeze)
    isolation["thaw"] = summary(thaw)
    if runtime.privileged:
        variants = {
            "namespaces_and_cgroups": {},
            "namespaces_no_cgroups": {"use_cgroups": False},
            "mount_namespace_only": {"use_cgroups": False, "private_network": False, "private_ipc": False},
        }
        for label, extra in variants.items():
            variant = Runtime(RuntimeOpts(idle_workers=0, **extra))
            starts = []
            factory = variant.pool._new_zygote()
            factory.wait_ready(120)
            for _ in range(n_cold):
                started = time.perf_counter()
                spawned = variant.pool._spawn_from(factory)
                starts.append((time.perf_counter() - started) * 1000)
                variant.pool.discard(spawned, wait=True, keep_zygote=True)
            variant.close()
            isolation[f"worker_start_{label}"] = summary(starts)
    results["isolation"] = isolation

    # Compute-bound code: runtime step vs plain exec in this same Python, interleaved; the
    # minimum of each is the least disturbed by other load on the machine.
    plain, in_runtime = [], []
    comp = Driver("bench-compute")
    comp.step("0")
    for _ in range(7):
        started = time.perf_counter()
        exec(compile(COMPUTE, "<plain>", "exec"), {})
        plain.append((time.perf_counter() - started) * 1000)
        in_runtime.append(comp.step(COMPUTE)[0]["duration_ms"])
    results["compute_sum_squares_1e6"] = {
        "plain_exec_min_ms": round(min(plain), 2),
        "runtime_step_min_ms": round(min(in_runtime), 2),
        "plain_exec_p50_ms": round(statistics.median(plain), 2),
        "runtime_step_p50_ms": round(statistics.median(in_runtime), 2),
        "ratio_min": round(min(in_runtime) / min(plain), 3),
    }

    # 1 MB of state: restore + save (the worker's own code, measured in-process), and end to end.
    policy = ImportPolicy()
    shapes = {
        "many_small_objects": "data = [{'id': i, 'name': f'item{i}', 'score': i * 0.5} for i in range(30000)]",
        "one_bytes_blob": "import random\nrandom.seed(1)\ndata = random.randbytes(1024 * 1024)",
        "list_of_floats": "import random\nrandom.seed(2)\ndata = [random.random() for _ in range(100000)]",
    }
    snap_results = {}
    for name, code in shapes.items():
        ns = cell.new_namespace(policy)
        exec(code, ns)
        raw_size = len(cloudpickle.dumps(ns["data"]))
        saved = cell.save_namespace(ns)
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            restored = cell.restore_namespace(saved.payload, policy)
            cell.save_namespace(restored)
            timings.append((time.perf_counter() - started) * 1000)
        d = Driver(f"bench-snap-{name}", {"mode": "openenv", "additional_imports": []})
        d.step(code)
        e2e = []
        for i in range(10):
            cold_d = Driver(f"bench-snap-{name}-{i}")
            cold_d.snapshot, cold_d.version = d.snapshot, d.version
            runtime.pool.wait_ready(120)
            e2e.append(cold_d.step("len(data)")[1])
        snap_results[name] = {
            "pickled_bytes": raw_size,
            "compressed_bytes": len(saved.payload),
            "restore_plus_save": summary(timings),
            "cold_step_with_this_snapshot": summary(e2e),
        }
    results["snapshot_1mb"] = snap_results

    # Timeout enforcement: how far past the limit the step returns.
    overshoot = []
    to = Driver("bench-timeout")
    for _ in range(5):
        res, wall = to.step("while True:\n    pass", timeout_ms=500)
        assert res["timed_out"]
        overshoot.append(wall - 500)
    results["timeout_overshoot_ms"] = summary(overshoot)

    handler.shutdown()

    out_dir = Path(args.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    mode = "root" if runtime.privileged else "unprivileged"
    out_file = out_dir / f"runtime-{mode}-{stamp}.json"
    out_file.write_text(json.dumps(results, indent=2) + "\n")

    rows = [
        ("warm step print(1), handler wall", results["warm_step_print1"]["handler_wall"]),
        ("warm step print(1), runtime internal", results["warm_step_print1"]["runtime_internal"]),
        ("cold step (idle worker + restore)", results["cold_step_restore_small"]),
        ("worker fork + setup", results["worker_fork"]),
        ("timeout overshoot (500 ms limit)", results["timeout_overshoot_ms"]),
        ("freeze a worker (until frozen)", results["isolation"]["freeze_until_frozen"]),
        ("thaw a worker", results["isolation"]["thaw"]),
    ]
    for label, item in results["isolation"].items():
        if label.startswith("worker_start_"):
            rows.append((label.replace("_", " "), item))
    for name, item in snap_results.items():
        rows.append((f"1MB state {name}: restore+save", item["restore_plus_save"]))
        rows.append((f"1MB state {name}: cold step", item["cold_step_with_this_snapshot"]))
    print(f"{'measure':48} {'p50 ms':>9} {'p99 ms':>9} {'n':>6}")
    for name, item in rows:
        print(f"{name:48} {item['p50_ms']:9.3f} {item['p99_ms']:9.3f} {item['n']:6d}")
    c = results["compute_sum_squares_1e6"]
    print(
        f"{COMPUTE}: plain exec min {c['plain_exec_min_ms']} ms, runtime step min "
        f"{c['runtime_step_min_ms']} ms, ratio {c['ratio_min']}"
    )
    print(f"start-up to first step result: {startup}")
    cold_start.print_table(results["cold_start"])
    for name, item in snap_results.items():
        print(f"  {name}: pickled {item['pickled_bytes']} B, compressed {item['compressed_bytes']} B")
    print(f"written: {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
