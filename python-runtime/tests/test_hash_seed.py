"""One string-hash seed per episode: two episodes, of one tenant or of two, never run in
interpreters with the same hash secret (each cold step gets a spare zygote of its own), in root
mode and in Lambda mode. Each test fails if episodes share a zygote again."""

from __future__ import annotations

import os
import sys
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

    def test_two_episodes_of_one_tenant_get_different_hash_secrets(self) -> None:
        seen = [TenantEpisode(self.runtime, "tenant-a").step(HASHES)["stdout"] for _ in range(3)]
        seen.append(TenantEpisode(self.runtime, "tenant-b").step(HASHES)["stdout"])
        self.assertEqual(len(set(seen)), 4, seen)

    def test_warm_steps_keep_the_seed_and_a_cold_restore_gets_a_new_one(self) -> None:
        episode = TenantEpisode(self.runtime, "tenant-a")
        first = episode.step(f"names = {{'a', 'b', 'c', 'd'}}\n{HASHES}")
        warm = episode.step(HASHES)
        self.assertTrue(warm["warm"])
        self.assertEqual(warm["stdout"], first["stdout"])
        self.runtime.discard("tenant-a", episode.episode_id)
        restored = episode.step(f"print(sorted(names))\n{HASHES}")
        self.assertFalse(restored["warm"])
        printed, hashes = restored["stdout"].split("\n\n")
        self.assertEqual(printed, "['a', 'b', 'c', 'd']")  # the state is intact
        self.assertNotEqual(hashes, first["stdout"])  # documented: a restore is a new interpreter

    def test_a_discarded_workers_zygote_goes_with_it(self) -> None:
        episode = TenantEpisode(self.runtime, "tenant-a")
        pid = int(episode.step("import os\nos.getpid()")["stdout"])
        zygote = next(w.zygote for w in self.runtime.pool.warm.values() if w.pid == pid)
        self.assertIsNotNone(zygote.tenant)
        self.runtime.discard("tenant-a", episode.episode_id)
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
        other = TenantEpisode(self.runtime, "tenant-a").step(HASHES)  # evicts the first's worker
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
    opts = RuntimeOpts(idle_workers=0)

    def test_without_spares_each_episode_still_gets_its_own_interpreter(self) -> None:
        seen = [TenantEpisode(self.runtime, "tenant-a").step(HASHES)["stdout"] for _ in range(2)]
        self.assertEqual(len(set(seen)), 2, seen)
        self.assertGreaterEqual(self.runtime.pool.spares_started_on_step, 2)


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


class LambdaModeSeedTest(LambdaModeTestCase):
    max_environments = 1  # one environment serves the tenant's episodes one after another

    def test_two_episodes_in_one_environment_get_different_hash_secrets(self) -> None:
        first_id = self.episode_id()
        first = self.harness.step({"episode_id": first_id, "code": HASHES, "policy": {"mode": "full"}})
        warm = self.harness.step({"episode_id": first_id, "code": HASHES, "snapshot": first["snapshot"],
                                  "state_version": first["state_version"], "policy": {"mode": "full"}})
        self.assertTrue(warm["warm"])
        self.assertEqual(warm["stdout"], first["stdout"])
        others = [self.run_code(HASHES)["stdout"] for _ in range(2)]
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
        settle = "import time\ntime.sleep(0.5)\n"  # the other episode's worker is gone meanwhile
        a1 = step(a_id, HASHES, None)
        b1 = step(b_id, settle + HASHES, None)
        a2 = step(a_id, settle + HASHES, a1)
        b2 = step(b_id, settle + HASHES, b1)
        self.assertFalse(a2["warm"] or b2["warm"])
        self.assertNotEqual(a1["stdout"], b1["stdout"])
        self.assertEqual((a2["stdout"], b2["stdout"]), (a1["stdout"], b1["stdout"]))


if __name__ == "__main__":
    unittest.main()
