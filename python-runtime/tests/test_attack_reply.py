"""Attacks on the worker -> runtime reply (wire.py, runtime.py) by a tenant with all of Python:
user code runs in the worker's process, so it can rewrite every field of the reply the worker
sends. Each test asserts the safe outcome and fails without the protection it names. Runs in the
mode of the process (root mode as root); tests/test_attack_lambda_reply.py runs the same attacks
through the Lambda-mode harness."""

from __future__ import annotations

import hashlib
import json
import os
import unittest
import uuid

from coding_env_runtime import handler
from tests.support import RuntimeTestCase
from tests.test_state_in_s3 import ObjectServer

#: A cell that makes the worker's reply carry ``fields`` (a Python expression; the worker's module
#: globals are user code's to change: it patches the function that sends the reply).
FORGE_REPLY = """
import sys
frame = sys._getframe()
while frame is not None and "send_frame" not in frame.f_globals:
    frame = frame.f_back
real_send = frame.f_globals["send_frame"]
def forged_send(sock, header, payload=b""):
    if header.get("op") == "result":
        header = {{**header, **({fields})}}
    return real_send(sock, header, payload)
frame.f_globals["send_frame"] = forged_send
kept = 42
"""

#: A display bundle whose metadata nests ``depth`` dicts (Jupyter's is a few numbers per type).
DEEP_METADATA = """
class Deep:
    def _repr_html_(self):
        metadata = {{}}
        for _ in range({depth}):
            metadata = {{"a": metadata}}
        return ("<b>deep</b>", metadata)
display(Deep())
"""

#: Sends the runtime a whole reply frame with descriptors attached (a memfd named ``name``);
#: the worker's own reply follows it.
PASS_FD = """
import json, os, socket, struct
channel = socket.fromfd(3, socket.AF_UNIX, socket.SOCK_STREAM)
fd = os.memfd_create({name!r})
header = json.dumps({{"op": "result", "exit_code": 0, "dropped": []}}).encode()
socket.send_fds(channel, [struct.pack("!II", len(header), 0) + header], [fd] * 8)
"""


def handler_step(episode_id: str, code: str, snapshot: str | None = None, version: int = 0) -> dict:
    """One step through the executor's real handler, and its reply as Lambda's client encodes it."""
    reply = handler.handler({
        "contract_version": 1, "episode_id": episode_id, "state_version": version, "snapshot": snapshot,
        "code": code, "policy": {"mode": "full"},
    })
    json.loads(handler.serialize_reply(reply, ensure_ascii=False))  # the client's encoding holds
    return reply


class ForgedFieldsTest(RuntimeTestCase):
    def test_a_cell_cannot_report_a_runtime_error_code(self) -> None:
        # The API answers a `busy` step 409 and meters nothing ("nothing ran"), and answers
        # `state_too_large` 413: a cell that forged `busy` ran unmetered, every step.
        for forged in ("busy", "state_too_large", "timeout", ["busy"], {"a": 1}):
            ep = self.full_episode()
            result = ep.step(FORGE_REPLY.format(fields=repr({"error_code": forged})))
            self.assertEqual((result["exit_code"], result["error_code"]), (0, None), (forged, result["stderr"]))
            # The warm worker still forges: its later steps are not `busy` either, and ran.
            later = ep.step("print(kept)")
            self.assertEqual((later["stdout"], later["error_code"], later["warm"]), ("42\n", None, True), later["stderr"])

    def test_the_codes_a_worker_gives_about_its_own_step_stay(self) -> None:
        result = self.episode().step("1 +")
        self.assertEqual((result["exit_code"], result["error_code"]), (1, "syntax_error"))

    def test_a_forged_exit_code_is_clamped_and_dropped_names_are_plain_strings(self) -> None:
        fields = '{"exit_code": 2**70, "dropped": [3] + [{"name": {"x": 1}, "type": "t" * 300}] * 1500}'
        result = self.full_episode().step(FORGE_REPLY.format(fields=fields))
        self.assertEqual(result["exit_code"], 1)
        self.assertEqual((result["error_code"], len(result["dropped"])), (None, 999), result["stderr"])
        self.assertTrue(all(len(d["type"]) <= 200 and isinstance(d["name"], str) for d in result["dropped"]))


