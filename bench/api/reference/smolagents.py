"""Stand-in for smolagents.LocalPythonExecutor, for the reference benchmark only.

The seed-era OpenEnv coding_env server executes code with smolagents' AST interpreter. smolagents is
not packaged by Debian and this machine has no PyPI, so when it cannot be imported the reference
benchmark puts this directory on PYTHONPATH instead: plain exec() in one persistent namespace, with
print() captured. It does strictly less work per step than smolagents' interpreter, so the reference
it gives is at least as fast as the real one and our ratio against it is conservative.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any


@dataclass
class CodeOutput:
    output: Any
    logs: str
    is_final_answer: bool


class LocalPythonExecutor:
    def __init__(self, additional_authorized_imports: list[str] | None = None) -> None:
        self.additional_authorized_imports = list(additional_authorized_imports or [])
        self.state: dict[str, Any] = {}

    def send_tools(self, tools: dict[str, Any]) -> None:
        self.state.update(tools)

    def __call__(self, code: str) -> CodeOutput:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(code, "<code>", "exec"), self.state)
        return CodeOutput(output=None, logs=buffer.getvalue(), is_final_answer=False)
