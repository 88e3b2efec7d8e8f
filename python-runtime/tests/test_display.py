"""Rich outputs: display(obj) and matplotlib figures as MIME bundles next to stdout."""

from __future__ import annotations

import base64
import importlib.util

from coding_env_runtime import display as rich_display
from tests.support import RuntimeTestCase

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class DisplayTest(RuntimeTestCase):
    def test_display_of_rich_reprs(self) -> None:
        ep = self.episode()
        result = ep.step(
            "class Rich:\n"
            "    def _repr_html_(self): return '<b>hi</b>'\n"
            "    def _repr_markdown_(self): return '**hi**'\n"
            "    def _repr_svg_(self): return '<svg/>'\n"
            "    def _repr_png_(self): return b'\\x89PNG-ish'\n"
            "    def __repr__(self): return 'Rich()'\n"
            "display(Rich())\n"
            "print('after')"
        )
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(result["stdout"], "after\n")
        [bundle] = result["display"]
        data = bundle["data"]
        self.assertEqual(data["text/html"], "<b>hi</b>")
        self.assertEqual(data["text/markdown"], "**hi**")
        self.assertEqual(data["image/svg+xml"], "<svg/>")
        self.assertEqual(base64.b64decode(data["image/png"]), b"\x89PNG-ish")
        self.assertEqual(data["text/plain"], "Rich()")

    def test_no_display_no_field_and_display_survives_restore(self) -> None:
        ep = self.episode()
        first = ep.step("def show(x):\n    display(x)\n1")
        self.assertNotIn("display", first)
        again = ep.step("show(41)")
        self.assertEqual(again["display"], [{"data": {"text/plain": "41"}, "metadata": {}}])

    def test_repr_pretty_and_broken_reprs(self) -> None:
        ep = self.episode()
        result = ep.step(
            "class P:\n"
            "    def _repr_pretty_(self, p, cycle): p.text('pretty!')\n"
            "    def _repr_html_(self): raise ValueError('no')\n"
            "display(P())"
        )
        self.assertEqual(result["display"], [{"data": {"text/plain": "pretty!"}, "metadata": {}}])

    def test_bounded_in_count_and_size(self) -> None:
        ep = self.episode()
        result = ep.step(f"for i in range({rich_display.MAX_ITEMS + 7}):\n    display(i)")
        bundles = result["display"]
        self.assertEqual(len(bundles), rich_display.MAX_ITEMS + 1)
        self.assertIn("7 display output(s) dropped", bundles[-1]["data"]["text/plain"])
        big = ep.step("class H:\n    def _repr_html_(self): return 'x' * 500000\ndisplay(H(), H(), H())")
        self.assertEqual(len(big["display"]), 2)
        self.assertEqual(big["display"][-1]["metadata"], {"dropped": 2})

    def test_dataframe_as_html_table(self) -> None:
        ep = self.full_episode()
        result = ep.step("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})\ndisplay(df)\ndf")
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        # display(df) and the cell's value, as a notebook shows both.
        self.assertEqual(len(result["display"]), 2)
        for bundle in result["display"]:
            self.assertIn("<table", bundle["data"]["text/html"])
            self.assertIn("a", bundle["data"]["text/plain"])

    def test_matplotlib_figures_captured_without_show(self) -> None:
        if importlib.util.find_spec("matplotlib") is None:
            self.skipTest("matplotlib is not installed (apt-get install python3-matplotlib)")
        ep = self.full_episode()
        result = ep.step(
            "import matplotlib.pyplot as plt\n"
            "import matplotlib\n"
            "plt.plot([1, 3, 2])\n"
            "plt.figure()\nplt.bar([1, 2], [3, 4])\n"
            "print(matplotlib.get_backend())"
        )
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(result["stdout"].strip().lower(), "agg")
        self.assertEqual(len(result["display"]), 2)
        for bundle in result["display"]:
            self.assertTrue(base64.b64decode(bundle["data"]["image/png"]).startswith(PNG_MAGIC))
        # Shown figures are closed: the next step shows nothing again.
        self.assertNotIn("display", ep.step("len(plt.get_fignums())"))

    def test_clean_bundles_keeps_only_strings(self) -> None:
        cleaned = rich_display.clean_bundles(
            [{"data": {"text/plain": "a", "x": 1}, "metadata": 3}, "junk", {"data": {}}]
        )
        self.assertEqual(cleaned, [{"data": {"text/plain": "a"}, "metadata": {}}])
