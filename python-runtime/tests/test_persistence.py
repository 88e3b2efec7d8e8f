"""State persists across steps, warm or restored from the snapshot alone."""

from __future__ import annotations

from tests.support import Episode, RuntimeTestCase


class PersistenceTest(RuntimeTestCase):
    def assert_both_paths(self, setup: str, check: str, expected: str, full: bool = False) -> None:
        """The value must survive on the warm worker and after a cold restore (another episode id)."""
        ep = self.full_episode() if full else self.episode()
        first = ep.step(setup)
        self.assertEqual(first["exit_code"], 0, first["stderr"])
        warm = ep.step(check)
        self.assertTrue(warm["warm"])
        self.assertEqual((warm["exit_code"], warm["stdout"]), (0, expected), warm["stderr"])
        cold = Episode(self.runtime, ep.policy)
        cold.snapshot, cold.state_version = first["snapshot"], first["state_version"]
        restored = cold.step(check)
        self.assertFalse(restored["warm"])
        self.assertEqual((restored["exit_code"], restored["stdout"]), (0, expected), restored["stderr"])

    def test_variables(self) -> None:
        self.assert_both_paths("x = 41\ny = [1, {'a': 2}]", "x + 1, y", "[42, [1, {\"a\": 2}]]")

    def test_functions_see_later_global_assignments(self) -> None:
        self.assert_both_paths("k = 1\ndef f(v):\n    return v * k", "k = 10\nf(3)", "30")

    def test_lambdas_and_closures(self) -> None:
        self.assert_both_paths(
            "sq = lambda v: v * v\ndef counter():\n    n = 0\n    def inc():\n        nonlocal n\n"
            "        n += 1\n        return n\n    return inc\nc = counter()\nc()",
            "c() + sq(3)",
            "11",
        )

    def test_classes_and_instances(self) -> None:
        self.assert_both_paths(
            "class P:\n    def __init__(self, x):\n        self.x = x\n    def double(self):\n"
            "        return self.x * 2\np = P(21)",
            "p.double(), isinstance(p, P), P(1).double()",
            "[42, true, 2]",
        )

    def test_dataclasses_and_enums(self) -> None:
        self.assert_both_paths(
            "from dataclasses import dataclass\nimport enum\n@dataclass\nclass Pt:\n    x: int\n"
            "    y: int = 0\nclass Color(enum.Enum):\n    RED = 1\np = Pt(3)\nc = Color.RED",
            "p.x + Pt(4, 5).y, c is Color.RED, c.name",
            "[8, true, \"RED\"]",
            full=True,
        )

    def test_import_aliases_restore_by_module_name(self) -> None:
        self.assert_both_paths("import math as m\nfrom collections import Counter", "m.floor(m.pi), Counter('aab')['a']", "[3, 2]")

    def test_numpy_and_pandas_values(self) -> None:
        self.assert_both_paths(
            "import numpy as np, pandas as pd\na = np.arange(10)\ndf = pd.DataFrame({'v': [1, 2, 3]})",
            "int(a.sum()) + int(df.v.sum())",
            "51",
            full=True,
        )

    def test_unpicklable_values_are_dropped_and_named(self) -> None:
        ep = self.full_episode()
        result = ep.step("g = (i for i in range(3))\nimport threading\nlock = threading.Lock()\nkeep = 7")
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        dropped = {d["name"]: d["type"] for d in result["dropped"]}
        self.assertEqual(dropped, {"g": "generator", "lock": "lock"})
        cold = Episode(self.runtime, ep.policy)
        cold.snapshot, cold.state_version = result["snapshot"], result["state_version"]
        after = cold.step("keep, 'g' in globals()")
        self.assertEqual(after["stdout"], "[7, false]")

    def test_open_file_is_dropped(self) -> None:
        ep = self.full_episode()
        result = ep.step("f = open('data.txt', 'w')\nn = 1")
        self.assertEqual([d["name"] for d in result["dropped"]], ["f"])
        self.assertEqual(result["dropped"][0]["type"], "TextIOWrapper")

    def test_errors_keep_assignments_made_before_the_error(self) -> None:
        ep = self.episode()
        ep.step("a = 1\nraise ValueError()")
        self.assertEqual(ep.step("a")["stdout"], "1")

    def test_restored_functions_keep_the_import_policy(self) -> None:
        ep = self.episode()
        first = ep.step("def opener():\n    return open('x')")
        cold = Episode(self.runtime)
        cold.snapshot, cold.state_version = first["snapshot"], first["state_version"]
        result = cold.step("opener()")
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("'open' is not available", result["stderr"])

    def test_state_version_increments_and_warm_needs_identical_snapshot(self) -> None:
        ep = self.episode()
        first = ep.step("v = 1")
        self.assertEqual(first["state_version"], 1)
        ep.step("v = 2")  # warm worker now holds v == 2 at version 2
        # Replaying version 1's snapshot (e.g. a lost commit) must not see the warm worker's state.
        replay = Episode(self.runtime)
        replay.episode_id, replay.snapshot, replay.state_version = ep.episode_id, first["snapshot"], 1
        self.assertEqual(replay.step("v")["stdout"], "1")

    def test_incompatible_snapshot_is_refused_clearly(self) -> None:
        import base64
        import json

        meta = json.dumps({"runtime": "0.1.0+py3.9", "python": "3.9", "codec": "zlib"}).encode()
        raw = b"CENV" + bytes([1]) + len(meta).to_bytes(2, "big") + meta + b"x"
        ep = self.episode()
        ep.snapshot, ep.state_version = base64.b64encode(raw).decode(), 3
        result = ep.step("1")
        self.assertEqual(result["exit_code"], 1)
        self.assertEqual(result["error_code"], "snapshot_incompatible")
        self.assertIn("Python 3.9", result["stderr"])
        self.assertIn("reset the episode", result["stderr"])

    def test_garbage_snapshot_is_refused(self) -> None:
        ep = self.episode()
        ep.snapshot, ep.state_version = "not a snapshot!", 1
        result = ep.step("1")
        self.assertEqual(result["error_code"], "snapshot_incompatible")
