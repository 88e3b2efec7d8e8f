"""The runtime parent: the step protocol over the worker pool (``pool.py``).

A step takes the warm worker that already holds exactly the episode's input state (same
``(tenant_id, episode_id, incarnation, state_version)`` *and* the identical snapshot string it
produced), else a pre-forked idle worker that restores the snapshot. The parent thaws the warm
worker, enforces the deadline with SIGKILL, freezes the worker again as soon as its reply is
read, refuses anything beyond that one reply, reads the capped output files itself, and never
unpickles anything.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import CONTRACT_VERSION, RUNTIME_VERSION, snapshot
from .display import clean_bundles
from .contract import DiscardRequest, StepRequest
from .handles import Freezer, WarmKey, Worker, freeze_after_reply, process_traits, unexpected_bytes
from .options import RuntimeOpts
from .options import check_interpreter_reachable as _check_interpreter_reachable
from .pool import MAX_REPLY_HEADER, WorkerPool
from .wire import FrameTooLarge, PeerClosed, WireError, WireTimeout, recv_frame, send_frame
from .zygote_client import RuntimeFailure

__all__ = [
    "Runtime",
    "RuntimeFailure",
    "RuntimeOpts",
    "_check_interpreter_reachable",
    "clamp_exit_code",
    "describe_exit",
]


#: The error codes a worker may report about its own step; every other one is the runtime's.
WORKER_ERROR_CODES = frozenset({"syntax_error", "out_of_memory", "snapshot_restore_failed", "too_many_open_files"})


def describe_exit(status: int | None) -> tuple[int, str]:
    """(exit_code, sentence) for a worker that died during a step."""
    if status is None:
        return 1, "The Python process died during this step"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        what = {
            "SIGSEGV": " (segmentation fault)",
            "SIGKILL": " (killed: the memory limit or another process)",
            "SIGABRT": " (aborted)",
            "SIGBUS": " (bus error)",
        }.get(name, "")
        return 1, f"The Python process was killed by {name}{what} during this step"
    code = os.WEXITSTATUS(status)
    return code, f"The Python process exited with status {code} (os._exit or a fatal error) during this step"


def clamp_exit_code(value: Any) -> int:
    """An int in 0..255 is kept; anything else (2**60, -1, a bool, not a number) becomes 1."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    return 1


@dataclass
class _Running:
    """A step in progress for one (tenant, episode)."""

    #: Incarnations discarded while it ran (None = all): its worker is not kept warm then.
    discarded: set[str | None] = field(default_factory=set)


