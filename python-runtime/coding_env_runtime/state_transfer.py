"""Large state through S3: the runtime parent (never a sandboxed worker) reads the input state from
a pre-signed GET URL and writes a new one to a pre-signed PUT URL, so a state of hundreds of MiB
never crosses Lambda's 6 MB payload. The executor has no AWS permissions of its own: the URLs are
the API's, valid for minutes and for one object each; in AWS they are reached through the VPC's S3
gateway endpoint (no internet). An object holds the snapshot envelope's raw bytes
(``snapshot.ENVELOPE_PREFIX`` and the payload, received into one buffer): no base64 anywhere on this path.

Speed (100 MiB on a 2-core VM, where one pass over 100 MiB costs ~0.1 s): the body is read into
one preallocated buffer (no re-joining of chunks), written with one ``sendall``, and its SHA-256
is computed in a second thread while the bytes move (hashlib and sockets both release the GIL),
so the digest costs almost no wall time.

A small cache keeps the last state of each warm episode by its object key, so a step on the
state this executor just wrote (the common case) downloads nothing and still finds its warm
worker (which is matched by the identical snapshot object).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import queue
import threading
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass
from typing import Union

from . import options

# http.client (which imports ssl) is imported by the functions that move a state, not here: the
# handler imports this module in every runtime's start, most of which never move a state, and it
# was a third of that import's CPU. Only read-only directories are on the parent's sys.path.

#: Time one GET or PUT of a state object may take (per socket operation).
TRANSFER_TIMEOUT_S = 120
#: The most a state object may hold (the runtime refuses larger snapshots anyway).
MAX_OBJECT_BYTES = 512 * 1024 * 1024
#: Bytes read per socket call, and handed to the hashing thread per update.
_CHUNK = 8 * 1024 * 1024

#: A snapshot in the runtime: base64 text (inline, the JSON contract) or raw envelope bytes.
Snapshot = Union[str, bytes, bytearray]


class StateTransferError(RuntimeError):
    """A state object could not be read or written, or is not the one the API named."""


@dataclass(frozen=True)
class StateLocation:
    """``event["state"]``: where the input state is and where a large new one goes."""

    #: Pre-signed GET of the input state's object, and that object's key (the cache's key).
    get_url: str | None = None
    get_ref: str | None = None
    #: Pre-signed PUT for a new state larger than ``inline_max_bytes``, and its object's key.
    put_url: str | None = None
    put_ref: str | None = None
    #: A new snapshot (raw bytes) up to this size comes back inline in the reply.
    inline_max_bytes: int = 32 * 1024
    #: Size and SHA-256 (hex) of the input object as the API stored them: checked on download.
    get_bytes: int | None = None
    get_sha256: str | None = None
    #: The largest state the episode may keep: a larger new one is refused, nothing written.
    max_bytes: int | None = None


class _Hasher:
    """SHA-256 of a buffer filled piece by piece, computed in its own thread as pieces arrive."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._pieces: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="state-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (piece := self._pieces.get()) is not None:
            self._digest.update(piece)

    def add(self, piece: memoryview) -> None:
        self._pieces.put(piece)

    def hexdigest(self) -> str:
        self._pieces.put(None)
        self._thread.join()
        return self._digest.hexdigest()


def sha256_hex(body: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(body).hexdigest()


def _connect(url: str) -> tuple[http.client.HTTPConnection, str]:
    import http.client

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StateTransferError("the state URL is not an http(s) URL")
    # No proxies from the environment: the URLs go straight to S3 (its gateway endpoint in AWS).
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=TRANSFER_TIMEOUT_S)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return conn, target


