"""The import policy: OpenEnv's allow-list, as a compatibility feature (not a security boundary).

The sandbox (a separate unprivileged process with resource limits) is the security boundary;
this module only reproduces what OpenEnv's reference ``coding_env`` lets code do, so agents
trained against it see the same behaviour.
"""

from __future__ import annotations

import ast
import builtins
from typing import Any, NamedTuple

#: The reference's allow-list (OpenEnv coding_env, smolagents' base imports).
DEFAULT_ALLOWED_IMPORTS: tuple[str, ...] = (
    "collections",
    "datetime",
    "itertools",
    "math",
    "queue",
    "random",
    "re",
    "stat",
    "statistics",
    "time",
    "unicodedata",
)

#: Builtins the reference does not offer under the default policy.
FORBIDDEN_BUILTINS: tuple[str, ...] = (
    "open",
    "eval",
    "exec",
    "compile",
    "__import__",
    "input",
    "breakpoint",
)

_IMPORT_STUB_NAME = "__coding_env_forbidden_import__"


class ImportPolicy(NamedTuple):
    """``mode`` is ``"openenv"`` (allow-list) or ``"full"`` (all of Python, inside the sandbox).

    An immutable value; not a dataclass: every zygote imports this module (one per episode), and
    ``dataclasses`` (with ``inspect``) and the methods it generates were ~7% of a zygote's start
    (with cloudpickle 2.2; cloudpickle 3 imports dataclasses itself)."""

    mode: str = "openenv"
    additional_imports: tuple[str, ...] = ()

    @property
    def allowed(self) -> tuple[str, ...]:
        return tuple(sorted(set(DEFAULT_ALLOWED_IMPORTS) | set(self.additional_imports)))

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "additional_imports": list(self.additional_imports)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImportPolicy:
        return cls(str(data.get("mode", "openenv")), tuple(data.get("additional_imports") or ()))




def _allowed_text(policy: ImportPolicy) -> str:
    return ", ".join(policy.allowed)


def _is_allowed(module: str, policy: ImportPolicy) -> bool:
    for allowed in policy.allowed:
        # "numpy" allows "numpy.linalg"; "os.path" allows exactly that submodule tree.
        if module == allowed or module.startswith(allowed + "."):
            return True
    return False


def build_builtins(policy: ImportPolicy) -> dict[str, Any]:
    """The ``__builtins__`` mapping for the user's namespace under ``policy``."""
    table = dict(builtins.__dict__)
    if policy.mode == "full":
        return table
    real_import = builtins.__import__

    def guarded_import(name: str, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level:
            raise ImportError("relative imports are not available in a code cell")
        if not _is_allowed(name, policy):
            raise ImportError(
                f"import of '{name}' is not allowed by this episode's import policy. "
                f"Allowed modules: {_allowed_text(policy)}. Start an episode with "
                "additional_imports or policy \"full\" to use more."
            )
        return real_import(name, globals, locals, fromlist, level)

    def forbidden(name: str):
        def stub(*_args: Any, **_kwargs: Any) -> Any:
            raise NameError(
                f"'{name}' is not available under this episode's import policy "
                f"(unavailable: {', '.join(FORBIDDEN_BUILTINS)}). Start an episode with "
                "policy \"full\" to use it."
            )

        stub.__name__ = name
        return stub

    for name in FORBIDDEN_BUILTINS:
        table[name] = forbidden(name)
    table["__import__"] = guarded_import
    table[_IMPORT_STUB_NAME] = forbidden("__import__")
    return table


class _HideDunderImport(ast.NodeTransformer):
    """Direct uses of ``__import__`` go to a stub; ``import`` statements keep the guard."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == "__import__" and isinstance(node.ctx, ast.Load):
            return ast.copy_location(ast.Name(id=_IMPORT_STUB_NAME, ctx=node.ctx), node)
        return node


def transform_tree(tree: ast.Module, policy: ImportPolicy) -> ast.Module:
    if policy.mode == "full":
        return tree
    return _HideDunderImport().visit(tree)