class Runtime:
    """Runs steps; thread-safe (the local server calls it from many threads).

    Lambda mode (the runtime is not root: one uid for everything, no namespaces, no cgroups):
    a process of the runtime's uid can undo a SIGSTOP of any other, so steps run one at a time
    and, before a step of an episode runs, the warm workers of every other episode are killed.
    No other episode's user process exists while a step runs. Cost: warm reuse holds only for
    consecutive steps of the same episode in one execution environment (Lambda sends one
    invocation at a time to an environment anyway).
    """

    def __init__(self, opts: RuntimeOpts | None = None) -> None:
        self.opts = opts or RuntimeOpts()
        from . import sandbox

        sandbox.best_effort(sandbox.make_undumpable, "PR_SET_DUMPABLE")
        self.pool = WorkerPool(self.opts)
        self.privileged = self.pool.privileged
        self.work_root = self.pool.work_root
        #: Without a private uid per worker, only one episode may have live user processes.
        self.one_episode_at_a_time = not self.privileged
        self._step_lock = threading.Lock()
        self._running: dict[tuple[str, str], _Running] = {}
        self._empty_snapshot: str | None = None
        #: Lambda mode: this process's limits, priority and CPUs, which user code (same uid) can
        #: lower with prlimit/setpriority and which would then cripple every later step.
        self._own_traits = process_traits(os.getpid()) if self.one_episode_at_a_time else None
        self._start_gate = self.pool.supply.zygotes.start_gate
        #: Lambda mode: the running step's user code may run (``StartGate``; under ``_step_lock``).
        self._in_user_code = False

    # Views of the pool kept for tests and benchmarks.
    @property
    def _zygote(self) -> Any:
        return self.pool.zygote

    @property
    def _live(self) -> dict[int, Worker]:
        return self.pool.live

    @property
    def _warm(self) -> Any:
        return self.pool.warm

    @property
    def _idle(self) -> list[Worker]:
        return self.pool.idle

    def _spawn(self) -> Worker:
        return self.pool.spawn()

    def _discard(self, worker: Worker, *, wait: bool = False, reaped: bool = False) -> None:
        self.pool.discard(worker, wait=wait, reaped=reaped)

    # --- discard -------------------------------------------------------------------------------

    def discard(self, tenant_id: str, episode_id: str, incarnation: str | None = None) -> int:
        """Drop the warm worker(s) of one episode (every incarnation when none is given) at once;
        a step of it running now keeps no warm worker either. Returns how many were dropped."""

        def keep(key: WarmKey) -> bool:
            return not (key[0] == tenant_id and key[1] == episode_id and (incarnation is None or key[2] == incarnation))

        with self.pool.lock:
            running = self._running.get((tenant_id, episode_id))
            if running is not None:
                running.discarded.add(incarnation)
        return self.pool.drop_warm(keep, zygotes=True) + (1 if running is not None else 0)

    # --- the step ----------------------------------------------------------------------------

    def empty_snapshot(self) -> str:
        if self._empty_snapshot is None:
            from . import cell
            from .policy import ImportPolicy

            self._empty_snapshot = snapshot.encode(
                cell.save_namespace(cell.new_namespace(ImportPolicy())).payload
            )
        return self._empty_snapshot

    def run_step(self, request: StepRequest | DiscardRequest) -> dict[str, Any]:
        """Run one step; user-code failures are data in the result, runtime failures raise.
        A ``DiscardRequest`` is answered ``{"contract_version": 1, "discarded": n}``."""
        if isinstance(request, DiscardRequest):
            dropped = self.discard(request.tenant_id, request.episode_id, request.incarnation)
            return {"contract_version": CONTRACT_VERSION, "discarded": dropped}
        episode = (request.tenant_id, request.episode_id)
        with self.pool.lock:
            if episode in self._running:
                return self._busy(request)
            running = self._running[episode] = _Running()
        try:
            if self.one_episode_at_a_time:
                with self._step_lock:
                    try:
                        result = self._run_step(request, running)
                    finally:
                        self._user_code_over()  # every process of the step is stopped or killed
                    self._check_own_traits()
                    return result
            return self._run_step(request, running)
        except RuntimeFailure:
            raise
        except Exception as exc:  # a bug or an OS failure here: report it as a runtime failure
            raise RuntimeFailure(f"the runtime failed during the step: {type(exc).__name__}: {exc}") from exc
        finally:
            with self.pool.lock:
                self._running.pop(episode, None)

    def _user_code_over(self) -> None:
        """Lambda mode: the step's processes are stopped or killed; zygotes may start again."""
        if self._in_user_code:
            self._in_user_code = False
            self._start_gate.leave_user_code()

    def _check_own_traits(self) -> None:
        """Lambda mode, after a step: if it changed this process's limits or priority (nothing
        else of our uid runs user code), no later step could run as it should. In an execution
        environment the process ends at once: this step ends as crashed (its own), and Lambda
        starts a fresh environment for the next one. Elsewhere (a non-root local executor) it
        is only reported."""
        if self._own_traits is None or process_traits(os.getpid()) == self._own_traits:
            return
        message = "coding-env runtime: user code changed the runtime's limits or priority"
        print(message, file=sys.stderr, flush=True)
        if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
            os._exit(70)

    def _new_result(self, request: StepRequest) -> dict[str, Any]:
        return {
            "contract_version": CONTRACT_VERSION,
            "runtime_version": RUNTIME_VERSION,
            "stdout": "",
            "stderr": "",
            "exit_code": 0,
            "snapshot": request.snapshot,
            "state_version": request.state_version + 1,
            "snapshot_bytes": 0,
            "dropped": [],
            "duration_ms": 0.0,
            "timed_out": False,
            "out_of_memory": False,
            "crashed": False,
            "stdout_truncated": False,
            "stderr_truncated": False,
            "warm": False,
            "error_code": None,
        }

    def _busy(self, request: StepRequest) -> dict[str, Any]:
        result = self._new_result(request)
        result.update(
            exit_code=1,
            error_code="busy",
            stderr="BusyError: another step of this episode is running; nothing ran. Retry when it is done.\n",
        )
        self._finish(result, time.perf_counter())
        result["duration_ms"] = 0
        return result

    def _acquire(self, request: StepRequest) -> tuple[Worker, bool]:
        key: WarmKey = (request.tenant_id, request.episode_id, request.incarnation, request.state_version)
        if self.one_episode_at_a_time:
            # Lambda mode: no other episode's user process may exist while this step runs.
            self.pool.drop_warm(lambda k: k == key)
        warm = self.pool.take_warm(key)
        if warm is not None:
            if (
                warm.zygote.alive
                and warm.zygote.process.poll() is None
                and not unexpected_bytes(warm)  # written after its last reply: not to be trusted
                and warm.snapshot == request.snapshot
                and warm.policy == request.policy.to_json()
                and warm.memory_mb == request.memory_mb
            ):
                return warm, True
            self.pool.discard(warm)
        worker = self.pool.take_idle(request.tenant_id, (request.tenant_id, request.episode_id, request.incarnation))
        if worker.group is not None:
            worker.group.set_memory_limit(request.memory_mb * 2**20)
        return worker, False

    def _run_step(self, request: StepRequest, running: _Running) -> dict[str, Any]:
        started = time.perf_counter()
        result = self._new_result(request)
        header = {
            "op": "step",
            "code": request.code,
            "cell_name": f"<cell {request.state_version + 1}>",
            "policy": request.policy.to_json(),
            "memory_mb": request.memory_mb,
            "max_output_bytes": request.max_output_bytes,
            "seed": request.seed,
        }
        worker, warm = self._acquire(request)
        # The time limit is the cell's: it starts once a worker is there (a cold step with no
        # spare ready waits for an interpreter to start, see spares.py).
        deadline = time.monotonic() + request.timeout_ms / 1000.0
        if request.invocation_deadline is not None:
            # The invocation's end bounds it too: the wait for a worker above was inside it.
            deadline = min(deadline, request.invocation_deadline)
        payload = b""
        if request.snapshot is not None and not warm:
            # Only the envelope is read here; the pickle is loaded inside the sandboxed worker.
            try:
                payload = snapshot.decode(request.snapshot).payload
            except snapshot.SnapshotIncompatibleError as exc:
                self.pool.release_unused(worker)
                result.update(
                    exit_code=1,
                    stderr=f"SnapshotIncompatibleError: {exc}\n",
                    error_code=exc.error_code,
                )
                return self._finish(result, started)
        for attempt in range(2):
            os.ftruncate(worker.out_fd, 0)
            os.ftruncate(worker.err_fd, 0)
            try:
                worker.sock.settimeout(max(deadline - time.monotonic(), 0.001))
                if self._start_gate is not None and not self._in_user_code:
                    # Lambda mode: user code (a thawed worker's timers too) waits for any new
                    # zygote to be non-dumpable, and no zygote starts until the step is over.
                    self._start_gate.enter_user_code()
                    self._in_user_code = True
                if worker.frozen:
                    Freezer.thaw(worker)
                send_frame(worker.sock, header, b"" if warm else payload)
                break
            except OSError:
                # The worker died while idle or warm (before running anything): use a fresh one.
                self.pool.discard(worker)
                self._user_code_over()  # getting another worker may start a zygote
                if attempt == 1:
                    raise RuntimeFailure("could not hand the step to a worker") from None
                worker, warm = self.pool.spawn(request.tenant_id), False
                if worker.group is not None:
                    worker.group.set_memory_limit(request.memory_mb * 2**20)
                if request.snapshot is not None and not payload:
                    try:
                        payload = snapshot.decode(request.snapshot).payload
                    except snapshot.SnapshotIncompatibleError as exc:
                        raise RuntimeFailure(str(exc)) from None
        result["warm"] = warm
        worker.steps += 1
        try:
            return self._await_reply(worker, request, header, result, started, deadline, running)
        except BaseException:
            self.pool.discard(worker)  # never leave a worker in an unknown state behind
            raise

    def _stop_after_crash(self, worker: Worker, request: StepRequest, result: dict[str, Any]) -> int | None:
        """Kill what is left of a worker whose step failed; its exit status, output collected."""
        self.pool.kill_processes(worker)
        status = worker.zygote.wait_exit(worker.pid, 2.0)
        self._collect_output(worker, request, result)
        self.pool.discard(worker, reaped=status is not None)
        return status

    def _await_reply(
        self,
        worker: Worker,
        request: StepRequest,
        header: dict[str, Any],
        result: dict[str, Any],
        started: float,
        deadline: float,
        running: _Running,
    ) -> dict[str, Any]:
        try:
            # A state that may go to S3 is received right after its envelope's header, in one
            # buffer: the raw snapshot itself, no copy of it to make.
            reply, new_payload = recv_frame(
                worker.sock,
                deadline=deadline,
                max_header=MAX_REPLY_HEADER,
                max_payload=self.opts.max_snapshot_bytes,
                payload_prefix=snapshot.ENVELOPE_PREFIX if request.state is not None else None,
            )
        except WireTimeout:
            # Read the output before discard: it closes the output files (in the background).
            self.pool.kill_processes(worker)
            self._collect_output(worker, request, result)
            self.pool.discard(worker)
            result.update(exit_code=1, timed_out=True, error_code="timeout")
            self._append_stderr(
                result,
                f"TimeoutError: the step exceeded its time limit of {request.timeout_ms / 1000:g} s "
                "and was stopped; the episode's state is as it was before this step.\n",
            )
            return self._finish(result, started)
        except FrameTooLarge as exc:
            self.pool.kill_processes(worker)
            self._collect_output(worker, request, result)
            self.pool.discard(worker)
            result.update(exit_code=1, error_code="state_too_large")
            self._append_stderr(
                result,
                f"MemoryError: the episode's state would be {_size(exc.payload_len)} after this "
                f"step, above the {_size(self.opts.max_snapshot_bytes)} limit; the episode's "
                "state is as it was before this step. Delete large variables (del name) and retry.\n",
            )
            return self._finish(result, started)
        except WireError as exc:
            # Usually the worker died (EOF); otherwise it sent garbage on the runtime's socket
            # (user code can write to it) and is stopped here.
            return self._crashed(worker, request, result, started, protocol_broken=not isinstance(exc, PeerClosed))

        error_code = reply.get("error_code")
        if not isinstance(error_code, str) or error_code not in WORKER_ERROR_CODES:
            # Any other code is the runtime's to give (``busy``: nothing ran, so the API meters
            # nothing; ``state_too_large``...): a worker's reply is user code's to forge.
            error_code = None
        if reply.get("out_of_memory") or error_code in ("snapshot_restore_failed", "too_many_open_files"):
            # The worker exits after this reply: kill what is left, keep the input state.
            self._stop_after_crash(worker, request, result)
            result["exit_code"] = 1
            result["error_code"] = error_code
            if reply.get("out_of_memory"):
                self._out_of_memory(request, result)
            return self._finish(result, started)
        # The reply is accepted (and the step over) only once the worker is frozen with its main
        # thread back on its channel; this bookkeeping overlaps the microseconds it takes the
        # worker to get there. From then on no process of the worker runs until its next step:
        # timers, threads, children get no CPU, nothing more can be written on its channel.
        self._collect_output(worker, request, result)
        # A step whose state may go to S3 keeps it as raw bytes (no base64 of hundreds of MiB).
        new_snapshot = new_payload if request.state is not None else snapshot.encode(new_payload)
        if not freeze_after_reply(worker):
            return self._crashed(worker, request, result, started, protocol_broken=True)
        result["exit_code"] = clamp_exit_code(reply.get("exit_code"))
        result["error_code"] = error_code
        result["snapshot"] = new_snapshot
        result["dropped"] = _clean_dropped(reply.get("dropped"))
        bundles = clean_bundles(reply.get("display"))
        if bundles:
            result["display"] = bundles
        # The worker's own report that its fds 1/2 are no longer our output files (user code
        # closed or replaced them) only concerns this episode, so trusting it is safe.
        reusable = reply.get("reusable", True) is True
        if running.discarded & {None, request.incarnation}:
            reusable = False  # the episode was discarded (reset, deleted, expired) meanwhile
        if reusable and self.pool.healthy_after_step(worker) and not self.pool.closed:
            worker.key = (request.tenant_id, request.episode_id, request.incarnation, request.state_version + 1)
            worker.snapshot = result["snapshot"]
            worker.policy = header["policy"]
            worker.memory_mb = request.memory_mb
            self.pool.keep_warm(worker)
        else:
            self.pool.discard(worker)
        return self._finish(result, started)

    def _crashed(
        self, worker: Worker, request: StepRequest, result: dict[str, Any], started: float, *, protocol_broken: bool
    ) -> dict[str, Any]:
        """The worker died, or wrote what the protocol does not expect: whatever it replied is
        thrown away and the episode keeps its input state."""
        # Read before the group goes: the kernel's kills for the group's memory limit so far.
        oom_kills = worker.group.oom_kills() if worker.group is not None else 0
        status = self._stop_after_crash(worker, request, result)
        self._user_code_over()  # all of it is killed; a new zygote may start below
        if worker.zygote.process.poll() is not None:
            self.pool.zygote_ready(request.tenant_id)  # user code killed it (same uid in Lambda mode)
        if not protocol_broken and oom_kills > 0:
            # The kernel killed it for the group's memory limit (all its processes together).
            self._out_of_memory(request, result)
            return self._finish(result, started)
        exit_code, sentence = describe_exit(status)
        if protocol_broken:
            exit_code, sentence = 1, "The step wrote to the runtime's private channel (fd 3) and was stopped"
        result.update(exit_code=clamp_exit_code(exit_code), crashed=True, error_code="crashed")
        self._append_stderr(result, f"{sentence}; the episode's state is as it was before this step.\n")
        return self._finish(result, started)

    def _out_of_memory(self, request: StepRequest, result: dict[str, Any]) -> None:
        result.update(out_of_memory=True, exit_code=1, error_code="out_of_memory", snapshot=request.snapshot)
        self._append_stderr(
            result,
            f"MemoryError: the step exceeded its memory limit of {request.memory_mb} MB; "
            "the episode's state is as it was before this step.\n",
        )

    def _finish(self, result: dict[str, Any], started: float) -> dict[str, Any]:
        if result["snapshot"] is None:
            result["snapshot"] = self.empty_snapshot()
        result["snapshot_bytes"] = len(result["snapshot"])
        result["duration_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
        return result

    @staticmethod
    def _append_stderr(result: dict[str, Any], text: str) -> None:
        current = result["stderr"]
        result["stderr"] = current + ("" if not current or current.endswith("\n") else "\n") + text

    @staticmethod
    def _read_capped(fd: int, cap: int) -> tuple[str, bool]:
        size = os.fstat(fd).st_size
        data = os.pread(fd, min(size, cap), 0) if size else b""
        return data.decode("utf-8", "replace"), size > cap

    def _collect_output(self, worker: Worker, request: StepRequest, result: dict[str, Any]) -> None:
        cap = request.max_output_bytes
        result["stdout"], result["stdout_truncated"] = self._read_capped(worker.out_fd, cap)
        result["stderr"], result["stderr_truncated"] = self._read_capped(worker.err_fd, cap)

    def close(self) -> None:
        self.pool.close()


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _clean_dropped(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    cleaned = []
    for item in value[:1000]:
        if isinstance(item, dict):
            cleaned.append({"name": str(item.get("name", ""))[:200], "type": str(item.get("type", ""))[:200]})
    return cleaned
