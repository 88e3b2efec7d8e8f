"""The SDK's models against the API's own contract: the running stack's ``/openapi.json``.

The models are written by hand (the package has no dependencies and no build step), so this test
is what keeps them in step with the API: every field a model reads exists in the component it
names (``_WIRE_SCHEMA``) with a compatible type, a field the SDK cannot do without is one the API
always sends, and every field the API always sends is read (or left out on purpose,
``_WIRE_OMITTED``). A change of the contract fails here instead of in a user's program.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
import unittest
import urllib.request
from typing import Any

from support import stack_url

from coding_env_sdk import client, models

Json = dict[str, Any]

#: The SDK's own members, not wire fields: the unknown rest, the body as received, a response header.
SDK_ONLY_FIELDS = frozenset({"extra", "raw", "replayed"})

#: JSON Schema types each Python type accepts.
JSON_TYPES: dict[type, frozenset[str]] = {
    str: frozenset({"string"}),
    bool: frozenset({"boolean"}),
    int: frozenset({"integer"}),
    float: frozenset({"number", "integer"}),
    dict: frozenset({"object"}),
    list: frozenset({"array"}),
    tuple: frozenset({"array"}),
}


def wire_models() -> list[type]:
    """Every SDK dataclass that names the component it reads."""
    found: dict[str, type] = {}
    for module in (models, client):
        for value in vars(module).values():
            if dataclasses.is_dataclass(value) and isinstance(value, type) and hasattr(value, "_WIRE_SCHEMA"):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


class ContractChecker:
    """Compares dataclasses with the component schemas of an OpenAPI 3.1 document."""

    def __init__(self, document: Json) -> None:
        self.components: dict[str, Json] = document["components"]["schemas"]

    def resolve(self, schema: Json) -> Json:
        ref = schema.get("$ref")
        return self.components[ref.rsplit("/", 1)[-1]] if isinstance(ref, str) else schema

    def check_model(self, cls: type) -> list[str]:
        """The disagreements between ``cls`` and the component it names."""
        name = getattr(cls, "_WIRE_SCHEMA", None)
        if name not in self.components:
            return [f"{cls.__name__}: /openapi.json has no component {name!r}"]
        return self.check_object(cls, self.components[name], cls.__name__)

    def check_object(self, cls: type, schema: Json, where: str) -> list[str]:
        problems: list[str] = []
        properties: Json = schema.get("properties", {})
        required = set(schema.get("required", []))
        hints = typing.get_type_hints(cls)
        read = set()
        for f in dataclasses.fields(cls):
            if f.name in SDK_ONLY_FIELDS:
                continue
            read.add(f.name)
            at = f"{where}.{f.name}"
            if f.name not in properties:
                problems.append(f"{at}: not in the API (its fields: {sorted(properties)})")
                continue
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            # A property with a default is filled in by the API when it has nothing to say.
            always_sent = f.name in required or "default" in properties[f.name]
            if not has_default and not always_sent:
                problems.append(f"{at}: the SDK needs it but the API may leave it out")
            problems.extend(self.check_type(hints[f.name], properties[f.name], at))
        omitted = set(getattr(cls, "_WIRE_OMITTED", ()))
        for name in sorted(required - read - omitted):
            problems.append(f"{where}.{name}: the API always sends it and the SDK does not read it")
        return problems

    def check_type(self, hint: Any, prop: Json, at: str) -> list[str]:
        schema = self.resolve(prop)
        declared = schema.get("type")
        wire_types = {declared} if isinstance(declared, str) else set(declared or ())
        if not wire_types and "anyOf" in schema:
            for option in schema["anyOf"]:
                option_type = self.resolve(option).get("type")
                wire_types |= {option_type} if isinstance(option_type, str) else set(option_type or ())
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        nullable = False
        if origin in (typing.Union, types.UnionType):
            nullable = type(None) in args
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1:
                return [f"{at}: the SDK's type {hint} is not one type or None"]
            hint = rest[0]
            origin, args = typing.get_origin(hint), typing.get_args(hint)
        problems: list[str] = []
        if "null" in wire_types and not nullable:
            problems.append(f"{at}: the API may send null, the SDK's type {hint} does not allow it")
        wire_types.discard("null")
        if dataclasses.is_dataclass(hint):
            accepted = JSON_TYPES[dict]
            named = getattr(hint, "_WIRE_SCHEMA", None)
            ref = prop.get("$ref")
            if named is not None and ref is not None and not ref.endswith(f"/{named}"):
                problems.append(f"{at}: the API sends {ref}, the SDK reads it as {named}")
            problems.extend(self.check_object(hint, schema, at))
        else:
            base = origin or hint
            accepted = JSON_TYPES.get(base)
            if accepted is None:
                return [*problems, f"{at}: no JSON type known for the SDK's type {hint}"]
            if base in (list, tuple) and args and "items" in schema:
                problems.extend(self.check_type(args[0], schema["items"], f"{at}[]"))
        if not wire_types:
            problems.append(f"{at}: the API gives no type for it")
        elif not wire_types <= accepted:
            problems.append(f"{at}: the API sends {sorted(wire_types)}, the SDK's type {hint} takes {sorted(accepted)}")
        return problems


def fetch_document() -> Json:
    with urllib.request.urlopen(f"{stack_url()}/openapi.json", timeout=30) as response:
        return json.load(response)


class ModelsMatchTheApiContractTest(unittest.TestCase):
    def test_every_wire_model_agrees_with_the_api_s_openapi_document(self) -> None:
        checker = ContractChecker(fetch_document())
        names = {cls.__name__ for cls in wire_models()}
        # The models the client returns are all checked (a model losing its _WIRE_SCHEMA would skip it).
        self.assertLessEqual(
            {"StepResult", "CodeObservation", "StepInfo", "CodeState", "HistoryStep", "History", "Health",
             "EpisodeFile", "FileWritten"},
            names,
        )  # fmt: skip
        problems = [p for cls in wire_models() for p in checker.check_model(cls)]
        self.assertEqual(problems, [])


class CheckerCatchesDriftTest(unittest.TestCase):
    """The checker itself, on a contract that changed under a model (no stack needed)."""

    DOCUMENT: Json = {
        "components": {
            "schemas": {
                "Point": {
                    "type": "object",
                    "properties": {
                        "x": {"type": "integer"},
                        "label": {"type": ["string", "null"]},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["x", "label", "tags"],
                },
            }
        }
    }

    def problems(self, cls: type) -> list[str]:
        return ContractChecker(self.DOCUMENT).check_model(cls)

    def test_a_model_that_matches_has_no_problem(self) -> None:
        @dataclasses.dataclass
        class Point:
            _WIRE_SCHEMA = "Point"
            x: int
            label: str | None
            tags: tuple[str, ...] = ()
            extra: dict[str, Any] = dataclasses.field(default_factory=dict)

        self.assertEqual(self.problems(Point), [])

    def test_a_renamed_field_a_changed_type_a_new_null_and_an_unread_field_are_each_reported(self) -> None:
        @dataclasses.dataclass
        class Point:
            _WIRE_SCHEMA = "Point"
            x: str  # the API sends an integer
            label: str  # the API may send null
            colour: str = ""  # not in the API

        problems = self.problems(Point)
        self.assertEqual(len(problems), 4, problems)
        self.assertTrue(any(p.startswith("Point.x: the API sends ['integer']") for p in problems), problems)
        self.assertTrue(any(p.startswith("Point.label: the API may send null") for p in problems), problems)
        self.assertTrue(any(p.startswith("Point.colour: not in the API") for p in problems), problems)
        self.assertTrue(any(p.startswith("Point.tags: the API always sends it") for p in problems), problems)

    def test_a_field_the_sdk_needs_but_the_api_may_omit_is_reported(self) -> None:
        document = json.loads(json.dumps(self.DOCUMENT))
        document["components"]["schemas"]["Point"]["required"] = ["label", "tags"]

        @dataclasses.dataclass
        class Point:
            _WIRE_SCHEMA = "Point"
            x: int
            label: str | None = None
            tags: list[str] = dataclasses.field(default_factory=list)

        self.assertEqual(
            ContractChecker(document).check_model(Point),
            ["Point.x: the SDK needs it but the API may leave it out"],
        )


if __name__ == "__main__":
    unittest.main()
