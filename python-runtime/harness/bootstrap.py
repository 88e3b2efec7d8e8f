"""The runtime loop inside an emulated Lambda environment (runs as the environment's uid).

    python3 -m harness.bootstrap <channel fd>

What awslambdaric does around a handler, over a private channel instead of the Runtime API:
import the handler module (its init phase), then for each invocation build a context
(``aws_request_id``, ``tenant_id``, ``function_name``, ``get_remaining_time_in_millis``), call
``coding_env_runtime.handler.handler`` (the image's CMD), and serialize the return value as the
runtime client does (simplejson, ``ensure_ascii`` off on the Python 3.12+ images, with
control characters and U+2028/U+2029 escaped). The serialization is written here on its own,
not borrowed from the handler, so a sizing mistake in the handler shows up as a reply Lambda
would refuse. An exception becomes ``{"errorMessage", "errorType", "requestId",
"stackTrace"}``, as the client reports it.

Frames on the channel: 4-byte big-endian length + bytes. Harness -> runtime: a JSON header,
then the raw event. Runtime -> harness: first ``{"ready": true}`` once initialized, then per
invocation a JSON header ``{"error": bool}`` and the serialized body.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import struct
import sys
import time
import traceback
from typing import Any

_UTF8_ENVS = {f"AWS_Lambda_python3.{minor}" for minor in (12, 13, 14, 15)}


def send_frame(sock: socket.socket, data: bytes) -> None:
    sock.sendall(struct.pack("!I", len(data)) + data)


def recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack("!I", recv_exact(sock, 4))
    return recv_exact(sock, size)


def lambda_serialize(value: Any) -> bytes:
    """The runtime client's encoding of a handler's return value.

    The client encodes with the simplejson release it pins, which escapes U+2028 and U+2029
    even with ``ensure_ascii`` off; a simplejson installed on this machine may be another release
    (Debian's 3.18 does not escape them), so the encoding is reproduced with the standard library
    instead of importing whatever is installed.
    """
    ensure_ascii = os.environ.get("AWS_EXECUTION_ENV") not in _UTF8_ENVS
    text = json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=True)
    if not ensure_ascii:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")


class Context:
    def __init__(self, header: dict[str, Any]) -> None:
        self.aws_request_id = header["request_id"]
        self.tenant_id = header.get("tenant_id")
        self.function_name = header.get("function_name") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.invoked_function_arn = header.get("function_arn")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self._deadline_ms = header["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        return max(int(self._deadline_ms - time.time() * 1000), 0)


def main() -> None:
    channel = socket.socket(fileno=int(sys.argv[1]))
    os.set_inheritable(channel.fileno(), False)
    # Like the runtime itself: same-uid user code must not read this process's memory or fds.
    # The C library already loaded (find_library would run ldconfig in a child process).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, ctypes.c_ulong(0), 0, 0, 0)  # PR_SET_DUMPABLE 0
    from coding_env_runtime import handler as module  # the init phase (AWS_LAMBDA_RUNTIME_API set)

    send_frame(channel, json.dumps({"ready": True}).encode())
    while True:
        try:
            header = json.loads(recv_frame(channel))
            payload = recv_frame(channel)
        except EOFError:
            return
        error = False
        try:
            body = lambda_serialize(module.handler(json.loads(payload), Context(header)))
        except Exception as exc:  # noqa: BLE001 - reported as the runtime client does
            error = True
            body = lambda_serialize({
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "requestId": header["request_id"],
                "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
            })
        send_frame(channel, json.dumps({"error": error}).encode())
        send_frame(channel, body)


if __name__ == "__main__":
    main()
