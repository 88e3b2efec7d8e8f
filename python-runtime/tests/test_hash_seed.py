"""One string-hash seed per episode: two episodes, of one tenant or of two, never run in
interpreters with the same hash secret while spares are ready (each cold step gets a spare
zygote of its own), in root mode and in Lambda mode. With no spare ready, a new episode forks
from a zygote its tenant already has (no interpreter start on the step) and shares that
episode's seed, never another tenant's."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import unittest
from pathlib import Path

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

from coding_env_runtime.runtime import Runtime, RuntimeOpts  # noqa: E402
from harness.testing import LambdaModeTestCase  # noqa: E402
from tests.support import RuntimeTestCase  # noqa: E402
from tests.test_isolation_root import TenantEpisode  # noqa: E402

#: The interpreter's hash secret shows in hash() of str and bytes (and in a set's order).
HASHES = "hash('coding-env'), hash(b'coding-env')"


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


class EpisodeSeedTest(RuntimeTestCase):
    opts = RuntimeOpts(idle_workers=2, max_warm_workers=4)

    def new_episode(self, tenant: str) -> TenantEpisode:
        # A spare ready (else the episode forks from a zygote of the tenant, see below).
        self.assertTrue(self.runtime.pool.wait_ready(60.0))
        return TenantEpisode(self.runtime, tenant)

    def test_two_episodes_of_one_tenant_get_different_hash_secrets(self) -> None:
        seen = [self.new_episode("tenant-a").step(HASHES)["stdout"] for _ in range(3)]
        seen.append(self.new_episode("tenant-b").step(HASHES)["stdout"])
        self.assertEqual(len(set(seen)), 4, seen)

    def test_warm_steps_keep_the_seed_and_a_cold_restore_gets_a_new_one(self) -> None:
        episode = self.new_episode("tenant-a")
        first = episode.step(f"names = {{'a', 'b', 'c', 'd'}}\n{HASHES}")
        warm = episode.step(HASHES)
        self.assertTrue(warm["warm"])
        self.assertEqual(warm["stdout"], first["stdout"])
        self.runtime.discard("tenant-a", episode.episode_id)
        self.assertTrue(self.runtime.pool.wait_ready(60.0))
        restored = episode.step(f"print(sorted(names))\n{HASHES}")
        self.assertFalse(restored["warm"])
        printed, hashes = restored["stdout"].split("\n\n")
        self.assertEqual(printed, "['a', 'b', 'c', 'd']")  # the state is intact
        self.assertNotEqual(hashes, first["stdout"])  # documented: a restore is a new interpreter

    def test_a_discarded_workers_zygote_goes_with_it(self) -> None:
        episode = self.new_episode("tenant-c")  # (no other episode of the tenant uses its zygote)
        pid = int(episode.step("import os\nos.getpid()")["stdout"])
        zygote = next(w.zygote for w in self.runtime.pool.warm.values() if w.pid == pid)
        self.assertIsNotNone(zygote.tenant)
        self.runtime.discard("tenant-c", episode.episode_id)
        deadline = time.monotonic() + 30
        while not _gone(zygote.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(_gone(zygote.pid))
        self.assertNotIn(zygote, self.runtime.pool.zygotes())


class KeptZygoteTest(RuntimeTestCase):
    # No spares: root mode takes a ready spare before a kept zygote (its worker is forked already).
    opts = RuntimeOpts(idle_workers=0, max_warm_workers=1)

    def test_a_restore_after_eviction_forks_from_the_episodes_own_zygote(self) -> None:
        episode = TenantEpisode(self.runtime, "tenant-a")
        first = episode.step(f"names = {{'a', 'b'}}\n{HASHES}")
        other = TenantEpisode(self.runtime, "tenant-b").step(HASHES)  # evicts the first's worker
        self.assertNotEqual(other["stdout"], first["stdout"])
        deadline = time.monotonic() + 30
        while not self.runtime.pool._kept and time.monotonic() < deadline:  # kept once reaped
            time.sleep(0.05)
        restored = episode.step(f"print(sorted(names))\n{HASHES}")
        self.assertFalse(restored["warm"])
        self.assertEqual(restored["stdout"], "['a', 'b']\n\n" + first["stdout"])


class KeptZygoteNeverSpareTest(RuntimeTestCase):
    opts = RuntimeOpts(idle_workers=0)  # the refused step then gets the kept zygote (see above)

    def test_a_kept_zygote_whose_step_was_refused_is_not_handed_to_another_episode(self) -> None:
        # A refused snapshot gives the fresh worker back to the pool; one forked from a zygote
        # kept for its episode carries that episode's seed and must not become a spare.
        episode = TenantEpisode(self.runtime, "tenant-a")
        first = episode.step(HASHES)
        self.runtime.pool.drop_warm(lambda key: key[1] != episode.episode_id)  # evicted, zygote kept
        deadline = time.monotonic() + 30
        while not self.runtime.pool._kept and time.monotonic() < deadline:
            time.sleep(0.05)
        kept = next(iter(self.runtime.pool._kept.values()))
        episode.snapshot = "bm90IGEgc25hcHNob3Q="  # refused before any code runs
        self.assertEqual(episode.step(HASHES)["error_code"], "snapshot_incompatible")
        self.assertNotIn(kept, [w.zygote for w in self.runtime.pool.idle])
        others = {TenantEpisode(self.runtime, "tenant-b").step(HASHES)["stdout"] for _ in range(3)}
        self.assertNotIn(first["stdout"], others)


class EmptyPoolSeedTest(RuntimeTestCase):
    opts = RuntimeOpts(idle_workers=0, share_tenant_zygotes=False)

    def test_without_spares_each_episode_still_gets_its_own_interpreter(self) -> None:
        seen = [TenantEpisode(self.runtime, "tenant-a").step(HASHES)["stdout"] for _ in range(2)]
        self.assertEqual(len(set(seen)), 2, seen)
        self.assertGreaterEqual(self.runtime.pool.spares_started_on_step, 2)


def _hanging_interpreter(test: unittest.TestCase) -> str:
    """An "interpreter" that never gets ready: a spare started with it never finishes."""
    directory = tempfile.mkdtemp(prefix="hanging-python-")
    test.addCleanup(lambda: __import__("shutil").rmtree(directory, ignore_errors=True))
    path = os.path.join(directory, "python3")
    with open(path, "w") as fh:
        fh.write("#!/bin/sh\nexec sleep 600\n")
    os.chmod(path, 0o755)
    os.chmod(directory, 0o755)
    return path


class TenantZygoteRootTest(unittest.TestCase):
    """No spare ready: a new episode forks from its tenant's zygote; tenants never share one."""

    drop_privileges = True

    def runtime(self, **opts: object) -> Runtime:
        runtime = Runtime(RuntimeOpts(drop_privileges=self.drop_privileges, **opts))  # type: ignore[arg-type]
        self.addCleanup(runtime.close)
        return runtime

    def test_a_new_episode_forks_from_its_tenants_zygote_while_the_refill_cannot_finish(self) -> None:
        runtime = self.runtime(idle_workers=1, max_warm_workers=4)
        self.assertTrue(runtime.pool.wait_ready(60.0))
        runtime.pool.opts.python = _hanging_interpreter(self)  # every later spare start hangs
        first = TenantEpisode(runtime, "tenant-a").step(HASHES)  # takes the one spare
        second = TenantEpisode(runtime, "tenant-a").step(HASHES)
        self.assertEqual(second["exit_code"], 0, second["stderr"])
        pool = runtime.pool
        # No interpreter was started or waited for on the step path.
        self.assertEqual((pool.spares_started_on_step, pool.spares_waited_on_step), (0, 0))
        self.assertEqual(pool.tenant_zygote_forks, 1)
        self.assertEqual(second["stdout"], first["stdout"])  # documented: the seed is shared
        # A kept zygote of the tenant serves too (the first episode's worker is gone).
        runtime.discard("tenant-a", TenantEpisode(runtime, "tenant-a").episode_id)
        pool.drop_warm(lambda key: False)
        deadline = time.monotonic() + 30
        while not pool._kept and time.monotonic() < deadline:
            time.sleep(0.05)
        third = TenantEpisode(runtime, "tenant-a").step(HASHES)
        self.assertEqual(third["exit_code"], 0, third["stderr"])
        self.assertEqual((pool.spares_started_on_step, pool.spares_waited_on_step), (0, 0))
        self.assertEqual(pool.tenant_zygote_forks, 2)

    def test_two_tenants_never_share_a_seed_without_spares(self) -> None:
        runtime = self.runtime(idle_workers=0, max_warm_workers=8)
        a = [TenantEpisode(runtime, "tenant-a").step(HASHES)["stdout"] for _ in range(2)]
        b = [TenantEpisode(runtime, "tenant-b").step(HASHES)["stdout"] for _ in range(2)]
        self.assertEqual(len(set(a)), 1, a)  # tenant-a's second episode forked from its zygote
        self.assertEqual(len(set(b)), 1, b)
        self.assertNotEqual(a[0], b[0])
        self.assertEqual(runtime.pool.spares_started_on_step, 2)  # one per tenant
        self.assertEqual(runtime.pool.tenant_zygote_forks, 2)
        self.assertEqual({z.tenant for z in runtime.pool.zygotes()}, {"tenant-a", "tenant-b"})


