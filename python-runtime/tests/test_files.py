"""The working directory is part of the episode's state: warm, after a cold restore, in a copy."""

from __future__ import annotations

import base64
import json
import unittest

from coding_env_runtime import snapshot, workfiles
from tests.support import Episode, RuntimeTestCase

WRITE = (
    "import os\nos.makedirs('data/sub', exist_ok=True)\n"
    "open('data/sub/a.txt', 'w').write('hello')\nopen('b.bin', 'wb').write(bytes(range(256)))"
)
READ = "import os\n[open('data/sub/a.txt').read(), len(open('b.bin', 'rb').read()), sorted(os.listdir('.'))]"


class FilesTest(RuntimeTestCase):
    def cold_copy(self, ep: Episode, result: dict) -> Episode:
        cold = Episode(self.runtime, ep.policy)
        cold.snapshot, cold.state_version = result["snapshot"], result["state_version"]
        return cold

    def test_files_persist_warm_and_cold(self) -> None:
        ep = self.full_episode()
        first = ep.step(WRITE)
        self.assertEqual(first["exit_code"], 0, first["stderr"])
        expected = json.dumps(["hello", 256, ["b.bin", "data"]])
        warm = ep.step(READ)
        self.assertTrue(warm["warm"])
        self.assertEqual((warm["exit_code"], warm["stdout"]), (0, expected), warm["stderr"])
        cold = self.cold_copy(ep, first).step(READ)
        self.assertFalse(cold["warm"])
        self.assertEqual((cold["exit_code"], cold["stdout"]), (0, expected), cold["stderr"])

    def test_deleted_file_stays_deleted(self) -> None:
        ep = self.full_episode()
        ep.step("open('x', 'w').write('1')")
        removed = ep.step("import os\nos.remove('x')")
        self.assertEqual(removed["exit_code"], 0, removed["stderr"])
        check = "import os\nos.path.exists('x')"
        self.assertEqual(ep.step(check)["stdout"], "false")
        self.assertEqual(self.cold_copy(ep, removed).step(check)["stdout"], "false")

    def test_failed_step_keeps_what_it_wrote(self) -> None:
        # Like variables: the namespace (and directory) is live; only a timeout/crash rolls back.
        ep = self.full_episode()
        result = ep.step("open('f', 'w').write('x')\n1/0")
        self.assertEqual(result["exit_code"], 1)
        self.assertEqual(ep.step("open('f').read()")["stdout"], '"x"')

    def test_timed_out_step_rolls_files_back(self) -> None:
        ep = self.full_episode()
        ep.step("open('f', 'w').write('before')")
        result = ep.step("open('f', 'w').write('after')\nwhile True: pass", timeout_ms=500)
        self.assertTrue(result["timed_out"])
        self.assertEqual(ep.step("open('f').read()")["stdout"], '"before"')

    def test_symlinks_and_special_files_dropped_and_reported(self) -> None:
        ep = self.full_episode()
        result = ep.step("import os\nos.symlink('/etc/passwd', 'link')\nos.mkfifo('fifo')\nopen('ok', 'w').write('1')")
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        dropped = {d["name"]: d["type"] for d in result["dropped"]}
        self.assertEqual(dropped, {"file:link": "symlink", "file:fifo": "special file"})
        check = "import os\nsorted(os.listdir('.'))"
        self.assertEqual(ep.step(check)["stdout"], '["ok"]')
        self.assertEqual(self.cold_copy(ep, result).step(check)["stdout"], '["ok"]')

    def test_count_and_size_capped(self) -> None:
        ep = self.full_episode()
        many = workfiles.MAX_FILES + 5
        result = ep.step(f"for i in range({many}):\n    open(f'f{{i:05}}', 'w').write('x')")
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(len([d for d in result["dropped"] if d["name"].startswith("file:")]), 5)
        self.assertEqual(ep.step("import os\nlen(os.listdir('.'))")["stdout"], str(workfiles.MAX_FILES))

    def test_matplotlib_config_is_not_a_file_of_the_episode(self) -> None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("matplotlib is not installed (apt-get install python3-matplotlib)")
        ep = self.full_episode()
        ep.step("import matplotlib.pyplot as plt\nplt.plot([1, 2])")
        self.assertEqual(ep.step("import os\nos.listdir('.')")["stdout"], "[]")

    def test_snapshot_without_files_still_restores(self) -> None:
        ep = self.full_episode()
        first = ep.step("x = 5")
        payload = snapshot.decode(first["snapshot"]).payload
        self.assertEqual(workfiles.split_payload(payload), (b"", payload))
        self.assertEqual(self.cold_copy(ep, first).step("x")["stdout"], "5")


