"""The episode's working directory as part of its state: a compact archive next to the pickle.

Worker payload layout: ``b"F" + !I archive length + archive + state payload`` (the state payload
is the codec byte and pickle of ``state_codec.py``; a payload starting with anything but ``F`` has no
files, as every snapshot written before files were kept). The archive is one codec byte
(``z`` zlib, ``n`` stored) and a body of entries ``!B kind, !H mode, !H path length, !Q size,
path (UTF-8, relative, "/"-separated), data`` (kind 0 = regular file, 1 = directory).

The archive is plain data, never a pickle: the runtime parent and the ``files`` operation read
and rewrite it without running user code. Packing keeps regular files and directories only:
symlinks, devices, sockets, FIFOs, unreadable entries and anything past the count or size caps
are left out and reported (they are gone after the step, warm or cold alike).
"""

from __future__ import annotations

import os
import stat
import struct
import zlib
from typing import NamedTuple

from .state_codec import WORTH_COMPRESSING, ZLIB_LEVEL, worth_compressing
from .wire import PayloadReader

#: At most this many entries (files and directories) are kept.
MAX_FILES = 1000
#: At most this many bytes of file contents are kept (the state's own cap applies on top).
MAX_FILES_BYTES = 64 * 1024 * 1024
MAX_PATH_BYTES = 1024
KIND_FILE = 0
KIND_DIR = 1
_MARKER = b"F"
_LEN = struct.Struct("!I")
_ENTRY = struct.Struct("!BHHQ")
#: The largest archive body packing can make (its caps on entries, contents and path lengths).
#: An archive is a worker's output, so user code can forge one: the runtime parent decompresses it
#: for the files operation, and a zlib bomb or millions of empty entries must be refused before
#: they cost memory there, or fill the reply (``list``).
MAX_ARCHIVE_BODY_BYTES = MAX_FILES_BYTES + MAX_FILES * (_ENTRY.size + MAX_PATH_BYTES)


class ArchiveError(ValueError):
    """The archive is malformed or an entry is refused (a path escaping the directory)."""


# Entry and Packed are not dataclasses: every zygote imports this module (one per episode), and
# ``dataclasses`` (with ``inspect``) and the methods it generates were ~7% of a zygote's start
# (with cloudpickle 2.2; cloudpickle 3 imports dataclasses itself).


class Entry(NamedTuple):
    path: str
    kind: int
    mode: int
    data: bytes = b""


class Packed:
    __slots__ = ("entries", "dropped")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        #: ``{"name": "file:<path>", "type": "<why>"}``, the shape of the step's ``dropped``.
        self.dropped: list[dict[str, str]] = []


