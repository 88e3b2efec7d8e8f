"""The state payload's codecs through a real runtime: snapshots written before out-of-band buffers
(codecs ``z`` and ``n``, with and without files) still restore; arrays restored from out-of-band
buffers keep their flags; a malformed or lying table is a failed restore, refused before
allocating, never a crash or an out-of-memory step. The files archive compresses only what a
sample shows is worth it."""

from __future__ import annotations

import os
import struct
import unittest
import zlib
from unittest import mock

from coding_env_runtime import cell, snapshot, workfiles
from coding_env_runtime.policy import ImportPolicy
from tests.support import RuntimeTestCase


def _old_payload(codec: bytes, names: dict[str, object]) -> bytes:
    """A state payload as runtimes wrote it before codec ``p``: one in-band pickle."""
    namespace = cell.new_namespace(ImportPolicy())
    raw = cell._dumps(namespace, (names, {"__name__": "__main__"}), None)
    return codec + (zlib.compress(raw, 1) if codec == b"z" else raw)


def _p_payload(items: list[tuple[int, int, int]], body: bytes) -> bytes:
    table = b"".join(struct.pack("!BQQ", *item) for item in items)
    return b"p" + struct.pack("!I", len(items) - 1) + table + body


class StateCodecTest(RuntimeTestCase):
    def restore(self, payload: bytes, code: str) -> dict[str, object]:
        ep = self.full_episode()
        ep.snapshot, ep.state_version = snapshot.encode(payload), 4
        return ep.step(code)

    def test_snapshots_written_before_out_of_band_buffers_still_restore(self) -> None:
        names = {"x": 41, "blob": bytes(range(256)) * 1024, "words": ["a"] * 1000}
        files = workfiles.encode_archive([workfiles.Entry("notes.txt", workfiles.KIND_FILE, 0o600, b"kept")])
        for codec in (b"z", b"n"):
            for archive in (b"", files):
                with self.subTest(codec=codec, files=bool(archive)):
                    payload = workfiles.join_payload(archive, _old_payload(codec, names))
                    result = self.restore(
                        payload,
                        "import os\nprint(x + 1, len(blob), len(words), os.path.exists('notes.txt'))",
                    )
                    self.assertEqual(result["exit_code"], 0, result["stderr"])
                    self.assertEqual(result["stdout"], f"42 262144 1000 {bool(archive)}\n")

    def test_restored_arrays_keep_their_flags_and_their_own_memory(self) -> None:
        ep = self.full_episode()
        first = ep.step(
            "import numpy as np\n"
            "a = np.arange(100_000, dtype=np.float64)\n"
            "z = np.zeros((400, 500))\n"
            "f = np.asfortranarray(np.arange(200_000.0).reshape(400, 500))\n"
            "r = np.arange(50_000, dtype=np.int64); r.flags.writeable = False\n"
            "v = a[::2]"  # not contiguous: in the pickle stream
        )
        self.assertEqual(first["exit_code"], 0, first["stderr"])
        self.assertEqual(snapshot.decode(first["snapshot"]).payload[:1], b"p")
        self.runtime.discard("default", ep.episode_id)
        second = ep.step(
            "a[0] = 7; z[0, 0] = 1; f[0, 0] = 2\n"
            "print(a.flags.writeable, z.flags.writeable, f.flags.f_contiguous, r.flags.writeable,\n"
            "      float(a.sum()), float(f.sum()), int(r[-1]), float(v[1]))\n"
            # Each array's buffer holds that array's bytes only (not the whole received state).
            "print(a.base.base.nbytes == a.nbytes, z.base.base.nbytes == z.nbytes)"
        )
        self.assertFalse(second["warm"])
        self.assertEqual(second["exit_code"], 0, second["stderr"])
        total = sum(range(100_000)) + 7
        self.assertEqual(
            second["stdout"],
            f"True True True False {float(total)} {float(sum(range(200_000)) + 2)} 49999 2.0\nTrue True\n",
        )

    def test_a_lying_table_is_a_failed_restore_not_a_crash(self) -> None:
        stream = zlib.compress(b"\x80\x05N.", 1)
        cases = {
            # A zlib item claiming 1 TiB out of 10 bytes: refused before allocating.
            "huge zlib length": _p_payload([(ord("z"), len(stream), 2**40)], stream),
            # A stored item claiming more than the frame holds.
            "longer than the frame": _p_payload([(ord("n"), 2**30, 2**30)], b"\x80\x05N."),
            # Stored lengths that disagree.
            "stored length mismatch": _p_payload([(ord("n"), 4, 5)], b"\x80\x05N."),
            "unknown item codec": _p_payload([(ord("q"), 4, 4)], b"\x80\x05N."),
            "count past the frame": b"p" + struct.pack("!I", 2**32 - 1),
            "zlib item shorter than claimed": _p_payload([(ord("z"), len(stream), 99)], stream),
            "unknown codec": b"x" + b"\x80\x05N.",
        }
        for name, payload in cases.items():
            with self.subTest(name):
                result = self.restore(payload, "print('ran')")
                self.assertEqual(result["error_code"], "snapshot_restore_failed", result["stderr"])
                self.assertNotIn("ran", result["stdout"])
                self.assertFalse(result.get("out_of_memory"))
                self.assertFalse(result.get("crashed"))


class FilesArchiveCompressionTest(unittest.TestCase):
    def test_incompressible_files_are_stored_after_a_sample_only(self) -> None:
        random_file = workfiles.Entry("data.bin", workfiles.KIND_FILE, 0o600, os.urandom(4 * 1024 * 1024))
        with mock.patch.object(workfiles.zlib, "compress", wraps=zlib.compress) as compress:
            archive = workfiles.encode_archive([random_file])
        self.assertEqual(archive[:1], b"n")
        self.assertLessEqual(max(len(memoryview(c.args[0])) for c in compress.call_args_list), 64 * 1024)
        self.assertEqual(workfiles.decode_archive(archive), [random_file])

    def test_compressible_files_are_compressed(self) -> None:
        text = workfiles.Entry("notes.txt", workfiles.KIND_FILE, 0o600, b"line of text\n" * 300_000)
        archive = workfiles.encode_archive([text])
        self.assertEqual(archive[:1], b"z")
        self.assertLess(len(archive), len(text.data) // 10)
        self.assertEqual(workfiles.decode_archive(archive), [text])