class FilesOperationTest(RuntimeTestCase):
    """``{"op": "files"}`` through the handler: no worker, the snapshot's archive only."""

    @classmethod
    def tearDownClass(cls) -> None:
        from coding_env_runtime import handler

        handler.shutdown()
        super().tearDownClass()

    def op(self, snap: str | None, action: str, **fields: object) -> dict:
        from coding_env_runtime import handler

        event = {"op": "files", "episode_id": "ep_files", "snapshot": snap, "action": action, **fields}
        return handler.handler(event)

    def test_list_read_write_then_a_step_sees_it(self) -> None:
        ep = self.full_episode()
        first = ep.step("open('a.txt', 'w').write('from a cell')")
        self.assertEqual(self.op(first["snapshot"], "list")["files"], [{"path": "a.txt", "size": 11}])
        read = self.op(first["snapshot"], "read", path="a.txt")
        self.assertEqual(base64.b64decode(read["content_base64"]), b"from a cell")
        written = self.op(first["snapshot"], "write", path="up/b.txt",
                          content_base64=base64.b64encode(b"uploaded").decode())
        ep.snapshot, ep.state_version = written["snapshot"], ep.state_version + 1
        seen = ep.step("[open('up/b.txt').read(), open('a.txt').read()]")
        self.assertEqual(seen["stdout"], '["uploaded", "from a cell"]', seen["stderr"])

    def test_write_to_a_fresh_episode_and_errors(self) -> None:
        written = self.op(None, "write", path="x", content_base64=base64.b64encode(b"1").decode())
        ep = self.full_episode()
        ep.snapshot, ep.state_version = written["snapshot"], 1
        self.assertEqual(ep.step("open('x').read()")["stdout"], '"1"')
        self.assertEqual(self.op(None, "read", path="nope")["error_code"], "not_found")
        self.assertEqual(self.op(None, "read", path="../etc/passwd")["error_code"], "invalid_path")
        self.assertEqual(self.op(None, "list")["files"], [])


class ArchiveTest(unittest.TestCase):
    def test_traversal_refused(self) -> None:
        for bad in ("../x", "/etc/passwd", "a/../../b", "a//b", "./a", "", "a\\b", "a\x00b"):
            with self.assertRaises(workfiles.ArchiveError, msg=bad):
                workfiles.write_entry([], bad, b"")

    def test_archive_round_trip(self) -> None:
        entries = workfiles.write_entry([], "d/e/f.txt", b"data")
        decoded = workfiles.decode_archive(workfiles.encode_archive(entries))
        self.assertEqual([(e.path, e.kind) for e in decoded], [("d", 1), ("d/e", 1), ("d/e/f.txt", 0)])
        self.assertEqual(workfiles.read_entry(decoded, "d/e/f.txt"), b"data")
        self.assertEqual(workfiles.list_entries(decoded), [{"path": "d/e/f.txt", "size": 4}])

    def test_archive_with_escaping_path_refused(self) -> None:
        path = b"../x"
        body = workfiles._ENTRY.pack(workfiles.KIND_FILE, 0o600, len(path), 1) + path + b"1"
        with self.assertRaises(workfiles.ArchiveError):
            workfiles.decode_archive(b"n" + body)

if __name__ == "__main__":
    unittest.main()
