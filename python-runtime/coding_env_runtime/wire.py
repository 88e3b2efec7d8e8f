"""Length-prefixed frames between the runtime and its zygote/workers.

A frame is ``!II`` (header length, payload length), a JSON header, then raw payload bytes.
Headers are JSON (never pickle): the runtime must not unpickle anything a worker sends, since a
worker has run untrusted code.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # the zygote and its workers do without the ``socket`` module (zygote.py)
    from _socket import socket as Socket

#: A frame's payload: one buffer, or several sent one after another without joining them (a
#: state's pickle stream and its out-of-band buffers, ``cell.py``).
Payload = Union[bytes, bytearray, memoryview, Sequence[Union[bytes, bytearray, memoryview]]]

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


def _parts(payload: Payload) -> list[memoryview]:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        payload = [payload]
    return [memoryview(p).cast("B") for p in payload]


def send_frame(sock: Socket, header: dict[str, Any], payload: Payload = b"") -> None:
    encoded = json.dumps(header, separators=(",", ":")).encode()
    parts = _parts(payload)
    sock.sendall(_PREFIX.pack(len(encoded), sum(p.nbytes for p in parts)) + encoded)
    for part in parts:
        if part.nbytes:
            sock.sendall(part)


def _recv_exact(sock: Socket, size: int, deadline: float | None) -> bytearray:
    buf = bytearray(size)
    _recv_into(sock, memoryview(buf), deadline)
    return buf


def _recv_into(sock: Socket, view: memoryview, deadline: float | None) -> None:
    size = view.nbytes
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


def recv_frame(
    sock: Socket,
    *,
    deadline: float | None = None,
    max_header: int = 64 * 1024 * 1024,
    max_payload: int = 512 * 1024 * 1024,
    payload_prefix: bytes | None = None,
) -> tuple[dict[str, Any], bytes | bytearray]:
    """Read one frame; ``deadline`` is a ``time.monotonic()`` value or None to block.

    With ``payload_prefix`` the payload comes back as one bytearray holding the prefix and then
    the payload (a snapshot's envelope header before the worker's state: no second copy of
    hundreds of MiB to prepend it)."""
    header, payload_len = recv_frame_header(sock, deadline=deadline, max_header=max_header, max_payload=max_payload)
    if payload_prefix is not None:
        payload: bytes | bytearray = bytearray(len(payload_prefix) + payload_len)
        payload[: len(payload_prefix)] = payload_prefix
        _recv_into(sock, memoryview(payload)[len(payload_prefix) :], deadline)
    else:
        payload = bytes(_recv_exact(sock, payload_len, deadline)) if payload_len else b""
    if deadline is None:
        sock.settimeout(None)
    return header, payload


def recv_frame_header(
    sock: Socket,
    *,
    deadline: float | None = None,
    max_header: int = 64 * 1024 * 1024,
    max_payload: int = 512 * 1024 * 1024,
) -> tuple[dict[str, Any], int]:
    """A frame's header and its payload's length, checked against ``max_payload``; the payload
    is left on the socket (``recv_frame`` or a ``PayloadReader`` reads it)."""
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
    if deadline is None:
        sock.settimeout(None)
    return header, payload_len


class PayloadReader:
    """Reads a frame's payload piece by piece straight into the buffers that keep it (a restored
    array's own memory), never past the payload's announced length."""

    def __init__(self, sock: Socket | None, size: int, data: bytes | bytearray | memoryview = b"") -> None:
        #: Reads from ``sock``, or (``sock`` None) from ``data``, a payload already in memory.
        self._sock = sock
        self._data = memoryview(data).cast("B")
        self._offset = 0
        self._peeked = b""
        self.remaining = size if sock is not None else self._data.nbytes

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview) -> PayloadReader:
        return cls(None, 0, data)

    def readinto(self, view: memoryview) -> None:
        size = view.nbytes
        if size > self.remaining:
            raise WireError("the payload is shorter than its contents announce")
        if size and self._peeked:
            view[:1] = self._peeked
            self._peeked = b""
            self.remaining -= 1
            view, size = view[1:], size - 1
        if self._sock is None:
            view[:] = self._data[self._offset : self._offset + size]
            self._offset += size
        elif size:
            _recv_into(self._sock, view, None)
        self.remaining -= size

    def read(self, size: int) -> bytearray:
        if size > self.remaining:  # checked before allocating
            raise WireError("the payload is shorter than its contents announce")
        buf = bytearray(size)
        self.readinto(memoryview(buf))
        return buf

    def peek_byte(self) -> bytes:
        """The next byte, left unread (``b""`` at the end)."""
        if not self._peeked and self.remaining:
            self._peeked = bytes(self.read(1))
            self.remaining += 1
        return self._peeked

    def drain(self) -> None:
        """Read and drop the rest (the sender is blocked until the whole payload is read)."""
        scratch = memoryview(bytearray(min(self.remaining, 1 << 20)))
        while self.remaining:
            self.readinto(scratch[: min(self.remaining, scratch.nbytes)])
