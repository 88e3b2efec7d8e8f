"""OpenEnv-compatible execution semantics: stdout/stderr/exit_code of one step."""

from __future__ import annotations

from tests.support import RuntimeTestCase


class StdoutSemanticsTest(RuntimeTestCase):
    def test_last_expression_value_is_json(self) -> None:
        self.assertEqual(self.episode().step("1+1")["stdout"], "2")

    def test_printed_output_then_value_joined_by_newline(self) -> None:
        self.assertEqual(self.episode().step("print('a')\n2")["stdout"], "a\n\n2")

    def test_string_value_is_json_dumped(self) -> None:
        self.assertEqual(self.episode().step("'hi'")["stdout"], '"hi"')

    def test_value_not_json_serializable_uses_repr(self) -> None:
        self.assertEqual(self.episode().step("{1, 2}")["stdout"], "{1, 2}")

    def test_none_value_prints_nothing(self) -> None:
        result = self.episode().step("print('x')\nNone")
        self.assertEqual(result["stdout"], "x\n")
        self.assertEqual(result["exit_code"], 0)

    def test_success_has_empty_stderr_and_exit_0(self) -> None:
        result = self.episode().step("x = 5")
        self.assertEqual((result["stdout"], result["stderr"], result["exit_code"]), ("", "", 0))


class ErrorSemanticsTest(RuntimeTestCase):
    def test_exception_gives_exit_1_and_clean_traceback(self) -> None:
        result = self.episode().step("def f():\n    return 1/0\nf()")
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("ZeroDivisionError: division by zero", result["stderr"])
        self.assertIn('File "<cell 1>", line 2, in f', result["stderr"])
        self.assertNotIn("coding_env_runtime", result["stderr"])
        self.assertNotIn("/usr/", result["stderr"])
        self.assertNotIn("/work/", result["stderr"])

    def test_output_printed_before_an_error_is_kept(self) -> None:
        result = self.episode().step("print('before')\nraise ValueError('boom')")
        self.assertEqual(result["stdout"], "before\n")
        self.assertIn("ValueError: boom", result["stderr"])

    def test_syntax_error(self) -> None:
        result = self.episode().step("print('unclosed")
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("SyntaxError", result["stderr"])
        self.assertIn("<cell 1>", result["stderr"])

    def test_errors_inside_library_code_hide_library_paths(self) -> None:
        result = self.episode().step("import collections\ncollections.Counter(5)")
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("TypeError", result["stderr"])
        self.assertNotIn("/usr/lib", result["stderr"])

    def test_recursion_error_is_data_and_next_step_works(self) -> None:
        ep = self.episode()
        result = ep.step("def r(n):\n    return r(n + 1)\nr(0)")
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("RecursionError", result["stderr"])
        self.assertEqual(ep.step("2 + 2")["stdout"], "4")


class OddInputTest(RuntimeTestCase):
    def test_lone_surrogate_in_code_is_a_syntax_error_not_a_crash(self) -> None:
        result = self.episode().step("x = 1\n'" + chr(0xD800) + "'")
        self.assertEqual((result["exit_code"], result["error_code"]), (1, "syntax_error"))
        self.assertIn("surrogates not allowed", result["stderr"])
        self.assertFalse(result["crashed"])

    def test_printing_a_lone_surrogate(self) -> None:
        result = self.episode().step("print(chr(0xD800))")
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(result["stdout"], "\\ud800\n")

    def test_nul_byte_in_code(self) -> None:
        result = self.episode().step("x = 1\0")
        self.assertEqual((result["exit_code"], result["error_code"]), (1, "syntax_error"))

    def test_empty_code(self) -> None:
        result = self.episode().step("")
        self.assertEqual((result["exit_code"], result["stdout"], result["stderr"]), (0, "", ""))


class ImportPolicyTest(RuntimeTestCase):
    def test_allowed_import_works(self) -> None:
        self.assertEqual(self.episode().step("import math\nmath.floor(2.5)")["stdout"], "2")

    def test_forbidden_import_names_allowed_modules(self) -> None:
        result = self.episode().step("import os")
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("import of 'os' is not allowed", result["stderr"])
        self.assertIn("collections, datetime, itertools, math", result["stderr"])

    def test_from_import_of_forbidden_module(self) -> None:
        result = self.episode().step("from subprocess import run")
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("'subprocess' is not allowed", result["stderr"])

    def test_forbidden_builtins_are_unavailable(self) -> None:
        for call in ("open('x')", "eval('1')", "exec('1')", "compile('1','f','eval')",
                     "__import__('os')", "input()", "breakpoint()"):
            with self.subTest(call=call):
                result = self.episode().step(call)
                self.assertEqual(result["exit_code"], 1)
                self.assertIn("is not available", result["stderr"])

    def test_deleting_builtins_does_not_lift_the_policy(self) -> None:
        ep = self.episode()
        ep.step("del __builtins__")
        result = ep.step("import os")
        self.assertEqual(result["exit_code"], 1)
        self.assertIn("not allowed", result["stderr"])

    def test_additional_imports_extend_the_list(self) -> None:
        ep = self.episode({"mode": "openenv", "additional_imports": ["json"]})
        self.assertEqual(ep.step("import json\njson.dumps([1])")["stdout"], '"[1]"')
        self.assertEqual(ep.step("import os")["exit_code"], 1)

    def test_full_policy_allows_everything(self) -> None:
        ep = self.full_episode()
        result = ep.step("import os, json\nprint(json.dumps(sorted(os.listdir('.'))))")
        self.assertEqual(result["exit_code"], 0, result["stderr"])
        self.assertEqual(result["stdout"], "[]\n")

    def test_full_policy_has_scientific_packages(self) -> None:
        ep = self.full_episode()
        result = ep.step("import numpy as np, sympy\nint(np.arange(5).sum()) + int(sympy.Integer(1))")
        self.assertEqual((result["exit_code"], result["stdout"]), (0, "11"), result["stderr"])
