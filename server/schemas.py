"""The run's request bodies: ``POST /api/run``'s config, ``PATCH /api/run``'s live changes and
``POST /api/race``'s lanes.

Nothing here is written twice. :class:`RunConfig` is made from :class:`TrainConfig`'s fields:
each field's type, default, help and :class:`~engine.training.Limits` become a pydantic field,
so the body, its OpenAPI schema (``minimum``, ``exclusiveMinimum``, ``maximum``, ``enum``,
``minItems``...) and the engine's own check of a config cannot disagree. The live changes
reuse the config's limits for ``lr`` and the run's pace limits (:data:`SPEED`) for ``speed``.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from engine.training import KINDS, LIMITS, Limits, TrainConfig
from server.config import SPEED
from server.trainer.race import LANES, PACES

# Exactly the fields named, each of exactly its type: "0.1" is not a number, 16.0 not a size.
STRICT = ConfigDict(extra="forbid", strict=True)


def bounds(limits: Limits) -> dict[str, Any]:
    """``limits``' range as pydantic's constraints."""
    return {"gt" if limits.above_low else "ge": limits.low, "le": limits.high}


def number_field(limits: Limits, default: Any) -> Any:
    """A pydantic field for a finite number within ``limits``."""
    return Field(default, description=limits.help, allow_inf_nan=False, **bounds(limits))


def body_field(config_field: dataclasses.Field) -> tuple[Any, Any]:
    """The (type, field) that ``POST /api/run`` takes for one :class:`TrainConfig` field."""
    kind, limits = KINDS[config_field.name], LIMITS[config_field.name]
    default: Any = config_field.default
    if kind is str:
        return Literal[limits.choices], Field(default, description=limits.help)
    if typing.get_origin(kind) is tuple:  # a JSON array of whole numbers
        fewest, most = limits.length or (None, None)
        item = Annotated[int, Field(**bounds(limits))]
        return list[item], Field(
            list(default), description=limits.help, min_length=fewest, max_length=most
        )
    return kind, number_field(limits, default)


def config_model() -> type[BaseModel]:
    fields: dict[str, Any] = {
        spec.name: body_field(spec) for spec in dataclasses.fields(TrainConfig)
    }
    return create_model(
        "RunConfig",
        __config__=STRICT,
        __doc__="A run's configuration: the fields and limits of `backprop-live train`'s flags.",
        **fields,
    )


# A type checker cannot see fields made at run time; to it, the body is a model like any other.
if TYPE_CHECKING:
    RunConfig = BaseModel
else:
    RunConfig = config_model()


class RunChanges(BaseModel):
    """Live changes without a reset: the learning rate, and the pace of the training."""

    model_config = STRICT

    # Optional but never null (a run always has a learning rate); the default is not validated.
    lr: float = number_field(LIMITS["lr"], None)
    speed: float | None = number_field(SPEED, None)


class RaceLane(BaseModel):
    """One lane of a race: a label to tell it by and a run's config."""

    model_config = STRICT

    label: str = Field(
        min_length=1, max_length=40, pattern=r"\S", description="what the lane is called"
    )
    config: RunConfig = Field(description="the lane's run config (the fields of POST /api/run)")


class RaceBody(BaseModel):
    """A race: 2 to 4 lanes trained side by side from one seed, at one pace."""

    model_config = STRICT

    lanes: list[RaceLane] = Field(min_length=LANES[0], max_length=LANES[1])
    pace: Literal[PACES] = Field(  # type: ignore[valid-type]
        "examples",
        description="examples: every lane sees as many examples; time: as many seconds",
    )
