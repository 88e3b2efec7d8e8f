"""Length-prefixed frames between the runtime and its zygote/workers.

A frame is ``!II`` (header length, payload length), a JSON header, then raw payload bytes.
Headers are JSON (never pickle): the runtime must not unpickle anything a worker sends, since a
worker has run untrusted code.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

_PREFIX = struct.Struct("!II")


class WireError(Exception):
    """The peer closed the connection, sent a malformed frame, or went past a size cap."""


class WireTimeout(WireError):
    """The deadline passed before a whole frame arrived."""


class PeerClosed(WireError):
    """The peer closed the connection (a worker that exited or died)."""


class FrameTooLarge(WireError):
    """The peer announced a frame above the cap; nothing of it was read."""

    def __init__(self, header_len: int, payload_len: int) -> None:
        super().__init__(f"frame too large ({header_len} + {payload_len} bytes)")
        self.payload_len = payload_len


def send_frame(sock: socket.socket, header: dict[str, Any], payload: bytes = b"") -> None:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    sock.sendall(_PREFIX.pack(len(encoded), len(payload)) + encoded)
    if payload:
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, size: int, deadline: float | None) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WireTimeout("deadline passed")
            sock.settimeout(remaining)
        try:
            n = sock.recv_into(view[got:], size - got)
        except TimeoutError as exc:
            raise WireTimeout("deadline passed") from exc
        except OSError as exc:
            raise PeerClosed(f"connection broken: {exc}") from exc
        if n == 0:
            raise PeerClosed("connection closed")
        got += n
    return buf


def recv_frame(
    sock: socket.socket,
    *,
    deadline: float | None = None,
    max_header: int = 64 * 1024 * 1024,
    max_payload: int = 512 * 1024 * 1024,
) -> tuple[dict[str, Any], bytes]:
    """Read one frame; ``deadline`` is a ``time.monotonic()`` value or None to block."""
    header_len, payload_len = _PREFIX.unpack(_recv_exact(sock, _PREFIX.size, deadline))
    if header_len > max_header:
        raise WireError(f"frame header too large ({header_len} bytes)")
    if payload_len > max_payload:
        raise FrameTooLarge(header_len, payload_len)
    try:
        header = json.loads(bytes(_recv_exact(sock, header_len, deadline)))
    except (ValueError, RecursionError) as exc:  # nesting past the parser's limit: RecursionError
        raise WireError("malformed frame header") from exc
    if not isinstance(header, dict):
        raise WireError("malformed frame header")
    payload = bytes(_recv_exact(sock, payload_len, deadline)) if payload_len else b""
    if deadline is None:
        sock.settimeout(None)
    return header, payload
