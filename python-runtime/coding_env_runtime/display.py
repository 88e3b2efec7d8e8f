"""Rich outputs of a cell: Jupyter MIME bundles from ``display(obj)`` and matplotlib figures.

Runs inside the worker. ``display`` is in every episode's builtins; at the end of a cell every
open matplotlib figure is rendered to PNG and closed, as inline backends do (no ``plt.show()``
needed). Bounded: at most ``MAX_ITEMS`` bundles and ``MAX_BYTES`` of data per step (the worker's
reply header carries them); past either, bundles are dropped and one ``text/plain`` note says so.
"""

from __future__ import annotations

import binascii  # built in; base64 would be one more module in every zygote's start
import io
import sys
from typing import Any

MAX_ITEMS = 20
MAX_BYTES = 768 * 1024
#: The repr methods tried, in Jupyter's order of richness, and their MIME types.
_REPR_METHODS = (
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_latex_", "text/latex"),
)
_BINARY = frozenset({"image/png", "image/jpeg"})
#: A bundle's metadata is kept (runtime parent side) only within these: Jupyter's is a few
#: numbers per MIME type. A worker's metadata nested hundreds deep passed the reply's parser but
#: made every later recursive walk of the reply (its sizing, its encoding) fail with
#: RecursionError: the invocation failed as the runtime's own error instead of the cell's.
MAX_METADATA_DEPTH = 8
MAX_METADATA_ITEMS = 256

_outputs: list[dict[str, Any]] = []
_used_bytes = 0
_dropped = 0


def reset() -> None:
    global _used_bytes, _dropped
    _outputs.clear()
    _used_bytes = 0
    _dropped = 0


def take() -> list[dict[str, Any]]:
    """The step's bundles (and the note on what was dropped); empties the list."""
    outputs = list(_outputs)
    if _dropped:
        outputs.append(
            {
                "data": {
                    "text/plain": f"[{_dropped} display output(s) dropped: a step keeps at most {MAX_ITEMS} "
                    f"outputs and {MAX_BYTES} bytes]"
                },
                "metadata": {"dropped": _dropped},
            }
        )
    reset()
    return outputs


def _add(bundle: dict[str, Any]) -> None:
    global _used_bytes, _dropped
    size = sum(len(v) for v in bundle["data"].values())
    if len(_outputs) >= MAX_ITEMS or _used_bytes + size > MAX_BYTES:
        _dropped += 1
        return
    _used_bytes += size
    _outputs.append(bundle)


