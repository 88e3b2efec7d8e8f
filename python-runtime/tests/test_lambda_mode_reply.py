"""The handler's reply fits Lambda's 6 MB as the runtime interface client serializes it.

No harness needed: the handler's sizing is checked against the harness bootstrap's own
serialization of the client's encoding (written separately, see harness/bootstrap.py).
"""

from __future__ import annotations

import json
import os
import random
import sys
import unittest
from pathlib import Path
from unittest import mock

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

from coding_env_runtime import handler  # noqa: E402
from harness.bootstrap import lambda_serialize  # noqa: E402

#: Characters that cost more than one byte serialized, in one encoding or the other.
AWKWARD = ["\x00", "\x1f", "a", "\\", '"', "\u2028", "\u2029", "é", "中", "😀", "\n", "\x7f", "\ufffd"]


def reply(stdout: str = "", stderr: str = "", snapshot: str = "QUJD", **extra: object) -> dict:
    return {
        "contract_version": 1, "runtime_version": "1.0.0+py3.12", "stdout": stdout, "stderr": stderr,
        "exit_code": 0, "snapshot": snapshot, "state_version": 1, "snapshot_bytes": len(snapshot),
        "dropped": [], "duration_ms": 1.5, "timed_out": False, "out_of_memory": False, "crashed": False,
        "stdout_truncated": False, "stderr_truncated": False, "warm": False, "error_code": None, **extra,
    }


def serialized_by_the_client(value: dict, ensure_ascii: bool) -> bytes:
    env = "AWS_Lambda_python3.11" if ensure_ascii else "AWS_Lambda_python3.12"
    with mock.patch.dict(os.environ, {"AWS_EXECUTION_ENV": env}):
        return lambda_serialize(value)


class FitReplyTest(unittest.TestCase):
    def test_random_awkward_text_is_cut_to_the_limit_in_both_encodings(self) -> None:
        rng = random.Random(7)
        for ensure_ascii in (True, False):
            for _ in range(100):
                # choices(k=n), not n choice() calls: the same random text at a tenth of the CPU.
                out = "".join(rng.choices(AWKWARD, k=rng.choice([10, 3000, 30000])))
                err = "".join(rng.choices(AWKWARD, k=rng.choice([0, 50, 20000])))
                limit = rng.randint(9000, 80000)
                result = reply(out, err)
                refused = handler.fit_reply(result, None, lambda: "E", ensure_ascii, limit=limit)
                data = serialized_by_the_client(result, ensure_ascii)
                self.assertFalse(refused)
                self.assertLessEqual(len(data), limit)
                back = json.loads(data)
                self.assertTrue(out.startswith(back["stdout"]) and err.startswith(back["stderr"]))
                self.assertEqual(back["stdout_truncated"], back["stdout"] != out)
                self.assertEqual(back["stderr_truncated"], back["stderr"] != err)
                if back["stdout_truncated"] or back["stderr_truncated"]:
                    self.assertGreater(len(data), limit - 30)  # cut tight, not emptied

    def test_a_megabyte_of_nul_fits_six_megabytes(self) -> None:
        for ensure_ascii in (True, False):
            result = reply("\x00" * 2**20, "Traceback: \x00\n" * 10)
            handler.fit_reply(result, None, lambda: "E", ensure_ascii)
            data = serialized_by_the_client(result, ensure_ascii)
            self.assertLessEqual(len(data), handler.REPLY_LIMIT_BYTES)
            self.assertGreater(len(data), handler.REPLY_LIMIT_BYTES - 100)
            self.assertTrue(result["stdout_truncated"])

    def test_a_state_that_cannot_fit_is_refused_with_the_input_snapshot(self) -> None:
        result = reply("out", "err", snapshot="A" * 6_500_000, dropped=[{"name": "f", "type": "TextIOWrapper"}])
        refused = handler.fit_reply(result, "SU5QVVQ=", lambda: "EMPTY", False)
        self.assertTrue(refused)
        self.assertEqual((result["snapshot"], result["snapshot_bytes"]), ("SU5QVVQ=", 8))
        self.assertEqual((result["error_code"], result["exit_code"], result["dropped"]), ("state_too_large", 1, []))
        self.assertTrue(result["stderr"].startswith("MemoryError"))
        fresh = reply(snapshot="A" * 6_500_000)
        handler.fit_reply(fresh, None, lambda: "EMPTY", False)
        self.assertEqual(fresh["snapshot"], "EMPTY")

    def test_u2028_costs_six_bytes_with_utf8_replies(self) -> None:
        # simplejson escapes U+2028/U+2029 even with ensure_ascii=False; the stdlib does not.
        result = reply("\u2028" * 2_000_000)
        handler.fit_reply(result, None, lambda: "E", False)
        self.assertLessEqual(len(serialized_by_the_client(result, False)), handler.REPLY_LIMIT_BYTES)

    def test_lone_surrogates_in_names_cannot_break_the_client(self) -> None:
        result = reply(dropped=[{"name": "\ud800evil", "type": "TextIOWrapper"}], error_code="x\udfff")
        handler.fit_reply(result, None, lambda: "E", False)
        serialized_by_the_client(result, False)  # .encode("utf-8") would raise on a lone surrogate
        self.assertEqual(result["dropped"][0]["name"], "?evil")

    def test_the_encoding_follows_the_image(self) -> None:
        with mock.patch.dict(os.environ, {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}):
            self.assertFalse(handler.ric_ensure_ascii())
        with mock.patch.dict(os.environ, {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.11"}):
            self.assertTrue(handler.ric_ensure_ascii())
        for ensure_ascii in (True, False):
            value = reply("é\u2028\x00😀", "\\\"")
            self.assertEqual(handler.serialize_reply(value, ensure_ascii), serialized_by_the_client(value, ensure_ascii))

    def test_an_input_snapshot_that_could_not_be_returned_is_refused_before_running(self) -> None:
        from coding_env_runtime.contract import EventError

        event = {"episode_id": "huge", "code": "1", "state_version": 1, "snapshot": "A" * 5_995_000}
        with self.assertRaises(EventError):
            handler.handler(event, None)


if __name__ == "__main__":
    unittest.main()
