"""Worker side: run one code cell in the episode's namespace, capture output, save/restore state.

Everything here runs inside the sandboxed worker process, never in the runtime parent.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import io
import json
import linecache
import os
import pickle
import sys
import traceback
import types
from typing import Any


from . import display as rich_display
from . import seeding, state_codec
from .policy import ImportPolicy, build_builtins, transform_tree
from .wire import PayloadReader

#: Names the runtime owns in the user's namespace; they are not part of the snapshot.
_RUNTIME_NAMES = frozenset({"__builtins__"})
_PICKLE_PROTOCOL = 5
try:  # cloudpickle 2.x keeps the pickler in cloudpickle_fast; 3.x in cloudpickle.cloudpickle.
    from cloudpickle.cloudpickle_fast import CloudPickler as _CloudPickler
except ImportError:  # pragma: no cover - cloudpickle >= 3
    from cloudpickle.cloudpickle import Pickler as _CloudPickler


class CappedFdWriter(io.TextIOBase):
    """A text stream writing UTF-8 straight to a file descriptor, keeping at most ``cap`` bytes.

    One byte past the cap is written so the runtime parent sees the stream was truncated; the
    rest is dropped without encoding it, so a 100 MB print costs neither the worker nor the parent
    memory beyond the user's own string.
    """

    def __init__(self, fd: int, cap: int) -> None:
        super().__init__()
        self._fd = fd
        self._room = cap + 1

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "backslashreplace"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self._room <= 0 or not text:
            return len(text)
        data = text[: self._room].encode("utf-8", "backslashreplace")[: self._room]
        self._room -= len(data)
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError:  # file-size limit reached or fd closed by user code: drop the rest
                self._room = 0
                break
            view = view[written:]
        return len(text)

    def flush(self) -> None:
        return None


# --- the namespace and its snapshot ----------------------------------------------------------


_restore_builtins: dict[str, Any] = {}


def _make_namespace_function(code: types.CodeType, globals_: dict[str, Any], name: Any,
                             argdefs: Any, closure: Any) -> types.FunctionType:
    """Rebuild a function of the namespace with the episode's builtins (not the real ones).

    cloudpickle's own maker sets the unrestricted builtins; a function captures its builtins
    when created, so the policy's table must be in place at that moment.
    """
    globals_["__builtins__"] = _restore_builtins
    return types.FunctionType(code, globals_, name, argdefs, closure)


class _NamespacePickler(_CloudPickler):  # type: ignore[misc, valid-type]
    """cloudpickle, plus: functions of the namespace keep the episode's builtins when restored."""

    namespace: dict[str, Any] = {}

    def _dynamic_function_reduce(self, func: types.FunctionType) -> Any:
        reduced = super()._dynamic_function_reduce(func)
        if func.__globals__ is self.namespace:
            return (_make_namespace_function, *reduced[1:])
        return reduced


class _ChunkWriter:
    """A pickler's file: keeps its frames in a list (a third faster than io.BytesIO here)."""

    __slots__ = ("chunks", "write")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.write = self.chunks.append


def _dumps(
    namespace: dict[str, Any],
    obj: Any,
    shared_globals: dict[str, Any] | None = None,
    buffers: list[memoryview] | None = None,
) -> bytes:
    """The pickle stream of ``obj``; with ``buffers``, large contiguous buffers (arrays' data)
    are appended to it instead of being copied into the stream."""
    buf = _ChunkWriter()

    def out_of_band(picklebuffer: pickle.PickleBuffer) -> bool:
        assert buffers is not None
        try:
            raw = picklebuffer.raw()
        except BufferError:  # neither C- nor Fortran-contiguous: in the stream
            return True
        if raw.nbytes < state_codec.OUT_OF_BAND_MIN:
            return True
        buffers.append(raw)
        return False

    pickler = _NamespacePickler(
        buf, protocol=_PICKLE_PROTOCOL, buffer_callback=out_of_band if buffers is not None else None
    )
    pickler.namespace = namespace
    if shared_globals is not None:
        # Every function of the namespace is rebuilt with this dict as its globals (cloudpickle
        # shares one dict per original globals dict within one dump); it travels in the same
        # pickle, so after loading it is the very dict the functions use.
        pickler.globals_ref[id(namespace)] = shared_globals
    pickler.dump(obj)
    return b"".join(buf.chunks)