def download(url: str, expected_bytes: int | None = None, expected_sha256: str | None = None) -> bytearray:
    """The object's bytes; its size and SHA-256 are checked against the API's record if given."""
    import http.client

    conn, target = _connect(url)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        if response.status != 200:
            response.read(4096)
            raise StateTransferError(f"could not read the episode's state: HTTP {response.status}")
        length = int(response.headers.get("Content-Length") or -1)
        if length < 0:
            raise StateTransferError("could not read the episode's state: no Content-Length")
        if length > MAX_OBJECT_BYTES:
            raise StateTransferError(f"the state object is {length} bytes, over {MAX_OBJECT_BYTES}")
        if expected_bytes is not None and length != expected_bytes:
            raise StateTransferError(f"the state object is {length} bytes, not the {expected_bytes} recorded")
        body = bytearray(length)
        view = memoryview(body)
        hasher = _Hasher() if expected_sha256 else None
        got = 0
        while got < length:
            n = response.readinto(view[got : min(got + _CHUNK, length)])
            if not n:
                raise StateTransferError("could not read the episode's state: the connection closed early")
            if hasher is not None:
                hasher.add(view[got : got + n])
            got += n
        if hasher is not None and hasher.hexdigest() != expected_sha256:
            raise StateTransferError("the state object's SHA-256 is not the one recorded")
        return body
    except (http.client.HTTPException, OSError, ValueError) as exc:
        raise StateTransferError(f"could not read the episode's state: {exc}") from exc
    finally:
        conn.close()


def upload(url: str, body: bytes | bytearray) -> str:
    """Writes ``body`` to the pre-signed PUT URL; returns its SHA-256 (hex), computed meanwhile."""
    import http.client

    hasher = _Hasher()
    view = memoryview(body)
    for offset in range(0, len(body), _CHUNK):
        hasher.add(view[offset : offset + _CHUNK])
    conn, target = _connect(url)
    try:
        conn.putrequest("PUT", target, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("Content-Type", "application/octet-stream")
        conn.endheaders()
        conn.send(body)
        response = conn.getresponse()
        detail = response.read(4096)
        if response.status != 200:
            raise StateTransferError(
                f"could not write the episode's state: HTTP {response.status} {detail[:200].decode('utf-8', 'replace')}"
            )
    except (http.client.HTTPException, OSError, ValueError) as exc:
        raise StateTransferError(f"could not write the episode's state: {exc}") from exc
    finally:
        conn.close()
        digest = hasher.hexdigest()
    return digest


def raw_of(snapshot: Snapshot) -> bytes | bytearray:
    """The raw envelope of an inline (base64) snapshot, or the raw snapshot itself."""
    if isinstance(snapshot, str):
        try:
            return base64.b64decode(snapshot, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise StateTransferError("the snapshot is not base64") from exc
    return snapshot


def inline_of(snapshot: Snapshot) -> str:
    """The base64 text of a raw snapshot for the JSON reply (small states only)."""
    if isinstance(snapshot, str):
        return snapshot
    return base64.b64encode(snapshot).decode("ascii")


def raw_size(snapshot: Snapshot) -> int:
    if isinstance(snapshot, str):
        return len(snapshot) * 3 // 4 - snapshot[-2:].count("=")
    return len(snapshot)


class SnapshotCache:
    """The last snapshot of each episode by object key, bounded in total bytes (LRU)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], tuple[str, Snapshot]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, tenant_id: str, episode_id: str, ref: str) -> Snapshot | None:
        with self._lock:
            entry = self._entries.get((tenant_id, episode_id))
            if entry is None or entry[0] != ref:
                return None
            self._entries.move_to_end((tenant_id, episode_id))
            return entry[1]

    def put(self, tenant_id: str, episode_id: str, ref: str, snapshot: Snapshot) -> None:
        with self._lock:
            self._drop((tenant_id, episode_id))
            if len(snapshot) > self.max_bytes:
                return
            self._entries[(tenant_id, episode_id)] = (ref, snapshot)
            self._bytes += len(snapshot)
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def forget(self, tenant_id: str, episode_id: str) -> None:
        with self._lock:
            self._drop((tenant_id, episode_id))

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])


def cache_from_environment() -> SnapshotCache:
    """``CODING_ENV_STATE_CACHE_MB`` (default 256): the parent's copy of warm episodes' states."""
    return SnapshotCache(options.state_cache_bytes())