class InterpretersPerTenantTest(unittest.TestCase):
    def test_beyond_the_bound_a_tenants_new_episode_forks_from_its_zygote_not_a_spare(self) -> None:
        runtime = Runtime(RuntimeOpts(idle_workers=1, interpreters_per_tenant=1, max_warm_workers=8))
        self.addCleanup(runtime.close)
        pool = runtime.pool
        self.assertTrue(pool.wait_ready(60.0))
        first = TenantEpisode(runtime, "tenant-a").step(HASHES)
        self.assertTrue(pool.wait_ready(60.0))  # a spare is ready, yet not taken by tenant-a
        second = TenantEpisode(runtime, "tenant-a").step(HASHES)
        self.assertEqual(second["stdout"], first["stdout"])
        self.assertEqual(pool.tenant_zygote_forks, 1)
        other = TenantEpisode(runtime, "tenant-b").step(HASHES)  # its own interpreter (the spare)
        self.assertNotEqual(other["stdout"], first["stdout"])
        self.assertEqual(pool.tenant_zygote_forks, 1)
        self.assertEqual(pool.spares_started_on_step, 0)


class TenantZygoteLambdaPoolTest(TenantZygoteRootTest):
    """The same with the pool's Lambda-mode paths (no uid change, namespaces or groups).

    Without the scrub of the shared temporary directories: as root, on this machine's /tmp, it
    would remove every new file of any other process of ours (npm test's other suites run beside
    this one). The scrub is tested where /tmp is the environment's own (the Lambda harness)."""

    drop_privileges = False

    def runtime(self, **opts: object) -> Runtime:
        return super().runtime(scrub_shared_dirs=False, **opts)


