"""Attacks on the episode's files archive (workfiles.py) and the files operation (files_op.py),
which the runtime parent answers itself from a snapshot. The archive is a worker's output, so a
tenant with all of Python forges it at will (it patches the worker's packing, or writes its own
reply). Each test asserts the safe outcome and fails without the protection it names.
tests/test_attack_lambda_reply.py sends the same archives through the Lambda-mode harness."""

from __future__ import annotations

import struct
import unittest
import zlib

from coding_env_runtime import cell, files_op, handler, snapshot, workfiles
from coding_env_runtime.files_op import FilesRequest
from coding_env_runtime.policy import ImportPolicy

_ENTRY = struct.Struct("!BHHQ")


def snapshot_with_archive(archive: bytes) -> str:
    """A snapshot whose files are ``archive`` (its state part, which the files operation never
    reads, is an empty stored pickle)."""
    return snapshot.encode(workfiles.join_payload(archive, b"n"))


def zlib_bomb(size: int) -> bytes:
    """An archive of one file of ``size`` zero bytes (a multiple of 1 MiB): a few hundred KiB
    compressed, one valid zlib stream. Deflating every MiB took a second of CPU: after a full
    flush the deflater keeps no history, so each MiB of zeros compresses to the same bytes, made
    once and repeated; the stream's checksum is then computed over all of it."""
    head = _ENTRY.pack(workfiles.KIND_FILE, 0o600, 4, size) + b"bomb"
    chunk = bytes(1 << 20)
    deflater = zlib.compressobj(9)
    start = deflater.compress(head) + deflater.flush(zlib.Z_FULL_FLUSH)
    block = deflater.compress(chunk) + deflater.flush(zlib.Z_FULL_FLUSH)
    if deflater.compress(chunk) + deflater.flush(zlib.Z_FULL_FLUSH) != block:
        raise AssertionError("a full flush no longer makes each MiB's deflated bytes the same")
    end = deflater.flush()  # the last block, then the checksum of what this deflater saw
    checksum = zlib.adler32(head)
    for _ in range(size >> 20):
        checksum = zlib.adler32(chunk, checksum)
    return b"z" + start + block * (size >> 20) + end[:-4] + struct.pack("!I", checksum)


def many_entries(count: int) -> bytes:
    """An archive of ``count`` empty files, compressed: ~100 bytes per thousand entries."""
    body = b"".join(_ENTRY.pack(workfiles.KIND_FILE, 0o600, 8, 0) + b"f%07d" % i for i in range(count))
    return b"z" + zlib.compress(body, 9)


#: The snapshot of an empty namespace with no files, as ``Runtime.empty_snapshot`` makes it (here
#: without starting a runtime and its spare interpreter, which these tests never use).
EMPTY_SNAPSHOT = snapshot.encode(cell.save_namespace(cell.new_namespace(ImportPolicy())).payload)


class ForgedArchiveTest(unittest.TestCase):
    def files(self, action: str, snap: str, path: str | None = None) -> dict:
        return files_op.answer(FilesRequest("t", "ep", action, snap, path), EMPTY_SNAPSHOT)

    def test_a_zlib_bomb_is_refused_before_it_is_inflated(self) -> None:
        # 200 MiB of zeros in ~200 KiB (what a request may carry; a state in S3 may be 256 MiB,
        # i.e. ~250 GB inflated): the parent inflated it whole, in the executor that serves
        # every tenant (root mode), before looking at it.
        bomb = snapshot_with_archive(zlib_bomb(200 * 2**20))
        self.assertLess(len(bomb), 1 << 20)
        for action, path in (("list", None), ("read", "bomb"), ("write", "other")):
            reply = self.files(action, bomb, path)
            self.assertEqual(reply.get("error_code"), "snapshot_incompatible", (action, str(reply)[:200]))

    def test_an_archive_of_millions_of_entries_is_refused(self) -> None:
        # Packing keeps at most MAX_FILES entries; a forged archive of 300,000 empty files took
        # ~30 KiB and its listing ~10 MB, past Lambda's 6 MB reply.
        reply = self.files("list", snapshot_with_archive(many_entries(300_000)))
        self.assertEqual(reply.get("error_code"), "snapshot_incompatible", str(reply)[:200])

    def test_archives_packing_makes_are_still_read(self) -> None:
        entries = [workfiles.Entry(f"d/f{i}", workfiles.KIND_FILE, 0o600, b"x" * 100) for i in range(workfiles.MAX_FILES - 1)]
        entries.append(workfiles.Entry("d", workfiles.KIND_DIR, 0o700))
        reply = self.files("list", snapshot_with_archive(workfiles.encode_archive(entries)))
        self.assertEqual(len(reply["files"]), workfiles.MAX_FILES - 1)
        big = [workfiles.Entry("big", workfiles.KIND_FILE, 0o600, bytes(workfiles.MAX_FILES_BYTES))]
        self.assertEqual(workfiles.decode_archive(workfiles.encode_archive(big)), big)


class UnstorableNamesTest(unittest.TestCase):
    @classmethod
    def tearDownClass(cls) -> None:
        handler.shutdown()

    def test_a_file_name_the_archive_refuses_cannot_make_the_episode_unusable(self) -> None:
        # A cell's file named `a\b` was packed, then refused by every later read of the archive:
        # each cold restore failed (snapshot_restore_failed, for good) and the episode's file
        # listing failed (502 through the API). A name that is not UTF-8 could not be listed in
        # Lambda's UTF-8 reply. Both are now left out of the state and reported.
        code = "open('a\\\\b', 'w').write('x'); open(b'\\xff', 'w').write('y'); open('kept', 'w').write('z')"
        first = handler.handler({"contract_version": 1, "episode_id": "names", "state_version": 0, "snapshot": None,
                                 "code": code, "policy": {"mode": "full"}})
        self.assertEqual(first["exit_code"], 0, first["stderr"])
        self.assertEqual(sum(d["name"].startswith("file:") for d in first["dropped"]), 2, first["dropped"])
        listed = handler.handler({"op": "files", "episode_id": "names", "action": "list", "snapshot": first["snapshot"]})
        self.assertEqual(listed.get("files"), [{"path": "kept", "size": 1}], listed)
        handler.serialize_reply(listed, ensure_ascii=False)
        # A cold restore (another episode id: no warm worker) of that state works.
        restored = handler.handler({"contract_version": 1, "episode_id": "names-2", "state_version": 1,
                                    "snapshot": first["snapshot"], "code": "import os; print(sorted(os.listdir()))",
                                    "policy": {"mode": "full"}})
        self.assertEqual((restored["error_code"], restored["stdout"]), (None, "['kept']\n"), restored["stderr"])


if __name__ == "__main__":
    unittest.main()
