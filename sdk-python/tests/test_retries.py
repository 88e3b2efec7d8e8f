"""Retries over real sockets: a proxy in front of the real stack answers 503/429/409, drops
connections or loses a response; the SDK must retry with the same request_id, honour
Retry-After, and never run a step twice."""

from __future__ import annotations

import json
import threading
import time
import unittest

from support import Fault, FaultProxy, stack_url

from coding_env_sdk import (
    CodingEnv,
    ConflictError,
    NetworkError,
    RateLimitError,
    RetryPolicy,
    ServerError,
)


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()


JSON = {"Content-Type": "application/json"}


class RetryTest(unittest.TestCase):
    def setUp(self) -> None:
        self.proxy = FaultProxy(stack_url())
        self.addCleanup(self.proxy.close)
        self.env = CodingEnv(self.proxy.url, retry=RetryPolicy(initial_delay_s=0.05))
        self.addCleanup(self.env.close)
        self.env.reset()

    def step_attempts(self) -> list[dict]:
        return [s.body for s in self.proxy.requests("POST", "/step")]

    def test_503_with_retry_after_is_retried_after_that_long_with_the_same_request_id(self) -> None:
        unavailable = error_body("unavailable", "try again")
        self.proxy.add(Fault("POST", "/step", "answer", 503, {"Retry-After": "1", **JSON}, unavailable))
        result = self.env.step("print('once')")
        self.assertEqual((result.observation.stdout, result.step_count), ("once\n", 1))
        attempts = self.proxy.requests("POST", "/step")
        self.assertEqual(len(attempts), 2)
        self.assertEqual(attempts[0].body["request_id"], attempts[1].body["request_id"])
        self.assertGreaterEqual(attempts[1].at - attempts[0].at, 1.0)  # waited as told, not sooner

    def test_429_is_retried_after_retry_after(self) -> None:
        limited = error_body("rate_limited", "slow down")
        self.proxy.add(Fault("POST", "/step", "answer", 429, {"Retry-After": "1", **JSON}, limited))
        self.assertEqual(self.env.step("1 + 1").observation.stdout, "2")
        attempts = self.proxy.requests("POST", "/step")
        self.assertEqual(len(attempts), 2)
        self.assertGreaterEqual(attempts[1].at - attempts[0].at, 1.0)

    def test_a_retry_after_longer_than_allowed_raises_at_once(self) -> None:
        daily = error_body("quota_exceeded", "daily quota")
        self.proxy.add(Fault("POST", "/step", "answer", 429, {"Retry-After": "3600", **JSON}, daily))
        with self.assertRaises(RateLimitError) as ctx:
            self.env.step("print(1)")
        self.assertEqual((ctx.exception.code, ctx.exception.retry_after_s), ("quota_exceeded", 3600.0))
        self.assertEqual(len(self.step_attempts()), 1)
        self.assertEqual(self.env.state().step_count, 0)

    def test_a_dropped_connection_is_retried_with_the_same_request_id(self) -> None:
        self.proxy.add(Fault("POST", "/step", "drop"))
        self.proxy.add(Fault("POST", "/step", "drop"))
        result = self.env.step("print('after drops')")
        self.assertEqual(result.observation.stdout, "after drops\n")
        attempts = self.step_attempts()
        self.assertEqual(len(attempts), 3)
        self.assertEqual(len({a["request_id"] for a in attempts}), 1)

    def test_a_lost_response_is_replayed_and_the_code_runs_once(self) -> None:
        self.env.step("count = 0")
        self.proxy.add(Fault("POST", "/step", "forward_then_drop"))
        result = self.env.step("count += 1\ncount")
        self.assertEqual(result.observation.stdout, "1")  # ran once: not 2
        self.assertTrue(result.replayed)
        self.assertEqual(result.step_count, 2)
        self.assertEqual(len(self.env.history()), 2)

    def test_retries_are_bounded_then_the_last_error_is_raised(self) -> None:
        policy = RetryPolicy(max_retries=2, initial_delay_s=0.01)
        env = CodingEnv(self.proxy.url, retry=policy, episode_id=self.env.episode_id)
        for _ in range(3):
            self.proxy.add(Fault("POST", "/step", "answer", 503, JSON, error_body("unavailable", "down")))
        with self.assertRaises(ServerError) as ctx:
            env.step("print(1)")
        self.assertEqual((ctx.exception.status, ctx.exception.code), (503, "unavailable"))
        self.assertEqual(len(self.step_attempts()), 3)

    def test_retry_false_fails_fast(self) -> None:
        env = CodingEnv(self.proxy.url, retry=False, episode_id=self.env.episode_id)
        self.proxy.add(Fault("POST", "/step", "drop"))
        with self.assertRaises(NetworkError) as ctx:
            env.step("print(1)")
        self.assertEqual((ctx.exception.status, ctx.exception.code), (0, "network_error"))
        self.assertIsInstance(ctx.exception, ConnectionError)
        self.assertEqual(len(self.step_attempts()), 1)

    def test_fork_is_not_repeated_after_an_unknown_outcome_but_is_after_409(self) -> None:
        self.proxy.add(Fault("POST", "/episodes/", "answer", 503, JSON, error_body("unavailable", "down")))
        with self.assertRaises(ServerError):
            self.env.fork()
        self.assertEqual(len(self.proxy.requests("POST", "/episodes/")), 1)
        conflict = error_body("conflict", "busy")
        self.proxy.add(Fault("POST", "/episodes/", "answer", 409, {"Retry-After": "0", **JSON}, conflict))
        branch = self.env.fork()
        self.addCleanup(branch.close)
        self.assertEqual(len(self.proxy.requests("POST", "/episodes/")), 3)
        self.assertEqual(branch.fork_result.forked_from, self.env.episode_id)

    def same_request_running(self, retry_after: str, retry_within_s: float = 30) -> Fault:
        body = json.dumps(
            {
                "error": {
                    "code": "step_in_progress",
                    "message": "this request_id's first attempt is running",
                    "details": {"episode_id": "x", "same_request": True, "retry_within_s": retry_within_s},
                }
            }
        ).encode()
        return Fault("POST", "/step", "answer", 409, {"Retry-After": retry_after, **JSON}, body)

    def test_while_its_first_attempt_runs_a_step_is_sent_again_past_max_retries_with_the_same_request_id(
        self,
    ) -> None:
        # The server's answer to a retry whose first attempt runs on another API instance (the
        # single local API waits for such a twin itself, so the proxy gives it); then the real stack.
        env = CodingEnv(self.proxy.url, retry=RetryPolicy(max_retries=1), episode_id=self.env.episode_id)
        self.addCleanup(env.close)
        for _ in range(3):
            self.proxy.add(self.same_request_running("0"))
        result = env.step("print('ran once')")
        self.assertEqual((result.observation.stdout, result.step_count), ("ran once\n", 1))
        attempts = self.step_attempts()
        self.assertEqual(len(attempts), 4)
        self.assertEqual(len({a["request_id"] for a in attempts}), 1)

    def test_the_wait_for_a_first_attempt_ends_with_its_window_and_retry_false_does_not_wait(self) -> None:
        no_conflict_retries = RetryPolicy(retry_on_conflict=False)
        env = CodingEnv(self.proxy.url, retry=no_conflict_retries, episode_id=self.env.episode_id)
        self.addCleanup(env.close)
        for _ in range(10):
            self.proxy.add(self.same_request_running("1", retry_within_s=1))
        with self.assertRaises(ConflictError) as ctx:
            env.step("print(1)")
        self.assertIs(ctx.exception.details.get("same_request"), True)
        self.assertTrue(2 <= len(self.step_attempts()) <= 4)  # 1 s window + 1 s, answers 1 s apart
        strict = CodingEnv(self.proxy.url, retry=False, episode_id=self.env.episode_id)
        self.addCleanup(strict.close)
        before = len(self.step_attempts())
        with self.assertRaises(ConflictError):
            strict.step("print(1)")
        self.assertEqual(len(self.step_attempts()), before + 1)
        self.assertEqual(self.env.state().step_count, 0)

    def test_a_gateway_html_page_becomes_a_server_error(self) -> None:
        env = CodingEnv(self.proxy.url, retry=False, episode_id=self.env.episode_id)
        page = b"<html>Bad Gateway</html>"
        self.proxy.add(Fault("POST", "/step", "answer", 502, {"Content-Type": "text/html"}, page))
        with self.assertRaises(ServerError) as ctx:
            env.step("print(1)")
        self.assertEqual((ctx.exception.status, ctx.exception.code), (502, "http_502"))
        self.assertIn("Bad Gateway", ctx.exception.message)


