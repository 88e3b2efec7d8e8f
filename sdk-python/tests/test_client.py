"""CodingEnv against the real local stack: OpenEnv's calls, fork, history, delete, close."""

from __future__ import annotations

import os
import unittest
import uuid
from unittest import mock

from support import Fault, FaultProxy, stack_url

from coding_env_sdk import (
    CodeAction,
    CodeState,
    CodingEnv,
    CodingEnvError,
    History,
    NotFoundError,
    ServerError,
    StepResult,
)


class ResetStepStateTest(unittest.TestCase):
    def setUp(self) -> None:
        self.env = CodingEnv(stack_url())
        self.addCleanup(self.env.close)

    def test_reset_gives_a_fresh_episode_as_a_typed_result(self) -> None:
        result = self.env.reset(seed=7, policy="full", step_timeout_s=10)
        self.assertIsInstance(result, StepResult)
        self.assertTrue(result.episode_id.startswith("ep_"))
        self.assertEqual(self.env.episode_id, result.episode_id)
        self.assertEqual((result.step_count, result.observation.exit_code, result.reward), (0, 0, 0.0))
        self.assertIsInstance(result.reward, float)
        state = self.env.state()
        self.assertIsInstance(state, CodeState)
        self.assertEqual((state.seed, state.policy, state.step_timeout_s), (7, "full", 10.0))

    def test_python_state_persists_across_steps(self) -> None:
        self.env.reset()
        self.env.step("x = 6 * 7")
        result = self.env.step(CodeAction("print('x is', x)\nx", metadata={"turn": 2}))
        self.assertEqual(result.observation.stdout, "x is 42\n\n42")  # printed, then the value
        self.assertTrue(result.ok)
        self.assertEqual(result.step_count, 2)
        self.assertEqual(result.reward, 0.1)
        self.assertIsNotNone(result.info)
        self.assertGreater(result.info.duration_ms, 0)
        self.assertEqual(result.to_dict()["observation"]["stdout"], "x is 42\n\n42")

    def test_any_action_object_with_code_is_accepted_like_openenvs_code_action(self) -> None:
        class OpenEnvCodeAction:  # the shape of openenv's CodeAction (a pydantic model)
            def __init__(self, code: str) -> None:
                self.code = code
                self.metadata = {"source": "openenv"}

        self.env.reset()
        self.assertEqual(self.env.step(OpenEnvCodeAction("2 ** 10")).observation.stdout, "1024")
        with self.assertRaises(TypeError):
            self.env.step(42)  # type: ignore[arg-type]

    def test_a_failing_cell_is_data_not_an_exception(self) -> None:
        self.env.reset()
        result = self.env.step({"code": "1/0"})
        self.assertFalse(result.ok)
        self.assertEqual(result.observation.exit_code, 1)
        self.assertIn("ZeroDivisionError", result.observation.stderr)
        self.assertEqual(self.env.state().last_exit_code, 1)

    def test_a_cell_over_its_time_limit_is_data(self) -> None:
        self.env.reset(policy="full")
        # A sleep, not a busy loop: the runtime's own suite shows a timeout stops busy code; here
        # only the answer's shape is checked, without burning a core for the limit.
        result = self.env.step("import time\ntime.sleep(30)", timeout_s=0.3)
        self.assertEqual(result.observation.exit_code, 1)
        self.assertTrue(result.info.timed_out)

    def test_each_step_gets_its_own_request_id_and_a_repeated_one_is_replayed(self) -> None:
        self.env.reset()
        self.env.step("n = 0")
        self.env.step("n += 1")
        first = self.env.step("n += 1\nn", request_id="req-fixed")
        again = self.env.step("n += 1\nn", request_id="req-fixed")
        self.assertEqual((first.observation.stdout, again.observation.stdout), ("2", "2"))
        self.assertFalse(first.replayed)
        self.assertTrue(again.replayed)
        ids = [s.request_id for s in self.env.history()]
        self.assertEqual(len(ids), 3)
        self.assertEqual(len(set(ids)), 3)
        self.assertEqual(ids[2], "req-fixed")

    def test_calls_before_reset_say_what_to_do(self) -> None:
        with self.assertRaises(CodingEnvError) as ctx:
            self.env.step("print(1)")
        self.assertEqual(ctx.exception.code, "episode_required")

    def test_health(self) -> None:
        health = self.env.health()
        self.assertEqual(health.status, "healthy")
        self.assertIsInstance(health.auth_required, bool)


