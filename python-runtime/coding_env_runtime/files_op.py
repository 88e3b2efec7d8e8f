"""``{"op": "files"}``: list, read or write an episode's files in its snapshot, without running code.

The files are the archive next to the pickle (``workfiles.py``): plain data, so the runtime
parent reads and rewrites it here and never loads the pickle. A write returns a new snapshot
that the caller commits as the episode's next state version, exactly like a step's (a
conditional write on the version it read), so an upload is as durable and as conditional as a
step. Event: ``{"op": "files", "action": "list" | "read" | "write", "episode_id", "tenant_id"?,
"snapshot", "path"? (read, write), "content_base64"? (write)}``. Reply:
``{"contract_version": 1, "files": [{"path", "size"}]}`` / ``{..., "content_base64"}`` /
``{..., "snapshot", "snapshot_bytes"}``; an ``error_code`` (``not_found``, ``invalid_path``,
``too_large``, ``snapshot_incompatible``) with a ``message`` when the operation cannot be done.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from . import CONTRACT_VERSION, snapshot, workfiles

#: Largest file read or written through the operation (its base64 must fit Lambda's 6 MB reply).
MAX_TRANSFER_BYTES = 4 * 1024 * 1024
#: Largest snapshot a write may return (Lambda's reply, with room for the rest).
MAX_REPLY_SNAPSHOT_CHARS = 5_900_000
_ACTIONS = ("list", "read", "write")


@dataclass(frozen=True)
class FilesRequest:
    tenant_id: str
    episode_id: str
    action: str
    snapshot: str | None
    path: str | None = None
    content: bytes = b""


def parse(event: dict[str, Any], tenant_id: str, episode_id: str) -> FilesRequest:
    from .contract import EventError

    action = event.get("action")
    if action not in _ACTIONS:
        raise EventError(f"action must be one of {', '.join(_ACTIONS)}")
    snap = event.get("snapshot")
    if snap is not None and not isinstance(snap, str):
        raise EventError("snapshot must be a string or null")
    path = event.get("path")
    if action != "list" and not isinstance(path, str):
        raise EventError("path must be a string")
    content = b""
    if action == "write":
        raw = event.get("content_base64")
        if not isinstance(raw, str):
            raise EventError("content_base64 must be a string")
        try:
            content = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EventError("content_base64 is not valid base64") from exc
    return FilesRequest(tenant_id, episode_id, action, snap or None, path, content)


def _failure(code: str, message: str) -> dict[str, Any]:
    return {"contract_version": CONTRACT_VERSION, "error_code": code, "message": message}


def answer(request: FilesRequest, empty_snapshot: str) -> dict[str, Any]:
    """The reply to a files operation; problems of the request are data (``error_code``)."""
    try:
        if request.path is not None:
            workfiles.check_path(request.path)
    except workfiles.ArchiveError as exc:
        return _failure("invalid_path", str(exc))
    try:
        payload = snapshot.decode(request.snapshot).payload if request.snapshot else b""
        archive, state = workfiles.split_payload(payload)
        entries = workfiles.decode_archive(archive)
    except (snapshot.SnapshotIncompatibleError, workfiles.ArchiveError) as exc:
        return _failure("snapshot_incompatible", str(exc))
    if request.action == "list":
        return {"contract_version": CONTRACT_VERSION, "files": workfiles.list_entries(entries)}
    assert request.path is not None
    if request.action == "read":
        data = workfiles.read_entry(entries, request.path)
        if data is None:
            return _failure("not_found", f"no file {request.path} in this episode")
        if len(data) > MAX_TRANSFER_BYTES:
            return _failure("too_large", f"the file is {len(data)} bytes; at most {MAX_TRANSFER_BYTES} can be read")
        return {"contract_version": CONTRACT_VERSION, "content_base64": base64.b64encode(data).decode("ascii")}
    if len(request.content) > MAX_TRANSFER_BYTES:
        return _failure("too_large", f"a file written through the API may be at most {MAX_TRANSFER_BYTES} bytes")
    try:
        entries = workfiles.write_entry(entries, request.path, request.content)
    except workfiles.ArchiveError as exc:
        return _failure("invalid_path" if "directory" in str(exc) else "too_large", str(exc))
    if not state:
        state = snapshot.decode(empty_snapshot).payload
        state = workfiles.split_payload(state)[1]
    new = snapshot.encode(workfiles.join_payload(workfiles.encode_archive(entries), state))
    if len(new) > MAX_REPLY_SNAPSHOT_CHARS:
        return _failure("too_large", f"the episode's state would be {len(new)} bytes with this file")
    return {"contract_version": CONTRACT_VERSION, "snapshot": new, "snapshot_bytes": len(new)}
