"""Notebook views of results (Jupyter's _repr_html_, IPython's _repr_pretty_) and the typed
parsing of the wire bodies, paged or not."""

from __future__ import annotations

import unittest

from coding_env_sdk import History, StepResult

BODY = {
    "observation": {"stdout": "<script>alert(1)</script>\n", "stderr": "", "exit_code": 0},
    "reward": 0,
    "done": False,
    "metadata": {"last_code": "print('<script>')"},
    "episode_id": "ep_<b>",
    "step_count": 3,
    "info": {
        "duration_ms": 1.5,
        "timed_out": False,
        "stdout_truncated": True,
        "stderr_truncated": False,
        "dropped_variables": [{"name": "fh", "type": "TextIOWrapper"}],
        "out_of_memory": False,
    },
    "future_field": 1,
}


class RecordingPrinter:
    """The one method of IPython's pretty printer that _repr_pretty_ calls."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def text(self, s: str) -> None:
        self.out.append(s)


class DisplayTest(unittest.TestCase):
    def test_html_shows_status_output_and_flags_with_user_output_escaped(self) -> None:
        html = StepResult.from_wire(BODY)._repr_html_()
        self.assertIn("exit code 0", html)
        self.assertIn("reward 0.0", html)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", html)
        self.assertNotIn("<script>", html)
        self.assertIn("ep_&lt;b&gt;", html)
        self.assertIn("stdout truncated", html)
        self.assertIn("dropped: fh", html)
        self.assertNotIn(">stderr<", html)  # no stderr row when there is none

    def test_a_failed_cell_shows_its_traceback(self) -> None:
        failed = {**BODY, "observation": {"stdout": "", "stderr": "Traceback ...\nZeroDivisionError", "exit_code": 1}}
        html = StepResult.from_wire(failed)._repr_html_()
        self.assertIn("exit code 1", html)
        self.assertIn("ZeroDivisionError", html)
        self.assertIn("<i>(empty)</i>", html)

    def test_pretty_text_for_ipython(self) -> None:
        printer = RecordingPrinter()
        StepResult.from_wire(BODY)._repr_pretty_(printer, cycle=False)
        text = "".join(printer.out)
        self.assertTrue(text.startswith("exit_code=0 reward=0.0 step=3 episode=ep_<b>"))
        self.assertIn("stdout: <script>alert(1)</script>", text)

    def test_history_table(self) -> None:
        history = History.from_wire(
            {
                "episode_id": "ep_1",
                "steps": [
                    {
                        "step": 1,
                        "code": "1/0",
                        "observation": {"stdout": "", "stderr": "ZeroDivisionError", "exit_code": 1},
                    },
                ],
                "next_cursor": "c1",
            }
        )
        html = history._repr_html_()
        self.assertIn("1 steps", html)
        self.assertIn("ZeroDivisionError", html)
        self.assertIn("next page", html)


class ParsingTest(unittest.TestCase):
    def test_rewards_are_floats_and_unknown_fields_are_kept(self) -> None:
        result = StepResult.from_wire(BODY)
        self.assertIsInstance(result.reward, float)
        self.assertEqual(result.info.dropped_variables[0].type, "TextIOWrapper")
        self.assertEqual(result.info.extra, {"out_of_memory": False})
        self.assertEqual(result.to_dict()["future_field"], 1)

    def test_history_reads_the_current_and_the_paged_shape(self) -> None:
        current = History.from_wire({"episode_id": "ep_1", "steps": [{"step": 1, "code": "x", "observation": {}}]})
        self.assertIsNone(current.next_cursor)
        self.assertEqual(len(current), 1)
        paged = History.from_wire({"episode_id": "ep_1", "steps": [], "next_cursor": "abc"})
        self.assertEqual(paged.next_cursor, "abc")
        last = History.from_wire({"episode_id": "ep_1", "steps": [], "next_cursor": None})
        self.assertIsNone(last.next_cursor)


if __name__ == "__main__":
    unittest.main()
