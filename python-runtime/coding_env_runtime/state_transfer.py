"""Large state through S3: the runtime parent (never a sandboxed worker) reads the input snapshot
from a pre-signed GET URL and writes a new one to a pre-signed PUT URL, so a state of hundreds of
MiB never crosses Lambda's 6 MB payload. The executor has no AWS permissions of its own: the URLs
are the API's, valid for minutes and for one object each; in AWS they are reached through the
VPC's S3 gateway endpoint (no internet). Objects hold the snapshot's raw bytes (the runtime's
snapshot string is their base64).

A small cache keeps the last snapshot of each warm episode by its object key, so a step on the
state this executor just wrote (the common case) downloads nothing and still finds its warm
worker (which is matched by the identical snapshot string).
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass

#: Time one GET or PUT of a state object may take.
TRANSFER_TIMEOUT_S = 120
#: The most a state object may hold (the runtime refuses larger snapshots anyway).
MAX_OBJECT_BYTES = 512 * 1024 * 1024

# No proxies from the environment: the URLs go straight to S3 (its gateway endpoint in AWS).
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StateTransferError(RuntimeError):
    """A state object could not be read or written."""


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


def download(url: str) -> bytes:
    try:
        with _opener.open(urllib.request.Request(url, method="GET"), timeout=TRANSFER_TIMEOUT_S) as response:
            length = int(response.headers.get("Content-Length") or 0)
            if length > MAX_OBJECT_BYTES:
                raise StateTransferError(f"the state object is {length} bytes, over {MAX_OBJECT_BYTES}")
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StateTransferError(f"could not read the episode's state: {exc}") from exc


def upload(url: str, body: bytes) -> None:
    request = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    try:
        with _opener.open(request, timeout=TRANSFER_TIMEOUT_S) as response:
            response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StateTransferError(f"could not write the episode's state: {exc}") from exc


def snapshot_from_object(body: bytes) -> str:
    return base64.b64encode(body).decode("ascii")


def object_from_snapshot(snapshot: str) -> bytes:
    # The runtime's own base64 (snapshot.encode): not validated again (b64decode's validate=True
    # scans with a regular expression, about a second per 100 MiB here).
    try:
        return binascii.a2b_base64(snapshot)
    except (binascii.Error, ValueError) as exc:
        raise StateTransferError("the new snapshot is not base64") from exc


class SnapshotCache:
    """The last snapshot of each episode by object key, bounded in total characters (LRU)."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self._entries: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, tenant_id: str, episode_id: str, ref: str) -> str | None:
        with self._lock:
            entry = self._entries.get((tenant_id, episode_id))
            if entry is None or entry[0] != ref:
                return None
            self._entries.move_to_end((tenant_id, episode_id))
            return entry[1]

    def put(self, tenant_id: str, episode_id: str, ref: str, snapshot: str) -> None:
        with self._lock:
            self._drop((tenant_id, episode_id))
            if len(snapshot) > self.max_chars:
                return
            self._entries[(tenant_id, episode_id)] = (ref, snapshot)
            self._chars += len(snapshot)
            while self._chars > self.max_chars:
                self._drop(next(iter(self._entries)))

    def forget(self, tenant_id: str, episode_id: str) -> None:
        with self._lock:
            self._drop((tenant_id, episode_id))

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._chars -= len(entry[1])


def cache_from_environment() -> SnapshotCache:
    """``CODING_ENV_STATE_CACHE_MB`` (default 256): the parent's copy of warm episodes' states."""
    return SnapshotCache(int(os.environ.get("CODING_ENV_STATE_CACHE_MB", "256")) * 1024 * 1024)