class ZygoteBoundTest(unittest.TestCase):
    def test_zygotes_are_bounded_by_warm_workers_spares_and_kept_zygotes(self) -> None:
        opts = RuntimeOpts(idle_workers=1, max_warm_workers=2, kept_zygotes=2)
        runtime = Runtime(opts)
        self.addCleanup(runtime.close)
        for _ in range(6):
            TenantEpisode(runtime, "tenant-a").step("1")
        bound = opts.max_warm_workers + opts.idle_workers + opts.kept_zygotes
        deadline = time.monotonic() + 30
        while len([z for z in runtime.pool.zygotes() if not _gone(z.pid)]) > bound and time.monotonic() < deadline:
            time.sleep(0.05)
        live = [z.pid for z in runtime.pool.zygotes() if not _gone(z.pid)]
        self.assertLessEqual(len(live), bound, live)


#: User code that returns once the runtime has a spare ready (Lambda mode: the runtime is user
#: code's uid and pid namespace): the refill's zygote, the runtime's newest child but this step's
#: zygote, has forked its worker; then a moment for the worker's start to end. (A spare being
#: started while the environment is frozen between invocations gets no CPU.)
SPARE_READY = """
import os, time
def children(pid):
    found = []
    for task in os.listdir(f'/proc/{pid}/task'):
        try:
            found += [int(p) for p in open(f'/proc/{pid}/task/{task}/children').read().split()]
        except OSError:
            pass
    return found
def started(pid):
    return int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[19])
def cmdline(pid):
    try:
        return open(f'/proc/{pid}/cmdline', 'rb').read()
    except OSError:
        return None
def spare_ready(runtime, mine):
    zygotes = []
    for pid in children(runtime):
        try:
            zygotes.append((started(pid), pid))
        except (OSError, IndexError, ValueError):
            pass
    others = [pid for _, pid in sorted(zygotes) if pid != mine]
    # a worker is a fork of its zygote (not, say, the ldconfig its imports run)
    return bool(others) and any(cmdline(w) == cmdline(others[-1]) for w in children(others[-1]))
zygote = os.getppid()
runtime = int(open(f'/proc/{zygote}/stat').read().rsplit(')', 1)[1].split()[1])
deadline = time.monotonic() + 60
while not spare_ready(runtime, zygote) and time.monotonic() < deadline:
    time.sleep(0.02)
time.sleep(0.5)
"""