def _episode_builtins(policy: ImportPolicy) -> dict[str, Any]:
    """The policy's builtins plus ``display`` (rich outputs), as in a notebook."""
    table = build_builtins(policy)
    table["display"] = rich_display.display
    return table


def new_namespace(policy: ImportPolicy) -> dict[str, Any]:
    return {"__name__": "__main__", "__doc__": None, "__builtins__": _episode_builtins(policy)}


class SavedState:
    # Not a dataclass (nor CellOutcome): every zygote imports this module, and ``dataclasses``
    # (with ``inspect``) and the methods it generates were ~7% of a zygote's start (with
    # cloudpickle 2.2; cloudpickle 3 imports dataclasses itself).
    __slots__ = ("parts", "dropped")

    def __init__(self, parts: list[bytes | memoryview], dropped: list[dict[str, str]] | None = None) -> None:
        #: The state payload in pieces, sent one after another (``wire.send_frame``), never
        #: joined: the large ones are the namespace's arrays' own memory.
        self.parts = parts
        self.dropped: list[dict[str, str]] = [] if dropped is None else dropped

    @property
    def payload(self) -> bytes:
        return b"".join(self.parts)


@contextlib.contextmanager
def _no_gc() -> Any:
    """Pickling creates no garbage cycles worth collecting, but allocates enough objects to
    trigger many collections; pausing the collector makes save/restore steadier and faster."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def save_namespace(namespace: dict[str, Any]) -> SavedState:
    with _no_gc():
        return _save_namespace(namespace)


def _save_namespace(namespace: dict[str, Any]) -> SavedState:
    """Pickle the user's names in one pass; only on failure find and drop the unpicklable ones.

    The pickle holds ``(names, shared_globals)``: ``shared_globals`` is the globals dict of every
    restored function, so on restore it becomes the namespace itself and functions keep seeing
    later assignments to globals. A seeded episode adds a third item, the random generators'
    states (``seeding.state()``).
    """
    data = {k: v for k, v in namespace.items() if k not in _RUNTIME_NAMES}
    dropped: list[dict[str, str]] = []

    generators = seeding.state()

    buffers: list[memoryview] = []

    def dump(names: dict[str, Any]) -> bytes:
        buffers.clear()
        shared = {"__name__": namespace.get("__name__", "__main__")}
        if generators is not None:
            return _dumps(namespace, (names, shared, generators), shared, buffers)
        return _dumps(namespace, (names, shared), shared, buffers)

    try:
        raw = dump(data)
    except Exception:
        for name in list(data):
            try:
                _dumps(namespace, data[name])
            except Exception:
                dropped.append({"name": name, "type": type(data[name]).__name__})
                del data[name]
        try:
            raw = dump(data)
        except Exception:
            dropped.extend({"name": k, "type": type(v).__name__} for k, v in data.items())
            raw = dump({})
    return SavedState(state_codec.encode_state(raw, buffers), dropped)


def restore_namespace(payload: bytes | bytearray | memoryview | PayloadReader, policy: ImportPolicy) -> dict[str, Any]:
    """The namespace of a state payload (in memory, or read from the worker's socket: then each
    array is read straight into its own memory, one copy in all)."""
    global _restore_builtins
    reader = payload if isinstance(payload, PayloadReader) else PayloadReader.of(payload)
    table = _episode_builtins(policy)
    _restore_builtins = table
    with _no_gc():
        stream, buffers = state_codec.read_state(reader)
        data, namespace, *generators = pickle.loads(stream, buffers=buffers)
        del stream, buffers
    seeding.restore(generators[0] if generators else None)
    namespace.update(data)
    namespace["__builtins__"] = table
    return namespace


# --- running a cell --------------------------------------------------------------------------


class CellOutcome:
    __slots__ = ("exit_code", "out_of_memory", "error_code")

    def __init__(self) -> None:
        self.exit_code = 0
        self.out_of_memory = False
        self.error_code: str | None = None


def _is_cell_frame(filename: str) -> bool:
    return filename.startswith("<cell")


def _clean_traceback(te: traceback.TracebackException, seen: set[int]) -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if _is_cell_frame(f.filename)])
    for chained in (te.__cause__, te.__context__):
        if chained is not None:
            _clean_traceback(chained, seen)


def format_user_error(exc: BaseException) -> str:
    """The traceback of the user's cell only: no runtime frames, no paths of this machine."""
    te = traceback.TracebackException.from_exception(exc)
    _clean_traceback(te, set())
    return "".join(te.format())