class ForkHistoryDeleteTest(unittest.TestCase):
    def setUp(self) -> None:
        self.env = CodingEnv(stack_url())
        self.addCleanup(self.env.close)
        self.env.reset()

    def test_fork_copies_state_and_history_and_then_diverges(self) -> None:
        self.env.step("x = 1")
        branch = self.env.fork()
        self.addCleanup(branch.close)
        self.assertEqual(branch.fork_result.forked_from, self.env.episode_id)
        self.assertNotEqual(branch.episode_id, self.env.episode_id)
        branch.step("x = 2")
        self.assertEqual(self.env.step("x").observation.stdout, "1")
        self.assertEqual(branch.step("x").observation.stdout, "2")
        self.assertEqual([s.code for s in branch.history()], ["x = 1", "x = 2", "x"])

    def test_fork_of_a_fresh_episode(self) -> None:
        branch = self.env.fork()
        self.addCleanup(branch.close)
        self.assertEqual((branch.fork_result.step_count, branch.fork_result.forked_from), (0, self.env.episode_id))
        self.assertEqual(branch.step("print('in the fork')").step_count, 1)
        self.assertEqual(len(branch.history()), 1)

    def test_history_is_the_trajectory_oldest_first(self) -> None:
        for code in ("a = 1", "a + 1", "1/0"):
            self.env.step(code)
        history = self.env.history()
        self.assertIsInstance(history, History)
        self.assertEqual(history.episode_id, self.env.episode_id)
        self.assertEqual([s.step for s in history], [1, 2, 3])
        self.assertEqual(history[1].observation.stdout, "2")
        self.assertEqual(history[2].observation.exit_code, 1)
        self.assertIsNone(history.next_cursor)
        self.assertIn("<table", history._repr_html_())

    def test_history_pages_on_this_server_whichever_shape_it_answers(self) -> None:
        for i in range(5):
            self.env.step(f"v = {i}")
        page = self.env.history(limit=2)
        if page.next_cursor is None:  # a server that does not page answers everything
            self.assertEqual(len(page), 5)
        else:
            self.assertEqual(len(page), 2)
        self.assertEqual([s.step for s in self.env.iter_history(page_size=2)], [1, 2, 3, 4, 5])
        self.assertEqual(len(self.env.history()), 5)

    def test_delete_removes_the_episode_and_the_client_can_reset_again(self) -> None:
        episode_id = self.env.episode_id
        self.env.delete()
        self.assertIsNone(self.env.episode_id)
        with self.assertRaises(NotFoundError):
            CodingEnv(stack_url(), episode_id=episode_id).state()
        self.env.delete()  # nothing bound: not an error
        self.env.reset()
        self.assertEqual(self.env.step("print('back')").observation.stdout, "back\n")


