"""Classify a drawing with the network as it is at this moment, while it trains."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from engine.data.mnist import PIXELS
from server.bodies import classification
from server.deps import ClassifyBudget, ViewDep
from server.images import IMAGE_TYPES, image_to_mnist, media_type, pixels_to_array

router = APIRouter(tags=["classify"])

PIXELS_SCHEMA = {
    "type": "object",
    "required": ["pixels"],
    "properties": {
        "pixels": {
            "type": "array",
            "items": {"type": "number", "minimum": 0, "maximum": 1},
            "minItems": PIXELS,
            "maxItems": PIXELS,
        }
    },
}
IMAGE_SCHEMA = {"type": "string", "format": "binary"}


def network_input(body: bytes, content_type: str) -> np.ndarray:
    """The 784 values the network sees, from a picture or from a ``{"pixels": [...]}`` body."""
    if media_type(content_type) == "application/json":
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as error:  # RecursionError: nested too deeply
            raise HTTPException(422, f"body: not valid JSON ({error})") from error
        if not isinstance(document, dict) or "pixels" not in document:
            raise HTTPException(422, f'pixels: send {{"pixels": [{PIXELS} numbers in 0..1]}}')
        return pixels_to_array(document["pixels"])
    return image_to_mnist(body, content_type)


@router.post(
    "/api/classify",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": PIXELS_SCHEMA},
                **{kind: {"schema": IMAGE_SCHEMA} for kind in IMAGE_TYPES},
            },
        }
    },
)
async def classify(request: Request, view: ViewDep, _: ClassifyBudget) -> dict[str, Any]:
    """The live network's answer: ``digit``, ``probabilities`` (10), ``input`` (the 784 values
    it saw after MNIST-style preprocessing) and ``activations`` (one list per layer 1..L).

    With the mse cost the outputs are sigmoids; ``probabilities`` are them scaled to sum to 1.
    """
    body = await request.body()
    content_type = request.headers.get("content-type", "")

    def answer() -> dict[str, Any]:
        return classification(view.network, network_input(body, content_type))

    return await run_in_threadpool(answer)