class ConcurrentStepsTest(unittest.TestCase):
    """Two steps on one episode at once: the server commits one and answers the other 409 (which
    one depends on the server: the later arrival, or the later commit).

    They overlap on a loaded machine too: the slow step goes through the proxy, and the other is
    sent only once the proxy has handed the slow one to the server (not after a fixed sleep, which
    load can outlast before the slow step even starts). Without retries the slow cell is 5 s
    (nothing bounds it from above; the other must arrive before it commits); with the default
    policy it is 1.5 s on a warm worker, which the three retries, each after the server's
    Retry-After of 1 s, still outlast."""

    def run_concurrently(
        self, retry: RetryPolicy, slow_s: float
    ) -> tuple[list[object], CodingEnv, FaultProxy]:
        proxy = FaultProxy(stack_url())
        self.addCleanup(proxy.close)
        env = CodingEnv(proxy.url, retry=retry)
        self.addCleanup(env.close)
        env.reset(policy="full")
        env.step("warm = True")  # the episode's worker is up: the slow step takes its cell's time
        other = CodingEnv(proxy.url, episode_id=env.episode_id, retry=retry)
        self.addCleanup(other.close, keep=True)  # env's close deletes the episode
        outcomes: list[object] = []

        def slow() -> None:
            try:
                outcomes.append(env.step(f"import time; time.sleep({slow_s})"))
            except ConflictError as err:
                outcomes.append(err)

        thread = threading.Thread(target=slow)
        thread.start()
        try:
            proxy.wait_forwarded("POST", "/step", count=2)  # the warm-up step, then the slow one
            try:
                outcomes.append(other.step("1"))
            except ConflictError as err:
                outcomes.append(err)
        finally:
            thread.join()
        return outcomes, env, proxy

    def test_one_of_two_concurrent_steps_is_a_conflict_error_when_not_retried(self) -> None:
        outcomes, env, proxy = self.run_concurrently(RetryPolicy(retry_on_conflict=False), slow_s=5)
        conflicts = [o for o in outcomes if isinstance(o, ConflictError)]
        self.assertEqual(len(conflicts), 1, outcomes)
        self.assertEqual(conflicts[0].status, 409)
        self.assertIsNotNone(conflicts[0].retry_after_s)
        self.assertEqual(len(proxy.requests("POST", "/step")), 3)  # the warm-up and the two: no retry
        self.assertEqual(env.state().step_count, 2)  # the warm-up and one of the two

    def test_by_default_the_refused_step_is_retried_and_both_commit(self) -> None:
        # The slow step's window is bounded from above (the retries must outlast it), so on a
        # loaded machine the second step can arrive after it committed: no overlap, nothing to
        # retry. Such a round proves nothing either way and is run again, up to three rounds.
        rounds: list[list[int]] = []
        for _ in range(3):
            outcomes, env, proxy = self.run_concurrently(RetryPolicy(), slow_s=1.5)
            self.assertTrue(all(not isinstance(o, Exception) for o in outcomes), outcomes)
            self.assertEqual(len(outcomes), 2)
            statuses = [s.status for s in proxy.requests("POST", "/step")]
            self.assertEqual(statuses.count(200), 3, statuses)
            self.assertEqual(env.state().step_count, 3)  # the warm-up and both
            rounds.append(statuses)
            if 409 in statuses:
                return  # one of the two was refused (they did overlap), then sent again until it committed
        self.fail(f"the two steps never overlapped in three rounds: {rounds}")


if __name__ == "__main__":
    unittest.main()
