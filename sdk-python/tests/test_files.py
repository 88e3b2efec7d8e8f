"""files(), read_file(), write_file() and a step's display against the real local stack."""

from __future__ import annotations

import unittest

from support import stack_url

from coding_env_sdk import BadRequestError, CodingEnv, EpisodeFile


class FilesTest(unittest.TestCase):
    def setUp(self) -> None:
        self.env = CodingEnv(stack_url())
        self.addCleanup(self.env.close)

    def test_write_list_read_and_a_step_sees_them(self) -> None:
        self.env.reset(policy="full")
        written = self.env.write_file("dir/a b.bin", bytes([0, 128, 255]))
        self.assertEqual((written.path, written.size, written.step_count), ("dir/a b.bin", 3, 1))
        self.env.write_file("t.txt", "héllo")
        self.assertEqual(self.env.files(), [EpisodeFile("dir/a b.bin", 3), EpisodeFile("t.txt", 6)])
        self.assertEqual(self.env.read_file("dir/a b.bin"), bytes([0, 128, 255]))
        self.assertEqual(self.env.read_file("t.txt").decode(), "héllo")
        self.env.step("open('made.txt', 'w').write('by a cell')")
        self.assertEqual(self.env.read_file("made.txt"), b"by a cell")
        with self.assertRaises(BadRequestError):
            self.env.write_file("../x", "no")

    def test_display_on_the_result(self) -> None:
        self.env.reset()
        result = self.env.step("class R:\n    def _repr_html_(self): return '<i>x</i>'\ndisplay(R())")
        self.assertEqual(result.display[0]["data"]["text/html"], "<i>x</i>")
        self.assertEqual(self.env.step("1").display, [])


if __name__ == "__main__":
    unittest.main()
