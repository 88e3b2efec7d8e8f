"""Notebook views of results: small HTML tables for Jupyter, plain text for IPython's console.
Everything the user's code printed is escaped (a cell may print HTML or script tags)."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import History, StepResult

_OK = "#1a7f37"
_FAILED = "#cf222e"
_TH = '<th style="vertical-align:top;text-align:left;padding-right:8px">'
#: Longest text shown per cell of the history table; the full text is in the objects.
_HISTORY_CELL_CHARS = 500


def _pre(text: str) -> str:
    if text == "":
        return "<pre style=\"margin:0\"><i>(empty)</i></pre>"
    return f'<pre style="margin:0;white-space:pre-wrap">{escape(text)}</pre>'


def _reward(value: float | None) -> str:
    return "null" if value is None else repr(value)


def _flags(result: StepResult) -> list[str]:
    info = result.info
    if info is None:
        return []
    flags = []
    if info.timed_out:
        flags.append("timed out")
    if info.stdout_truncated:
        flags.append("stdout truncated")
    if info.stderr_truncated:
        flags.append("stderr truncated")
    if info.dropped_variables:
        flags.append("dropped: " + ", ".join(v.name for v in info.dropped_variables))
    if result.replayed:
        flags.append("replayed")
    return flags


def step_html(result: StepResult) -> str:
    """A step result as a small HTML block: a status line, then stdout (and stderr if any)."""
    exit_code = result.observation.exit_code
    color = _OK if exit_code == 0 else _FAILED
    flags = _flags(result)
    head = (
        f'<b style="color:{color}">exit code {exit_code}</b> · reward {escape(_reward(result.reward))}'
        f" · step {result.step_count} · <code>{escape(result.episode_id)}</code>"
        + (f" · {escape(', '.join(flags))}" if flags else "")
    )
    rows = [f"<tr>{_TH}stdout</th><td>{_pre(result.observation.stdout)}</td></tr>"]
    if result.observation.stderr:
        rows.append(f"<tr>{_TH}stderr</th><td>{_pre(result.observation.stderr)}</td></tr>")
    return (
        '<div class="coding-env-step" style="font-family:sans-serif;font-size:13px">'
        f"<div>{head}</div>"
        f'<table style="border-collapse:collapse">{"".join(rows)}</table></div>'
    )


def step_text(result: StepResult) -> str:
    """A step result as plain text: a status line, then stdout (and stderr if any)."""
    flags = _flags(result)
    lines = [
        f"exit_code={result.observation.exit_code} reward={_reward(result.reward)} "
        f"step={result.step_count} episode={result.episode_id}" + (f" ({', '.join(flags)})" if flags else ""),
        f"stdout: {result.observation.stdout}",
    ]
    if result.observation.stderr:
        lines.append(f"stderr: {result.observation.stderr}")
    return "\n".join(lines)


def _clip(text: str) -> str:
    return text if len(text) <= _HISTORY_CELL_CHARS else text[:_HISTORY_CELL_CHARS] + "…"


def history_html(history: History) -> str:
    """A trajectory as an HTML table, one row per step."""
    rows = []
    for s in history.steps:
        color = _OK if s.observation.exit_code == 0 else _FAILED
        output = s.observation.stdout + (("\n" + s.observation.stderr) if s.observation.stderr else "")
        rows.append(
            f"<tr><td>{s.step}</td><td>{_pre(_clip(s.code))}</td>"
            f'<td style="color:{color}">{s.observation.exit_code}</td>'
            f"<td>{escape(_reward(s.reward))}</td><td>{_pre(_clip(output))}</td></tr>"
        )
    more = "" if history.next_cursor is None else "<div><i>more steps on the next page</i></div>"
    return (
        '<div class="coding-env-history" style="font-family:sans-serif;font-size:13px">'
        f"<div><code>{escape(history.episode_id)}</code> · {len(history.steps)} steps</div>"
        '<table style="border-collapse:collapse;text-align:left">'
        f"<tr>{_TH}step</th>{_TH}code</th>{_TH}exit</th>{_TH}reward</th>{_TH}output</th></tr>"
        f"{''.join(rows)}</table>{more}</div>"
    )