def _value_text(value: Any) -> str:
    try:
        return json.dumps(value)
    except Exception:
        try:
            return repr(value)
        except Exception as exc:  # a broken __repr__ is the user's, show it like Python would
            return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"


def run_cell(
    namespace: dict[str, Any],
    code: str,
    cell_name: str,
    policy: ImportPolicy,
    stdout: CappedFdWriter,
    stderr: CappedFdWriter,
) -> CellOutcome:
    """Execute ``code``; print the last expression's value OpenEnv-style; errors become data."""
    outcome = CellOutcome()
    owner = os.getpid()
    sys.stdout, sys.stderr = stdout, stderr
    try:
        try:
            tree = ast.parse(code, filename=cell_name, mode="exec")
        except (SyntaxError, ValueError) as exc:  # ValueError: source with NUL bytes
            stderr.write(format_user_error(exc))
            outcome.exit_code = 1
            outcome.error_code = "syntax_error"
            return outcome
        tree = transform_tree(tree, policy)
        last: ast.Expression | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        linecache.cache[cell_name] = (len(code), None, code.splitlines(True), cell_name)
        try:
            body = compile(tree, cell_name, "exec")
            expr = compile(last, cell_name, "eval") if last is not None else None
            exec(body, namespace)
            value = eval(expr, namespace) if expr is not None else None
            if value is not None:
                text = _value_text(value)
                stdout.write(("\n" + text) if os.fstat(stdout.fileno()).st_size else text)
                if rich_display.has_rich_repr(value):
                    # As a notebook shows a cell's value: a DataFrame as a table, a figure as PNG.
                    rich_display.display(value)
        except SystemExit as exc:
            code_value = exc.code
            if code_value is None:
                outcome.exit_code = 0
            elif isinstance(code_value, int):
                # An exit status is one byte: anything else (2**60, -1) is a plain failure;
                # True/False count as 1/0, as for the interpreter's own exit.
                outcome.exit_code = int(code_value) if 0 <= code_value <= 255 else 1
            else:
                stderr.write(f"{code_value}\n")
                outcome.exit_code = 1
            if outcome.exit_code:
                stderr.write(f"SystemExit: {code_value}\n")
        except MemoryError as exc:
            outcome.exit_code = 1
            outcome.out_of_memory = True
            outcome.error_code = "out_of_memory"
            try:
                stderr.write(format_user_error(exc))
            except MemoryError:
                pass
        except BaseException as exc:  # noqa: BLE001 - every user error is data
            if os.getpid() != owner:  # a process user code forked (e.g. a fork bomb): stay quiet
                os._exit(1)
            outcome.exit_code = 1
            stderr.write(format_user_error(exc))
        if os.getpid() == owner:
            # Like inline backends: open figures are shown (and closed) at the end of the cell.
            rich_display.capture_figures()
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    return outcome