class _PrettyPrinter:
    """The part of IPython's pretty printer that ``_repr_pretty_`` methods use."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def text(self, obj: str) -> None:
        self.parts.append(str(obj))

    def breakable(self, sep: str = " ") -> None:
        self.parts.append(sep)

    def pretty(self, obj: Any) -> None:
        self.parts.append(_plain(obj))

    def begin_group(self, indent: int = 0, open: str = "") -> None:  # noqa: A002
        self.parts.append(open)

    def end_group(self, dedent: int = 0, close: str = "") -> None:
        self.parts.append(close)

    def group(self, indent: int = 0, open: str = "", close: str = "") -> Any:  # noqa: A002
        import contextlib

        @contextlib.contextmanager
        def grouped() -> Any:
            self.begin_group(indent, open)
            try:
                yield
            finally:
                self.end_group(indent, close)

        return grouped()

    def indent(self, indent: int) -> Any:
        import contextlib

        return contextlib.nullcontext()


def _plain(obj: Any) -> str:
    method = getattr(type(obj), "_repr_pretty_", None)
    if method is not None:
        try:
            printer = _PrettyPrinter()
            method(obj, printer, False)
            return "".join(printer.parts)
        except Exception:  # noqa: BLE001 - fall back to repr
            pass
    try:
        return repr(obj)
    except Exception as exc:  # noqa: BLE001
        return f"<unrepresentable {type(obj).__name__}: {type(exc).__name__}>"


def _is_figure(obj: Any) -> bool:
    return type(obj).__module__.startswith("matplotlib.") and hasattr(obj, "savefig") and hasattr(obj, "canvas")


def _figure_png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return binascii.b2a_base64(buf.getvalue(), newline=False).decode("ascii")


def bundle_of(obj: Any) -> dict[str, Any]:
    """The MIME bundle of ``obj``: every rich repr it offers, and ``text/plain``."""
    data: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    if _is_figure(obj):
        data["image/png"] = _figure_png(obj)
        _close_figure(obj)
    for method_name, mime in _REPR_METHODS:
        method = getattr(obj, method_name, None)
        if method is None or not callable(method) or mime in data:
            continue
        try:
            value = method()
        except Exception:  # noqa: BLE001 - a broken repr is left out, like IPython does
            continue
        if isinstance(value, tuple) and len(value) == 2:
            value, meta = value
            if isinstance(meta, dict):
                metadata[mime] = meta
        if value is None:
            continue
        if mime in _BINARY:
            if isinstance(value, (bytes, bytearray)):
                value = binascii.b2a_base64(bytes(value), newline=False).decode("ascii")
            elif not isinstance(value, str):
                continue
        elif not isinstance(value, str):
            continue
        data[mime] = value
    data["text/plain"] = _plain(obj)
    return {"data": data, "metadata": metadata}


def has_rich_repr(obj: Any) -> bool:
    if isinstance(obj, type):
        return False
    return _is_figure(obj) or any(callable(getattr(obj, m, None)) for m, _ in _REPR_METHODS)


def display(*objs: Any, raw: bool = False, **_kwargs: Any) -> None:
    """Show objects in the step's output (IPython's ``display``): each becomes a MIME bundle.
    With ``raw=True`` each object is a ready bundle (``{"text/html": ...}``)."""
    for obj in objs:
        if raw and isinstance(obj, dict):
            _add({"data": {str(k): str(v) for k, v in obj.items()}, "metadata": {}})
        else:
            _add(bundle_of(obj))


def _close_figure(fig: Any) -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        try:
            pyplot.close(fig)
        except Exception:  # noqa: BLE001
            pass


def capture_figures() -> None:
    """Every open pyplot figure as a PNG bundle, then closed (the end of a cell)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    try:
        numbers = list(pyplot.get_fignums())
    except Exception:  # noqa: BLE001 - user code may have broken pyplot: its own business
        return
    for number in numbers:
        try:
            fig = pyplot.figure(number)
            _add({"data": {"image/png": _figure_png(fig), "text/plain": _plain(fig)}, "metadata": {}})
        except Exception as exc:  # noqa: BLE001
            sys.stderr.write(f"display: figure {number} could not be rendered ({type(exc).__name__}: {exc})\n")
    try:
        pyplot.close("all")
    except Exception:  # noqa: BLE001
        pass


def clean_bundles(value: Any) -> list[dict[str, Any]]:
    """The worker's ``display`` as the reply carries it (runtime parent side): only well-formed
    bundles of strings, at most ``MAX_ITEMS`` + the note; anything else from a worker is left out."""
    if not isinstance(value, list):
        return []
    bundles: list[dict[str, Any]] = []
    for item in value[: MAX_ITEMS + 1]:
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            continue
        data = {k: v for k, v in item["data"].items() if isinstance(k, str) and isinstance(v, str)}
        metadata = item.get("metadata")
        if not isinstance(metadata, dict) or not _shallow(metadata):
            metadata = {}
        if data:
            bundles.append({"data": data, "metadata": metadata})
    return bundles


def _shallow(value: Any) -> bool:
    """Whether ``value`` (parsed JSON) nests at most ``MAX_METADATA_DEPTH`` containers deep and
    holds at most ``MAX_METADATA_ITEMS`` values; walked without recursion."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while pending:
        node, depth = pending.pop()
        seen += 1
        if seen > MAX_METADATA_ITEMS:
            return False
        if isinstance(node, (dict, list)):
            if depth > MAX_METADATA_DEPTH:
                return False
            children = node.values() if isinstance(node, dict) else node
            if seen + len(pending) + len(children) > MAX_METADATA_ITEMS:
                return False
            pending.extend((child, depth + 1) for child in children)
    return True
