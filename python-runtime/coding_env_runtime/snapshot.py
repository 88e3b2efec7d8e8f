"""The snapshot envelope: a versioned header around the worker's compressed pickle.

Layout (then base64 for JSON, or raw bytes for a state kept in S3: ``state_transfer.py``): ``b"CENV"``, one byte format version, ``!H`` metadata length,
JSON metadata ``{"runtime": ..., "python": ..., "codec": "z|n|p"}``, then the worker's payload:
the episode's files (``workfiles.py``), one codec byte and the cloudpickle bytes produced inside the
sandboxed worker: ``z`` (zlib level 1) or ``n`` (stored: incompressible state is not worth the
time), one pickle, as every snapshot written before out-of-band buffers; ``p``, the pickle stream
and the large buffers it refers to (arrays' data) side by side, each zlib or stored (``state_codec.py``).
A runtime reads all three. The runtime parent only reads the header;
the pickle itself is only ever loaded inside a sandboxed worker.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass

from . import PYTHON_VERSION, RUNTIME_BASE_VERSION, RUNTIME_VERSION

MAGIC = b"CENV"
FORMAT_VERSION = 1
_LEN = struct.Struct("!H")


class SnapshotIncompatibleError(Exception):
    """The snapshot was written by another runtime/Python version or is not a snapshot at all."""

    error_code = "snapshot_incompatible"


@dataclass(frozen=True)
class DecodedSnapshot:
    runtime_version: str
    python_version: str
    payload: bytes


_META = json.dumps(
    {"runtime": RUNTIME_VERSION, "python": PYTHON_VERSION, "codec": "z|n|p"}, separators=(",", ":")
).encode()
#: The envelope's bytes before the payload, the same for every snapshot this runtime writes: the
#: runtime receives a worker's payload right after them in one buffer
#: (``wire.recv_frame(payload_prefix=...)``), so a raw snapshot of hundreds of MiB (a state kept
#: in S3) is never copied to prepend them.
ENVELOPE_PREFIX = b"".join((MAGIC, bytes([FORMAT_VERSION]), _LEN.pack(len(_META)), _META))


def encode(payload: bytes | bytearray | memoryview) -> str:
    """The envelope as base64 text (inline in JSON)."""
    return base64.b64encode(b"".join((ENVELOPE_PREFIX, payload))).decode("ascii")


def decode(snapshot: str | bytes | bytearray) -> DecodedSnapshot:
    """Check the envelope and return the compressed pickle; never unpickles anything. A raw
    (bytes) envelope's payload is a view of it, not a copy."""
    if isinstance(snapshot, (bytes, bytearray)):
        raw: bytes | bytearray | memoryview = snapshot
    else:
        try:
            raw = base64.b64decode(snapshot, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SnapshotIncompatibleError("the snapshot is not valid base64") from exc
    if len(raw) < 7 or bytes(raw[:4]) != MAGIC:
        raise SnapshotIncompatibleError("the snapshot was not written by coding-env's runtime")
    if raw[4] != FORMAT_VERSION:
        raise SnapshotIncompatibleError(
            f"the snapshot uses format {raw[4]}, this runtime ({RUNTIME_VERSION}) reads format "
            f"{FORMAT_VERSION}; reset the episode to start from a fresh state"
        )
    (meta_len,) = _LEN.unpack(raw[5:7])
    try:
        meta = json.loads(raw[7 : 7 + meta_len])
        runtime = str(meta["runtime"])
        python = str(meta["python"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SnapshotIncompatibleError("the snapshot header is malformed") from exc
    if python != PYTHON_VERSION or runtime.split("+")[0].split(".")[0] != RUNTIME_BASE_VERSION.split(".")[0]:
        raise SnapshotIncompatibleError(
            f"the snapshot was saved by runtime {runtime} (Python {python}); this executor is "
            f"runtime {RUNTIME_VERSION} (Python {PYTHON_VERSION}). State cannot move between "
            "Python or runtime versions: reset the episode to start from a fresh state"
        )
    if isinstance(snapshot, (bytes, bytearray)):
        return DecodedSnapshot(runtime, python, memoryview(snapshot)[7 + meta_len :])  # type: ignore[arg-type]
    return DecodedSnapshot(runtime, python, raw[7 + meta_len :])
