"""The request bodies made from TrainConfig: they admit exactly what the config admits."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from engine.training import KINDS, LIMITS, ConfigError, Limits, TrainConfig
from server.config import SPEED
from server.schemas import RunChanges, RunConfig

WRONG_TYPES = ["1", True, None, [1], {}]


def candidates(limits: Limits, kind: Any) -> list[Any]:
    """Values on, just inside and just beyond every edge of ``limits``, and of the wrong type."""
    if kind is str:
        return [*limits.choices, "none of them", 1, *WRONG_TYPES]
    low, high = limits.low, limits.high
    assert low is not None and high is not None
    whole = kind is not float
    step = 1 if whole else (high - low) / 1000
    numbers = [low - step, low, low + step, (low + high) / 2, high - step, high, high + step]
    numbers = [math.floor(n) if whole else n for n in numbers]
    if typing.get_origin(kind) is tuple:
        fewest, most = limits.length or (0, 4)
        lengths = range(max(fewest - 1, 0), most + 2)
        good = [int(low)] * most
        return [good[:n] for n in lengths] + [[n] for n in numbers] + [[16.5], [True], 16, "16"]
    if whole:
        return [*numbers, 1.5, 2.0, 10**400, *WRONG_TYPES]
    return [*numbers, 1e-300, math.nan, math.inf, -math.inf, *WRONG_TYPES]


def body_admits(model: type[BaseModel], name: str, value: Any) -> bool:
    """As FastAPI does: the JSON text parsed by json.loads, then validated."""
    try:
        model.model_validate(json.loads(json.dumps({name: value})))
    except ValidationError as error:
        assert error.errors()[0]["loc"][0] == name
        return False
    return True


def config_admits(name: str, value: Any) -> bool:
    try:
        TrainConfig(**{name: json.loads(json.dumps(value))})
    except ConfigError as error:
        assert error.field == name
        return False
    except TypeError:  # not even iterable where a tuple is due
        return False
    return True


@pytest.mark.parametrize("name", list(LIMITS))
def test_the_run_config_body_admits_exactly_what_the_config_admits(name: str) -> None:
    verdicts = {
        repr(value): (body_admits(RunConfig, name, value), config_admits(name, value))
        for value in candidates(LIMITS[name], KINDS[name])
    }
    disagreements = {value: both for value, both in verdicts.items() if len(set(both)) > 1}
    assert not disagreements, f"(body, config) disagree on {name}: {disagreements}"
    assert {body for body, _ in verdicts.values()} == {True, False}  # the edges were found


def test_the_body_schema_carries_each_fields_default_help_and_limits() -> None:
    properties = RunConfig.model_json_schema()["properties"]
    assert list(properties) == [spec.name for spec in dataclasses.fields(TrainConfig)]
    for spec in dataclasses.fields(TrainConfig):
        schema = properties[spec.name]
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        assert (schema["default"], schema["description"]) == (default, LIMITS[spec.name].help)
    assert properties["lr"] | {"title": None} == {
        "title": None,
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 100,
        "default": 3.0,
        "description": "learning rate η",
    }
    assert properties["activation"]["enum"] == ["sigmoid", "relu", "tanh"]
    assert (properties["hidden"]["minItems"], properties["hidden"]["maxItems"]) == (1, 4)
    assert properties["hidden"]["items"] == {"type": "integer", "minimum": 1, "maximum": 512}


@pytest.mark.parametrize(
    ("name", "limits", "kind"), [("lr", LIMITS["lr"], float), ("speed", SPEED, float)]
)
def test_live_changes_keep_the_same_limits(name: str, limits: Limits, kind: Any) -> None:
    for value in candidates(limits, kind):
        if value is not None:  # null: "as fast as possible" for speed, refused for lr
            assert body_admits(RunChanges, name, value) == limits.admits(value, kind), value
    assert body_admits(RunChanges, "speed", None)
    assert not body_admits(RunChanges, "lr", None)
