"""One error hierarchy: the API's one error shape mapped to classes, from the real stack and from
the mapping itself (statuses the local stack does not produce with auth off)."""

from __future__ import annotations

import builtins
import socket
import unittest

from support import stack_url

import coding_env_sdk
from coding_env_sdk import (
    AuthError,
    BadRequestError,
    CodingEnv,
    CodingEnvError,
    ConflictError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
    error_from_response,
)
from coding_env_sdk.errors import parse_retry_after


class FromTheStackTest(unittest.TestCase):
    def test_unknown_episode_is_not_found(self) -> None:
        with self.assertRaises(NotFoundError) as ctx:
            CodingEnv(stack_url(), episode_id="ep_does_not_exist").state()
        err = ctx.exception
        self.assertEqual((err.status, err.code, err.endpoint), (404, "episode_not_found", "GET /state"))
        self.assertIn("ep_does_not_exist", err.message)

    def test_invalid_reset_is_a_bad_request_with_the_validation_detail(self) -> None:
        with self.assertRaises(BadRequestError) as ctx:
            CodingEnv(stack_url()).reset(step_timeout_s=10**9)
        err = ctx.exception
        self.assertEqual((err.status, err.code), (422, "validation_error"))
        self.assertIsInstance(err.details["detail"], list)
        self.assertEqual(err.details["detail"][0]["loc"], ["body", "step_timeout_s"])

    def test_code_over_the_size_limit_is_a_bad_request(self) -> None:
        with CodingEnv(stack_url()) as env:
            env.reset()
            with self.assertRaises(BadRequestError) as ctx:
                env.step("x = 1\n" + "#" * (1024 * 1024 + 1))
            self.assertEqual((ctx.exception.status, ctx.exception.code), (413, "payload_too_large"))

    def test_a_refused_connection_is_a_network_error(self) -> None:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with self.assertRaises(NetworkError) as ctx:
            CodingEnv(f"http://127.0.0.1:{port}", retry=False).health()
        self.assertEqual((ctx.exception.status, ctx.exception.code), (0, "network_error"))

    def test_the_client_giving_up_is_a_timeout_error(self) -> None:
        with CodingEnv(stack_url()) as env:
            env.reset(policy="full")
            # A client bound to the episode does not know its step limit, so its own 0.5 s applies
            # to the step (reset() by a client this impatient could time out on a loaded machine).
            impatient = CodingEnv(stack_url(), episode_id=env.episode_id, timeout_s=0.5, retry=False)
            with self.assertRaises(TimeoutError) as ctx:
                impatient.step("import time; time.sleep(2)")
            impatient.close(keep=True)
            self.assertEqual((ctx.exception.status, ctx.exception.code), (0, "client_timeout"))
            self.assertIsInstance(ctx.exception, builtins.TimeoutError)


class MappingTest(unittest.TestCase):
    def test_each_status_maps_to_its_class(self) -> None:
        cases = {
            400: BadRequestError, 401: AuthError, 403: AuthError, 404: NotFoundError, 405: BadRequestError,
            408: TimeoutError, 409: ConflictError, 413: BadRequestError, 415: BadRequestError,
            422: BadRequestError, 429: RateLimitError, 500: ServerError, 502: ServerError, 503: ServerError,
            504: TimeoutError,
        }  # fmt: skip
        for status, cls in cases.items():
            err = error_from_response(status, {"error": {"code": "c", "message": "m"}})
            self.assertIs(type(err), cls, status)
            self.assertIsInstance(err, CodingEnvError)

    def test_the_api_shape_gives_code_message_details_and_retry_after(self) -> None:
        body = {
            "error": {
                "code": "quota_exceeded",
                "message": "Daily step quota reached.",
                "details": {"quota": "steps_per_day", "limit": 10, "resets_at": "2026-12-03T00:00:00Z"},
            }
        }
        err = error_from_response(429, body, "120", "POST /step")
        self.assertIsInstance(err, RateLimitError)
        self.assertEqual((err.code, err.retry_after_s), ("quota_exceeded", 120.0))
        self.assertEqual(err.message, "Daily step quota reached.")
        self.assertEqual(err.details["quota"], "steps_per_day")
        self.assertEqual(str(err), "429 quota_exceeded: Daily step quota reached. (POST /step)")

    def test_a_body_not_in_the_api_shape_still_maps_by_status(self) -> None:
        gateway = error_from_response(503, {"message": "Service Unavailable"})
        self.assertIs(type(gateway), ServerError)
        self.assertEqual((gateway.code, gateway.message), ("http_503", "Service Unavailable"))
        empty = error_from_response(401, None)
        self.assertEqual((type(empty), empty.message), (AuthError, "HTTP 401"))

    def test_retry_after_takes_seconds_or_an_http_date(self) -> None:
        self.assertEqual(parse_retry_after("2"), 2.0)
        self.assertIsNone(parse_retry_after(None))
        self.assertIsNone(parse_retry_after("soon"))
        self.assertAlmostEqual(parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now_s=40.0), 60.0)

    def test_builtin_exceptions_still_catch_transport_errors(self) -> None:
        self.assertTrue(issubclass(coding_env_sdk.TimeoutError, builtins.TimeoutError))
        self.assertTrue(issubclass(NetworkError, ConnectionError))


if __name__ == "__main__":
    unittest.main()
