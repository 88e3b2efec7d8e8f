"""What a zygote's cheaper start leaves to its workers (zygote.py, zygote_client.py).

Every episode gets an interpreter of its own, so its start is paid once per episode: the zygote
runs its imports with the cyclic garbage collector off and leaves out modules a step rarely
needs. A worker must still run user code with the collector on, and the modules left out must
stay out (each one is CPU in every episode's start) while user code can still import them.
"""

from __future__ import annotations

import json

from tests.support import RuntimeTestCase

#: Modules the zygote once imported for the runtime's own use (``socket`` for two sockets on
#: given descriptors, ``shutil`` for a directory a step leaves (now wiped with ``os.fwalk``), ``base64`` for figures).
LEFT_OUT = ("socket", "selectors", "shutil", "base64")


class ZygoteStartTest(RuntimeTestCase):
    def test_worker_runs_user_code_with_the_garbage_collector_on(self) -> None:
        result = self.full_episode().step("import gc\ngc.isenabled()")
        self.assertEqual((result["exit_code"], result["stdout"]), (0, "true"), result["stderr"])

    def test_modules_left_out_of_the_zygote_are_not_preloaded_and_still_import(self) -> None:
        ep = self.full_episode()
        first = ep.step(f"import sys\nsorted(m for m in {LEFT_OUT!r} if m in sys.modules)")
        self.assertEqual((first["exit_code"], first["stdout"]), (0, "[]"), first["stderr"])
        # A step that leaves a directory: the worker wipes it after the step (as the episode's
        # unprivileged uid) without importing shutil (an import then runs under the step's memory
        # limit), and the next step finds it unpacked again.
        second = ep.step("import os\nos.makedirs('d/e')")
        self.assertEqual(second["exit_code"], 0, second["stderr"])
        third = ep.step(
            "import sys\nwiped_with_shutil = 'shutil' in sys.modules\n"
            "import os, shutil, socket, base64\n[wiped_with_shutil, sorted(os.listdir('.')), os.listdir('d')]"
        )
        self.assertEqual(
            (third["exit_code"], json.loads(third["stdout"])), (0, [False, ["d"], ["e"]]), third["stderr"]
        )