class LambdaModeSeedTest(LambdaModeTestCase):
    max_environments = 1  # one environment serves the tenant's episodes one after another

    def test_two_episodes_in_one_environment_get_different_hash_secrets(self) -> None:
        first_id = self.episode_id()
        first = self.harness.step({"episode_id": first_id, "code": HASHES, "policy": {"mode": "full"}})
        # The refill gets CPU only during an invocation: these steps wait for it to have a spare
        # ready for each next episode (with none ready, an episode shares an earlier one's seed).
        settle = SPARE_READY
        warm = self.harness.step({"episode_id": first_id, "code": settle + HASHES, "snapshot": first["snapshot"],
                                  "state_version": first["state_version"], "policy": {"mode": "full"}})
        self.assertTrue(warm["warm"])
        self.assertEqual(warm["stdout"], first["stdout"])
        others = [self.run_code(settle + HASHES)["stdout"] for _ in range(2)]
        self.assertEqual(len({first["stdout"], *others}), 3, [first["stdout"], *others])

    def test_episodes_alternating_in_one_environment_keep_their_seeds(self) -> None:
        # One episode at a time in Lambda mode: every step here is cold, and each episode's
        # restore forks from its own kept zygote (no spare used, its seed again).
        def step(episode_id: str, code: str, previous: dict | None) -> dict:
            event = {"episode_id": episode_id, "code": code, "policy": {"mode": "full"}}
            if previous is not None:
                event.update(snapshot=previous["snapshot"], state_version=previous["state_version"])
            return self.harness.step(event)

        a_id, b_id = self.episode_id(), self.episode_id()
        # Meanwhile the other episode's worker is gone and the refill (CPU only during an
        # invocation) has a spare ready for b1, which would fork from a's zygote otherwise.
        settle = SPARE_READY
        a1 = step(a_id, settle + HASHES, None)
        b1 = step(b_id, settle + HASHES, None)
        a2 = step(a_id, settle + HASHES, a1)
        b2 = step(b_id, settle + HASHES, b1)
        self.assertFalse(a2["warm"] or b2["warm"])
        self.assertNotEqual(a1["stdout"], b1["stdout"])
        self.assertEqual((a2["stdout"], b2["stdout"]), (a1["stdout"], b1["stdout"]))


class LambdaModeNoSpareTest(LambdaModeTestCase):
    max_environments = 1
    harness_args = ("--idle-workers", "0")  # no spare is ever ready

    def test_a_new_episode_forks_from_the_tenants_zygote_without_an_interpreter_start(self) -> None:
        # Only a fork from the first episode's zygote gives the second its hash secret; without
        # it, the second step starts an interpreter of its own (another secret).
        first = self.run_code(HASHES)
        second = self.run_code(HASHES)
        self.assertEqual((first["exit_code"], second["exit_code"]), (0, 0), second)
        self.assertFalse(second["warm"])
        self.assertEqual(second["stdout"], first["stdout"])


if __name__ == "__main__":
    unittest.main()
