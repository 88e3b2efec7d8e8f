"""Typed results: the wire bodies of ``docs/API.md`` as dataclasses, named after OpenEnv's
``coding_env`` models and keeping the protocol's field names (``observation.stdout``,
``exit_code``, ``reward``, ``episode_id``...), so code reads the same as with OpenEnv's client.

Fields the server adds later are kept in ``extra``; ``raw`` (on results) is the body as received.
Each model names the ``/openapi.json`` component it reads (``_WIRE_SCHEMA``): tests/test_contract.py
checks its fields against the API's document, so a change of the contract fails there.

Example::

    result = env.step("print('hi')\\n1 + 1")
    result.observation.stdout     # "hi\\n2"
    result.observation.exit_code  # 0
    result.reward                 # 0.1
    result.info.duration_ms       # 0.8
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from . import _display

ImportPolicy = Literal["openenv", "full"]


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _rest(body: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in known}


@dataclass(frozen=True)
class CodeAction:
    """OpenEnv's ``CodeAction``: the Python code of one step, with optional metadata recorded
    with the step.

    Example::

        env.step(CodeAction(code="x = 5 + 3\\nprint(x)", metadata={"turn": 1}))
    """

    code: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """The action as the API takes it.

        Example::

            CodeAction("print(1)").to_wire()  # {"code": "print(1)"}
        """
        wire: dict[str, Any] = {"code": self.code}
        if self.metadata:
            wire["metadata"] = dict(self.metadata)
        return wire


@dataclass(frozen=True)
class CodeObservation:
    """OpenEnv's ``CodeObservation``: what the cell printed and how it ended.

    Attributes:
        stdout: printed output, then the last expression's value (JSON, else ``repr``).
        stderr: a clean traceback of the cell when it failed, else "".
        exit_code: 0 on success, 1 on any error (exception, syntax error, forbidden import, timeout).

    Example::

        obs = env.step("1/0").observation
        obs.exit_code  # 1
        obs.stderr     # "Traceback (most recent call last): ... ZeroDivisionError: division by zero"
    """

    _WIRE_SCHEMA = "CodeObservation"  # what it reads: a component of /openapi.json

    stdout: str
    stderr: str
    exit_code: int

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> CodeObservation:
        """Reads the wire object.

        Example::

            CodeObservation.from_wire({"stdout": "2", "stderr": "", "exit_code": 0})
        """
        return cls(
            stdout=str(body.get("stdout") or ""),
            stderr=str(body.get("stderr") or ""),
            exit_code=int(body.get("exit_code", 0)),
        )


@dataclass(frozen=True)
class DroppedVariable:
    """A variable the executor could not keep between steps (open files, generators, sockets...).

    Example::

        [v.name for v in result.info.dropped_variables]  # ["f"]
    """

    name: str
    type: str


@dataclass(frozen=True)
class StepInfo:
    """coding-env's extra facts about a step (``info`` next to ``observation``).

    Attributes:
        duration_ms: time the cell ran, in milliseconds.
        timed_out: the cell hit the step limit; the episode's Python state is as before the step.
        stdout_truncated, stderr_truncated: the output was cut.
        dropped_variables: variables that could not be kept for the next step.
        error_code: the executor's (``syntax_error``, ``timeout``, ``out_of_memory``...), if any.
        extra: anything else the server sent (``out_of_memory``, ``crashed``...).

    Example::

        info = env.step("while True: pass", timeout_s=1).info
        info.timed_out, info.error_code  # (True, "timeout")
    """

    _WIRE_SCHEMA = "StepInfo"  # what it reads: a component of /openapi.json

    duration_ms: float = 0.0
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    dropped_variables: tuple[DroppedVariable, ...] = ()
    error_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = ("duration_ms", "timed_out", "stdout_truncated", "stderr_truncated", "dropped_variables", "error_code")

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> StepInfo:
        """Reads the wire object.

        Example::

            StepInfo.from_wire({"duration_ms": 0.8, "timed_out": False})
        """
        dropped = tuple(
            DroppedVariable(name=str(v.get("name", "")), type=str(v.get("type", "")))
            for v in body.get("dropped_variables") or ()
            if isinstance(v, Mapping)
        )
        return cls(
            duration_ms=float(body.get("duration_ms") or 0.0),
            timed_out=bool(body.get("timed_out", False)),
            stdout_truncated=bool(body.get("stdout_truncated", False)),
            stderr_truncated=bool(body.get("stderr_truncated", False)),
            dropped_variables=dropped,
            error_code=body.get("error_code"),
            extra=_rest(body, cls._KNOWN),
        )


@dataclass(frozen=True)
class StepResult:
    """The result of ``reset()``, ``step()`` and ``fork()``: OpenEnv's ``observation``,
    ``reward``, ``done`` plus ``episode_id``, ``step_count``, ``info``... In a notebook it shows as a
    small table (stdout, stderr, exit code, reward); in IPython's console as plain text.

    Attributes:
        observation: what the cell printed and its exit code.
        reward: OpenEnv's reward (safety -1.0 plus quality +0.1 short code / -0.2 syntax error).
        done: never set by this environment (OpenEnv's coding_env); kept for the protocol.
        episode_id, step_count: the episode and its number of committed steps.
        metadata: OpenEnv's observation metadata (``last_code``, ``safety_violation``).
        info: the step's extra facts (``None`` on reset and fork).
        forked_from: on a fork's result, the source episode's id.
        replayed: the server answered a stored result for this ``request_id`` (the code ran once,
            earlier: a retry after a lost response).
        raw: the body as received (``to_dict()`` returns a copy).

    Example::

        result = env.step("print('hi')")
        if result.ok:
            print(result.observation.stdout, result.reward)  # hi 0.1
        result  # as a notebook cell's last value: a small table
    """

    _WIRE_SCHEMA = "StepResponse"  # what it reads: a component of /openapi.json

    observation: CodeObservation
    reward: float | None
    done: bool
    episode_id: str
    step_count: int
    metadata: dict[str, Any] = field(default_factory=dict)
    info: StepInfo | None = None
    forked_from: str | None = None
    replayed: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: Rich outputs of the step (``display()``, matplotlib figures): Jupyter MIME bundles
    #: ``{"data": {mime: str}, "metadata": {}}``, empty when none. ``show()`` renders them in IPython.
    display: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def from_wire(cls, body: Mapping[str, Any], *, replayed: bool = False) -> StepResult:
        """Reads a reset/step/fork body.

        Example::

            StepResult.from_wire({"observation": {"stdout": "2", "stderr": "", "exit_code": 0},
                                  "reward": 0.1, "done": False, "episode_id": "ep_1", "step_count": 1})
        """
        info = body.get("info")
        return cls(
            observation=CodeObservation.from_wire(body["observation"]),
            reward=_float_or_none(body.get("reward")),
            done=bool(body.get("done", False)),
            episode_id=str(body["episode_id"]),
            step_count=int(body.get("step_count", 0)),
            metadata=dict(body.get("metadata") or {}),
            info=StepInfo.from_wire(info) if isinstance(info, Mapping) else None,
            forked_from=body.get("forked_from"),
            replayed=replayed,
            raw=dict(body),
            display=[dict(b) for b in body.get("display") or [] if isinstance(b, Mapping)],
        )

    def show(self) -> None:
        """Shows the step's display outputs (figures, tables) in IPython/Jupyter, if available.

        Example::

            env.step("import matplotlib.pyplot as plt; plt.plot([1, 2])").show()
        """
        try:
            from IPython.display import display as ipython_display
        except ImportError:
            for bundle in self.display:
                print(bundle.get("data", {}).get("text/plain", ""))
            return
        for bundle in self.display:
            ipython_display(bundle.get("data", {}), raw=True, metadata=bundle.get("metadata") or None)

    @property
    def ok(self) -> bool:
        """True when the cell ran without error (``exit_code`` 0).

        Example::

            if not env.step(code).ok:
                print("cell failed")
        """
        return self.observation.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        """The wire body, for JSON (a trajectory file, a log line).

        Example::

            with open("trajectory.jsonl", "a") as fh:
                fh.write(json.dumps(result.to_dict()) + "\\n")
        """
        return dict(self.raw)

    def _repr_html_(self) -> str:
        """Jupyter's rich view: exit code, reward, step, stdout and stderr.

        Example::

            result._repr_html_()  # '<div class="coding-env-step" ...'
        """
        return _display.step_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text view.

        Example::

            from IPython.lib.pretty import pretty
            print(pretty(result))  # exit_code=0 reward=0.1 step=1 ...
        """
        printer.text("StepResult(...)" if cycle else _display.step_text(self))


@dataclass(frozen=True)
class CodeState:
    """OpenEnv's ``CodeState`` plus coding-env's episode fields (``GET /state``).

    Attributes:
        episode_id, step_count, last_exit_code: OpenEnv's fields.
        policy: ``"openenv"`` (the reference's import allow-list) or ``"full"`` (all of Python).
        additional_imports: modules added to the allow-list.
        step_timeout_s: the episode's per-step limit in seconds.
        ttl_s: idle seconds before the episode expires.
        seed: the ``seed`` given to ``reset()``, when one was.
        forked_from: the source episode's id, when this episode is a fork.
        created_at, updated_at, expires_at: ISO 8601 timestamps.
        extra: anything else the server sent.

    Example::

        state = env.state()
        print(state.episode_id, state.step_count, state.last_exit_code)
    """

    _WIRE_SCHEMA = "CodeState"  # what it reads: a component of /openapi.json

    episode_id: str | None
    step_count: int = 0
    last_exit_code: int = 0
    policy: str | None = None
    additional_imports: tuple[str, ...] = ()
    step_timeout_s: float | None = None
    ttl_s: float | None = None
    seed: int | None = None
    forked_from: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    expires_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = (
        "episode_id", "step_count", "last_exit_code", "policy", "additional_imports", "step_timeout_s",
        "ttl_s", "seed", "forked_from", "created_at", "updated_at", "expires_at",
    )  # fmt: skip

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> CodeState:
        """Reads a ``/state`` body.

        Example::

            CodeState.from_wire({"episode_id": "ep_1", "step_count": 3, "last_exit_code": 0})
        """
        return cls(
            episode_id=body.get("episode_id"),
            step_count=int(body.get("step_count") or 0),
            last_exit_code=int(body.get("last_exit_code") or 0),
            policy=body.get("policy"),
            additional_imports=tuple(body.get("additional_imports") or ()),
            step_timeout_s=_float_or_none(body.get("step_timeout_s")),
            ttl_s=_float_or_none(body.get("ttl_s")),
            seed=body.get("seed"),
            forked_from=body.get("forked_from"),
            created_at=body.get("created_at"),
            updated_at=body.get("updated_at"),
            expires_at=body.get("expires_at"),
            extra=_rest(body, cls._KNOWN),
        )


@dataclass(frozen=True)
class HistoryStep:
    """One step of an episode's trajectory (``GET /episodes/{id}/history``).

    Attributes:
        step: 1-based step number.
        code, observation, reward, done, metadata, info: as in the step's result.
        request_id: the step's idempotency key, when it had one.
        started_at: ISO 8601 time the step began; duration_ms: how long it took.
        history_truncated: code and output were cut to 64 KiB each to keep the record small.
        extra: anything else the server sent.

    Example::

        for s in env.history():
            print(s.step, s.code, s.observation.exit_code, s.reward)
    """

    _WIRE_SCHEMA = "HistoryStep"  # what it reads: a component of /openapi.json

    step: int
    code: str
    observation: CodeObservation
    reward: float | None = None
    done: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    info: StepInfo | None = None
    request_id: str | None = None
    started_at: str | None = None
    duration_ms: float = 0.0
    history_truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = (
        "step", "code", "observation", "reward", "done", "metadata", "info", "request_id", "started_at",
        "duration_ms", "history_truncated",
    )  # fmt: skip

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> HistoryStep:
        """Reads one step record.

        Example::

            HistoryStep.from_wire({"step": 1, "code": "1+1", "observation": {"stdout": "2", "stderr": "",
                                   "exit_code": 0}, "reward": 0.1, "done": False})
        """
        info = body.get("info")
        return cls(
            step=int(body.get("step") or 0),
            code=str(body.get("code") or ""),
            observation=CodeObservation.from_wire(body.get("observation") or {}),
            reward=_float_or_none(body.get("reward")),
            done=bool(body.get("done", False)),
            metadata=dict(body.get("metadata") or {}),
            info=StepInfo.from_wire(info) if isinstance(info, Mapping) else None,
            request_id=body.get("request_id"),
            started_at=body.get("started_at"),
            duration_ms=float(body.get("duration_ms") or 0.0),
            history_truncated=bool(body.get("history_truncated", False)),
            extra=_rest(body, cls._KNOWN),
        )


@dataclass(frozen=True)
class History:
    """An episode's trajectory (or one page of it), oldest step first. Iterable over its steps.

    Attributes:
        episode_id: the episode.
        steps: the steps of this page (all of them from ``history()`` without ``limit``).
        next_cursor: pass it as ``cursor`` to get the next page; ``None`` on the last page.

    Example::

        history = env.history()
        len(history), [s.code for s in history]
        page = env.history(limit=100)
        while page.next_cursor:
            page = env.history(limit=100, cursor=page.next_cursor)
    """

    _WIRE_SCHEMA = "HistoryPage"  # what it reads: a component of /openapi.json

    episode_id: str
    steps: list[HistoryStep]
    next_cursor: str | None = None

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> History:
        """Reads a history body, paged (``next_cursor``) or not.

        Example::

            History.from_wire({"episode_id": "ep_1", "steps": [], "next_cursor": None})
        """
        steps = [HistoryStep.from_wire(s) for s in body.get("steps") or () if isinstance(s, Mapping)]
        cursor = body.get("next_cursor")
        return cls(
            episode_id=str(body.get("episode_id") or ""),
            steps=steps,
            next_cursor=cursor if isinstance(cursor, str) and cursor else None,
        )

    def __iter__(self) -> Iterator[HistoryStep]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> HistoryStep:
        return self.steps[index]

    def _repr_html_(self) -> str:
        """Jupyter's rich view: one row per step (step, code, exit code, reward, stdout).

        Example::

            env.history()  # as a notebook cell's last value: a table of the trajectory
        """
        return _display.history_html(self)


@dataclass(frozen=True)
class Health:
    """``GET /health``: the server's status and whether it needs an API key.

    Example::

        CodingEnv().health()  # Health(status="healthy", auth_required=False)
    """

    _WIRE_SCHEMA = "Health"  # what it reads: a component of /openapi.json

    status: str
    auth_required: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Health:
        """Reads a ``/health`` body.

        Example::

            Health.from_wire({"status": "healthy", "auth_required": False})
        """
        return cls(
            status=str(body.get("status") or ""),
            auth_required=bool(body.get("auth_required", False)),
            extra=_rest(body, ("status", "auth_required")),
        )