def check_path(path: str) -> str:
    """A relative, normalized path inside the directory, or ArchiveError."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise ArchiveError("the path must be a non-empty string without NUL or backslash")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise ArchiveError(f"the path is longer than {MAX_PATH_BYTES} bytes")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ArchiveError("the path must be relative, without '.', '..' or empty parts")
    return path


def _storable_name(name: str) -> bool:
    """Whether a directory entry's name can be kept: ``check_path`` accepts it, and it is UTF-8
    (a JSON reply, the API and Lambda's UTF-8 encoding all need text)."""
    if "\\" in name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 come back as lone surrogates
        return False
    return True


# --- the payload --------------------------------------------------------------------------------


def split_payload(payload: bytes) -> tuple[bytes, bytes]:
    """``(archive, state payload)``; the archive is ``b""`` when the payload has no files."""
    if payload[:1] != _MARKER:
        return b"", payload
    if len(payload) < 5:
        raise ArchiveError("truncated files archive")
    (length,) = _LEN.unpack(payload[1:5])
    if len(payload) < 5 + length:
        raise ArchiveError("truncated files archive")
    return payload[5 : 5 + length], payload[5 + length :]


def join_payload(archive: bytes, state: bytes) -> bytes:
    if not archive:
        return state
    return _MARKER + _LEN.pack(len(archive)) + archive + state


def payload_parts(archive: bytes, state: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """``join_payload`` in pieces, for ``wire.send_frame`` (the state's pieces are never joined)."""
    if not archive:
        return state
    return [_MARKER + _LEN.pack(len(archive)), archive, *state]


def read_archive(reader: PayloadReader) -> list[Entry]:
    """The files of a payload read from the worker's socket, leaving the state payload unread."""
    if reader.peek_byte() != _MARKER:
        return []
    reader.read(1)
    (length,) = _LEN.unpack(reader.read(_LEN.size))
    if length > reader.remaining:
        raise ArchiveError("truncated files archive")
    return decode_archive(reader.read(length))


# --- the archive --------------------------------------------------------------------------------


def encode_archive(entries: list[Entry]) -> bytes:
    if not entries:
        return b""
    chunks: list[bytes] = []
    for e in entries:
        path = e.path.encode("utf-8", "surrogateescape")
        chunks += [_ENTRY.pack(e.kind, e.mode & 0o7777, len(path), len(e.data)), path, e.data]
    stored = b"".join([b"n", *chunks])  # the stored form, joined once; ``body`` is a view of it
    body = memoryview(stored)[1:]
    # A sample first: zlib over tens of MiB of incompressible files (archives, images,
    # random data) costs 20-40 ms per MiB for a few percent.
    if not worth_compressing(body):
        return stored
    packed = zlib.compress(body, ZLIB_LEVEL)
    if len(packed) > WORTH_COMPRESSING * len(body):
        return stored
    return b"z" + packed


def decode_archive(archive: bytes | bytearray) -> list[Entry]:
    if not archive:
        return []
    codec, body = bytes(archive[:1]), memoryview(archive)[1:]
    try:
        if codec == b"z":
            inflater = zlib.decompressobj()
            body = inflater.decompress(body, MAX_ARCHIVE_BODY_BYTES + 1)
            if len(body) > MAX_ARCHIVE_BODY_BYTES or not inflater.eof:
                raise ArchiveError("the files archive is larger than an episode's files may be")
        elif codec != b"n":
            raise ArchiveError("unknown files archive codec")
    except zlib.error as exc:
        raise ArchiveError("corrupt files archive") from exc
    if len(body) > MAX_ARCHIVE_BODY_BYTES:
        raise ArchiveError("the files archive is larger than an episode's files may be")
    entries: list[Entry] = []
    view = memoryview(body)
    offset = 0
    total = 0
    while offset < len(view):
        if len(entries) >= MAX_FILES:
            raise ArchiveError(f"the files archive holds more than {MAX_FILES} entries")
        if offset + _ENTRY.size > len(view):
            raise ArchiveError("truncated files archive entry")
        kind, mode, path_len, size = _ENTRY.unpack_from(view, offset)
        offset += _ENTRY.size
        end = offset + path_len + size
        if end > len(view) or kind not in (KIND_FILE, KIND_DIR):
            raise ArchiveError("malformed files archive entry")
        path = bytes(view[offset : offset + path_len]).decode("utf-8", "surrogateescape")
        data = bytes(view[offset + path_len : end])
        total += size
        if total > MAX_FILES_BYTES:
            raise ArchiveError(f"the files archive holds more than {MAX_FILES_BYTES} bytes of files")
        entries.append(Entry(check_path(path), kind, mode, data))
        offset = end
    return entries


# --- the directory (worker side) ----------------------------------------------------------------


def pack_directory(root: str, max_files: int = MAX_FILES, max_bytes: int = MAX_FILES_BYTES) -> Packed:
    """Regular files and directories under ``root``, never following a symlink."""
    packed = Packed()
    total = 0
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
                listing = sorted(it, key=lambda d: d.name)
        except OSError:
            continue
        for d in listing:
            rel = f"{rel_dir}/{d.name}" if rel_dir else d.name
            try:
                st = d.stat(follow_symlinks=False)
            except OSError:
                packed.dropped.append({"name": f"file:{rel}", "type": "unreadable"})
                continue
            if stat.S_ISLNK(st.st_mode):
                reason = "symlink"
            elif stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                reason = ""
            else:
                reason = "special file"
            if not reason and len(packed.entries) >= max_files:
                reason = f"more than {max_files} files"
            if not reason and len(rel.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
                reason = "path too long"
            if not reason and not _storable_name(d.name):
                # Kept, it made every later restore of the episode fail (check_path refuses it)
                # and its listing unreadable: a cell could make its own episode unusable.
                reason = "file name not UTF-8 or with a backslash"
            if not reason and stat.S_ISREG(st.st_mode) and total + st.st_size > max_bytes:
                reason = f"files above {max_bytes} bytes in total"
            if reason:
                packed.dropped.append({"name": f"file:{rel}", "type": reason})
                continue
            if stat.S_ISDIR(st.st_mode):
                packed.entries.append(Entry(rel, KIND_DIR, st.st_mode))
                pending.append(rel)
                continue
            try:
                fd = os.open(d.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                try:
                    with os.fdopen(fd, "rb", closefd=False) as f:
                        data = f.read(max_bytes - total + 1)
                finally:
                    os.close(fd)
            except OSError:
                packed.dropped.append({"name": f"file:{rel}", "type": "unreadable"})
                continue
            if total + len(data) > max_bytes:
                packed.dropped.append({"name": f"file:{rel}", "type": f"files above {max_bytes} bytes in total"})
                continue
            total += len(data)
            packed.entries.append(Entry(rel, KIND_FILE, st.st_mode, data))
    packed.entries.sort(key=lambda e: e.path)
    return packed


def unpack_directory(root: str, entries: list[Entry]) -> None:
    """Write the entries under ``root`` (which should be empty), parents first."""
    for e in sorted(entries, key=lambda e: (e.path.count("/"), e.path)):
        target = os.path.join(root, check_path(e.path))
        if e.kind == KIND_DIR:
            os.makedirs(target, mode=0o700, exist_ok=True)
            os.chmod(target, (e.mode & 0o777) | 0o700)
            continue
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(e.data)
        os.chmod(target, (e.mode & 0o777) | 0o600)


# --- the files operation (runtime parent side; no user code) ------------------------------------


def list_entries(entries: list[Entry]) -> list[dict[str, object]]:
    return [{"path": e.path, "size": len(e.data)} for e in entries if e.kind == KIND_FILE]


def read_entry(entries: list[Entry], path: str) -> bytes | None:
    check_path(path)
    for e in entries:
        if e.path == path and e.kind == KIND_FILE:
            return e.data
    return None


def write_entry(entries: list[Entry], path: str, data: bytes) -> list[Entry]:
    """The entries with ``path`` written (parents created); refuses what packing would drop."""
    check_path(path)
    by_path = {e.path: e for e in entries}
    parts = path.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        existing = by_path.get(parent)
        if existing is not None and existing.kind != KIND_DIR:
            raise ArchiveError(f"{parent} is a file, not a directory")
        by_path.setdefault(parent, Entry(parent, KIND_DIR, 0o700))
    existing = by_path.get(path)
    if existing is not None and existing.kind == KIND_DIR:
        raise ArchiveError(f"{path} is a directory")
    by_path[path] = Entry(path, KIND_FILE, existing.mode if existing else 0o600, data)
    result = sorted(by_path.values(), key=lambda e: e.path)
    if len(result) > MAX_FILES:
        raise ArchiveError(f"an episode keeps at most {MAX_FILES} files and directories")
    if sum(len(e.data) for e in result) > MAX_FILES_BYTES:
        raise ArchiveError(f"an episode's files may take at most {MAX_FILES_BYTES} bytes")
    return result
