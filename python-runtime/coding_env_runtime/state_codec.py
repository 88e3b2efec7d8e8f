"""The worker's state payload after its files (``workfiles.py``): one codec byte and the pickle.

Codec ``p`` (out-of-band): the pickle stream and each large buffer it refers to (an array's data,
protocol 5's ``PickleBuffer``) stored side by side, so neither saving nor restoring ever copies an
array into or out of the pickle stream: saving sends the arrays' own memory, restoring reads each
buffer from the socket straight into the memory the restored array keeps. Layout: ``p``, ``!I``
buffer count, then per item (the pickle stream first, then each buffer in order) ``!B codec, !Q
stored length, !Q length``, then the items' stored bytes in the same order; each item is ``z``
(zlib) or ``n`` (stored). Codecs ``z`` and ``n`` alone (one in-band pickle, zlib or stored) are what
snapshots written before hold; they are still read. Runs only in the sandboxed worker.
"""

from __future__ import annotations

import struct
import zlib

from .wire import PayloadReader

#: zlib level for states and files archives alike.
ZLIB_LEVEL = 1
#: Payload codecs (first byte of the worker's payload): zlib, or stored as is.
CODEC_ZLIB = b"z"
CODEC_NONE = b"n"
_SAMPLE_BYTES = 64 * 1024
#: Compress only if a sample shrinks below this ratio: zlib on incompressible data (random
#: bytes, floats) costs ~20-40 ms per MB for a few percent.
WORTH_COMPRESSING = 0.85


CODEC_OUT_OF_BAND = b"p"
_COUNT = struct.Struct("!I")
_ITEM = struct.Struct("!BQQ")
#: Buffers smaller than this stay in the pickle stream.
OUT_OF_BAND_MIN = 64 * 1024
#: zlib's largest expansion is about 1032:1; a table claiming more is refused before allocating.
_MAX_ZLIB_RATIO = 1100
_DECOMPRESS_CHUNK = 4 * 1024 * 1024


def worth_compressing(raw: memoryview) -> bool:
    """Whether a sample of ``raw`` (its start and middle) shrinks enough under zlib."""
    if raw.nbytes <= 2 * _SAMPLE_BYTES:
        return True
    middle = raw.nbytes // 2
    sample = bytes(raw[: _SAMPLE_BYTES // 2]) + bytes(raw[middle : middle + _SAMPLE_BYTES // 2])
    return len(zlib.compress(sample, ZLIB_LEVEL)) <= WORTH_COMPRESSING * len(sample)


def _encode_item(raw: memoryview) -> tuple[bytes, memoryview | bytes]:
    """``(table entry, stored bytes)``: zlib if a sample shrinks enough, else the bytes as they are."""
    if worth_compressing(raw):
        packed = zlib.compress(raw, ZLIB_LEVEL)
        return _ITEM.pack(CODEC_ZLIB[0], len(packed), raw.nbytes), packed
    return _ITEM.pack(CODEC_NONE[0], raw.nbytes, raw.nbytes), raw


def encode_state(stream: bytes, buffers: list[memoryview]) -> list[bytes | memoryview]:
    table = [CODEC_OUT_OF_BAND, _COUNT.pack(len(buffers))]
    stored: list[bytes | memoryview] = []
    for raw in (memoryview(stream), *buffers):
        entry, data = _encode_item(raw)
        table.append(entry)
        stored.append(data)
    return [b"".join(table), *stored]


def _read_item(reader: PayloadReader, codec: int, stored: int, length: int) -> bytearray:
    """One item read straight into its own buffer (which a restored array then keeps)."""
    if codec == CODEC_NONE[0]:
        if stored != length:
            raise ValueError("malformed snapshot table")
        return reader.read(length)
    if codec != CODEC_ZLIB[0] or length > stored * _MAX_ZLIB_RATIO + 64:
        raise ValueError("malformed snapshot table")
    out = bytearray(length)
    view = memoryview(out)
    inflater = zlib.decompressobj()
    filled = 0
    left = stored
    while left or inflater.unconsumed_tail:
        if inflater.unconsumed_tail:
            chunk = inflater.unconsumed_tail
        else:
            chunk = bytes(reader.read(min(left, _DECOMPRESS_CHUNK)))
            left -= len(chunk)
        piece = inflater.decompress(chunk, max(length - filled, 1))
        if filled + len(piece) > length:
            raise ValueError("a snapshot item is longer than its table says")
        view[filled : filled + len(piece)] = piece
        filled += len(piece)
        if inflater.eof:
            break
    if filled != length or left or not inflater.eof:
        raise ValueError("a snapshot item is shorter than its table says")
    return out


def read_state(reader: PayloadReader) -> tuple[bytes | bytearray, list[bytearray]]:
    """The pickle stream and its out-of-band buffers, from the rest of the payload."""
    codec = bytes(reader.read(1))
    if codec == CODEC_OUT_OF_BAND:
        (count,) = _COUNT.unpack(reader.read(_COUNT.size))
        if (count + 1) * _ITEM.size > reader.remaining:
            raise ValueError("malformed snapshot table")
        table = reader.read((count + 1) * _ITEM.size)
        items = [_ITEM.unpack_from(table, i * _ITEM.size) for i in range(count + 1)]
        if sum(stored for _codec, stored, _length in items) != reader.remaining:
            raise ValueError("malformed snapshot table")
        stream = _read_item(reader, *items[0])
        return stream, [_read_item(reader, *item) for item in items[1:]]
    # Snapshots written before out-of-band buffers: one pickle, zlib or stored.
    body = reader.read(reader.remaining)
    if codec == CODEC_ZLIB:
        return zlib.decompress(body), []
    if codec == CODEC_NONE:
        return body, []
    raise ValueError("unknown snapshot codec")