class PagedHistoryTest(unittest.TestCase):
    """The paged shape the API is gaining (limit/cursor/next_cursor), served by the proxy."""

    proxy: FaultProxy
    env: CodingEnv

    # The tests only read the episode's history, so they share one episode of five steps.
    @classmethod
    def setUpClass(cls) -> None:
        cls.proxy = FaultProxy(stack_url())
        cls.addClassCleanup(cls.proxy.close)
        cls.proxy.page_history = True
        cls.env = CodingEnv(cls.proxy.url)
        cls.addClassCleanup(cls.env.close)
        cls.env.reset()
        for i in range(5):
            cls.env.step(f"print({i})")

    def setUp(self) -> None:
        self.proxy.forget_requests()  # each test counts its own

    def test_history_follows_next_cursor_to_the_end(self) -> None:
        history = self.env.history()
        self.assertEqual([s.step for s in history], [1, 2, 3, 4, 5])
        self.assertIsNone(history.next_cursor)
        self.assertEqual(len(self.proxy.requests("GET", "/episodes/")), 3)  # pages of 2, 2, 1

    def test_one_page_and_its_cursor(self) -> None:
        page = self.env.history(limit=3)
        self.assertEqual([s.step for s in page], [1, 2, 3])
        self.assertEqual(page.next_cursor, "c3")
        rest = self.env.history(limit=3, cursor=page.next_cursor)
        self.assertEqual([s.step for s in rest], [4, 5])
        self.assertIsNone(rest.next_cursor)
        self.assertTrue(self.proxy.requests("GET", "/episodes/")[-1].path.endswith("?limit=3&cursor=c3"))

    def test_iter_history_fetches_page_size_steps_per_request(self) -> None:
        self.assertEqual([s.observation.stdout for s in self.env.iter_history(page_size=4)],
                         ["0\n", "1\n", "2\n", "3\n", "4\n"])  # fmt: skip
        paths = [s.path for s in self.proxy.requests("GET", "/episodes/")]
        self.assertEqual(len(paths), 2)
        self.assertTrue(paths[0].endswith("?limit=4"))


class LifecycleTest(unittest.TestCase):
    def test_with_block_deletes_the_episode(self) -> None:
        with CodingEnv(stack_url()) as env:
            episode_id = env.reset().episode_id
            env.step("print(1)")
        with self.assertRaises(NotFoundError):
            CodingEnv(stack_url(), episode_id=episode_id).state()
        with self.assertRaises(CodingEnvError) as ctx:
            env.step("print(2)")
        self.assertEqual(ctx.exception.code, "client_closed")
        env.close()  # twice: not an error

    def test_an_error_in_the_block_is_not_hidden_by_a_failing_close(self) -> None:
        proxy = FaultProxy(stack_url())
        self.addCleanup(proxy.close)
        down = Fault("DELETE", "/episodes/", "answer", 503, {"Content-Type": "application/json"}, b"{}")
        with self.assertRaises(KeyError):
            with CodingEnv(proxy.url, retry=False) as env:
                env.reset()
                proxy.add(down)
                raise KeyError("the block's own error")
        with self.assertRaises(ServerError):  # without one, the failing close is the error
            with CodingEnv(proxy.url, retry=False) as env:
                env.reset()
                proxy.add(down)

    def test_close_keep_leaves_the_episode_for_another_client(self) -> None:
        env = CodingEnv(stack_url())
        episode_id = env.reset().episode_id
        env.step("kept = 'yes'")
        env.close(keep=True)
        with CodingEnv(stack_url(), episode_id=episode_id) as again:
            self.assertEqual(again.step("kept").observation.stdout, '"yes"')  # the value as JSON

    def test_base_url_and_api_key_come_from_the_environment(self) -> None:
        proxy = FaultProxy(stack_url())
        self.addCleanup(proxy.close)
        key = f"ck_{uuid.uuid4().hex}"
        with mock.patch.dict(os.environ, {"CODING_ENV_URL": proxy.url, "CODING_ENV_API_KEY": key}):
            env = CodingEnv()
        self.assertEqual(env.base_url, proxy.url)
        env.health()
        env.close()
        self.assertEqual(proxy.requests("GET", "/health")[0].headers.get("authorization"), f"Bearer {key}")

    def test_explicit_options_win_over_the_environment(self) -> None:
        url = stack_url()
        with mock.patch.dict(os.environ, {"CODING_ENV_URL": "http://127.0.0.1:1"}):
            env = CodingEnv(url, api_key="explicit")
        self.assertEqual(env.base_url, url.rstrip("/"))
        env.close()

    def test_default_base_url_is_localhost_8000(self) -> None:
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(CodingEnv().base_url, "http://localhost:8000")


if __name__ == "__main__":
    unittest.main()