class DisplayMetadataTest(RuntimeTestCase):
    @classmethod
    def tearDownClass(cls) -> None:
        handler.shutdown()
        super().tearDownClass()

    def test_deeply_nested_display_metadata_cannot_fail_the_invocation(self) -> None:
        # Nested 500 deep it passed the reply's parser (the runtime reads it before recursing
        # far) but the handler's sizing of the reply recursed past Python's limit: the whole
        # invocation failed with RecursionError (a runtime failure, 502 through the API).
        episode_id = f"deep-{uuid.uuid4().hex[:8]}"
        reply = handler_step(episode_id, DEEP_METADATA.format(depth=500))
        self.assertEqual(reply["exit_code"], 0, reply["stderr"])
        self.assertEqual(reply["display"], [{"data": {"text/html": "<b>deep</b>", "text/plain": reply["display"][0]["data"]["text/plain"]}, "metadata": {}}])
        # Jupyter's own kind of metadata is kept.
        shallow = handler_step(
            episode_id,
            "class P:\n    def _repr_html_(self):\n        return ('<i>p</i>', {'width': 3, 'size': [1, 2]})\ndisplay(P())",
            reply["snapshot"],
            1,
        )
        self.assertEqual(shallow["display"][0]["metadata"], {"text/html": {"width": 3, "size": [1, 2]}})


class DescriptorPassingTest(RuntimeTestCase):
    def test_descriptors_sent_on_the_reply_channel_never_reach_the_runtime(self) -> None:
        # The runtime reads its channel without ancillary data: the kernel drops what was
        # passed. (The forged frame itself is taken as the reply or makes the step a crash:
        # either only concerns this episode.)
        name = f"attack-{uuid.uuid4().hex}"
        self.full_episode().step(PASS_FD.format(name=name))
        held = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                held.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                continue
        self.assertFalse([link for link in held if name in link])
        self.assertEqual(self.episode().step("print(6 * 7)")["stdout"], "42\n")


class ForgedStateObjectTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.s3 = ObjectServer()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.s3.close()
        handler.shutdown()

    def test_a_cell_cannot_name_the_state_object_its_size_or_digest(self) -> None:
        # The object key, size and SHA-256 the API records come from the event and from the
        # bytes the runtime itself sent: whatever a worker's reply claims is ignored.
        fields = repr({"state_ref": "tenant-b/episode/1", "state_location": "put", "state_bytes": 1,
                       "state_sha256": "0" * 64, "snapshot": "", "snapshot_bytes": 1})
        code = FORGE_REPLY.format(fields=fields) + "blob = os.urandom(64 * 1024)\n"
        put_ref = f"forged-{uuid.uuid4().hex[:8]}"
        reply = handler.handler({
            "contract_version": 1, "episode_id": put_ref, "state_version": 0, "code": "import os\n" + code,
            "policy": {"mode": "full"},
            "state": {"put_url": f"{self.s3.url}/{put_ref}", "put_ref": put_ref, "inline_max_bytes": 1024},
        })
        self.assertEqual(reply["exit_code"], 0, reply["stderr"])
        stored = self.s3.objects[f"/{put_ref}"]
        self.assertEqual(
            (reply["state_location"], reply["state_ref"], reply["state_bytes"], reply["state_sha256"]),
            ("put", put_ref, len(stored), hashlib.sha256(stored).hexdigest()),
        )
        self.assertGreater(len(stored), 64 * 1024)
        self.assertEqual([path for _method, path in self.s3.requests], [f"/{put_ref}"])
