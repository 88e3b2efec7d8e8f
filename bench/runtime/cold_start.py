"""What a cold executor start costs on this machine, the part of it the runtime controls.

An executor Lambda starts cold in this order (docs/DEPLOY.md, "Timeouts: what is counted where"):
Lambda's own init (the container image's file system, the Python runtime interface client), then
the function's init (``import coding_env_runtime.handler``: in Lambda it starts the zygote, which
imports the runtime and the preloaded numpy and pandas, and waits for the idle worker), then the
first invocation (the step on that worker). Each round here runs the last three in a fresh
interpreter, as the image configures them (``CODING_ENV_PRELOAD=numpy,pandas``, one idle worker):

- ``interpreter_ms``: from spawning ``python3 -I`` to its first line;
- ``function_init_ms``: ``import coding_env_runtime.handler`` with ``AWS_LAMBDA_RUNTIME_API`` set,
  so it starts the zygote and its idle worker as in Lambda's init phase;
- ``first_step_ms``: ``handler.handler()`` of a new episode's ``print(1)``;
- ``total_ms``: spawn to the first step's result;
- ``cpu_ms``: CPU time of the whole process tree (interpreter, zygote, worker; shutdown included):
  the figure that does not grow with this machine's load (on an uncontended vCPU, wall ~ CPU).

Lambda's own init is not here (it cannot run on this machine): docs/DEPLOY.md says how it adds up.
The page cache is warm (a round re-reads files the previous one read); in a new environment the
image's files are read from Lambda's cache or S3, which is slower.

Run: ``python3 bench/runtime/cold_start.py [--rounds N]`` (also a line of ``npm run bench -- runtime``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# Runs in the fresh interpreter: the function's init, then its first invocation.
_CHILD = r"""
import json, sys, time
started = time.time()
sys.path.insert(0, sys.argv[1])
t0 = time.perf_counter()
from coding_env_runtime import handler
t1 = time.perf_counter()

class Context:
    tenant_id = "bench-cold"
    def get_remaining_time_in_millis(self):
        return 26000

reply = handler.handler({"episode_id": "bench-cold", "code": "print(1)"}, Context())
t2 = time.perf_counter()
print(json.dumps({
    "started_at": started,
    "function_init_ms": (t1 - t0) * 1000,
    "first_step_ms": (t2 - t1) * 1000,
    "stdout": reply.get("stdout"),
}), flush=True)
handler.shutdown()
"""

#: The image's settings (python-runtime/Dockerfile), and a stand-in for Lambda's runtime API so
#: the handler module starts its runtime during import, as in Lambda's init phase.
IMAGE_ENV = {
    "CODING_ENV_IDLE_WORKERS": "1",
    "CODING_ENV_MAX_WARM_WORKERS": "4",
    "CODING_ENV_PRELOAD": "numpy,pandas",
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9",
}


def one_start(python: str, preload: str) -> dict[str, float]:
    """One cold start in a fresh interpreter; milliseconds of each part."""
    env = {**os.environ, **IMAGE_ENV, "CODING_ENV_PRELOAD": preload}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawned = time.time()
    out = subprocess.run(
        [python, "-I", "-c", _CHILD, str(REPO / "python-runtime")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(text for text in reversed(out.stdout.splitlines()) if text.startswith("{"))
    child = json.loads(line)
    if (child.get("stdout") or "").strip() != "1":
        raise RuntimeError(f"the first step did not run: {line}")
    interpreter_ms = (child["started_at"] - spawned) * 1000
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "interpreter_ms": interpreter_ms,
        "function_init_ms": child["function_init_ms"],
        "first_step_ms": child["first_step_ms"],
        "total_ms": interpreter_ms + child["function_init_ms"] + child["first_step_ms"],
        "cpu_ms": cpu_s * 1000,
    }


def measure(rounds: int, python: str = sys.executable) -> dict[str, Any]:
    """Cold starts with the image's preload and without any, interleaved; p50 and max of each part."""
    samples: dict[str, list[dict[str, float]]] = {"preload_numpy_pandas": [], "no_preload": []}
    for _ in range(rounds):
        samples["preload_numpy_pandas"].append(one_start(python, "numpy,pandas"))
        samples["no_preload"].append(one_start(python, ""))
    result: dict[str, Any] = {"rounds": rounds, "load_average": os.getloadavg(), "python": python}
    for name, runs in samples.items():
        result[name] = {
            part: {
                "p50_ms": round(statistics.median(r[part] for r in runs), 1),
                "max_ms": round(max(r[part] for r in runs), 1),
            }
            for part in runs[0]
        }
    return result


def print_table(result: dict[str, Any]) -> None:
    print(f"cold executor start ({result['rounds']} rounds, load {result['load_average'][0]:.1f}):")
    print(f"  {'':22} {'interpreter':>12} {'function init':>14} {'first step':>11} {'total':>10} {'CPU':>10}"
          "  (p50/max ms)")
    for name in ("preload_numpy_pandas", "no_preload"):
        parts = result[name]
        cells = [f"{parts[p]['p50_ms']:.0f}/{parts[p]['max_ms']:.0f}" for p in
                 ("interpreter_ms", "function_init_ms", "first_step_ms", "total_ms", "cpu_ms")]
        print(f"  {name:22} {cells[0]:>12} {cells[1]:>14} {cells[2]:>11} {cells[3]:>10} {cells[4]:>10}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to start cold")
    args = parser.parse_args()
    result = measure(args.rounds, args.python)
    print_table(result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
