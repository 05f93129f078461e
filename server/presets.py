"""The races the page offers with one click, each asking one question of the lesson. Written
once, here; GET /api/race/presets serves them and the page posts a preset's ``race`` as it is."""

from __future__ import annotations

from typing import Any

THREE_BLUE_ONE_BROWN = {"hidden": [16, 16], "activation": "sigmoid", "loss": "mse", "lr": 3.0}


def lane(label: str, **config: Any) -> dict[str, Any]:
    return {"label": label, "config": {**THREE_BLUE_ONE_BROWN, "epochs": 30, **config}}


PRESETS: list[dict[str, Any]] = [
    {
        "key": "batch-size",
        "title": "Batch size: 1 · 10 · 100 · 60,000",
        "question": "One example at a time, a mini-batch, or all 60,000 at once: "
        "which learns most from the same examples, and which in the same seconds?",
        "race": {
            "lanes": [
                lane("batch 1", batch_size=1),
                lane("batch 10", batch_size=10),
                lane("batch 100", batch_size=100),
                lane("batch 60,000", batch_size=60_000),
            ],
            "pace": "examples",
        },
    },
    {
        "key": "learning-rate",
        "title": "Learning rate: 0.3 · 3 · 30",
        "question": "Steps too small crawl and steps too large overshoot: where is η just right?",
        "race": {
            "lanes": [
                lane("η = 0.3", lr=0.3, batch_size=10),
                lane("η = 3", lr=3.0, batch_size=10),
                lane("η = 30", lr=30.0, batch_size=10),
            ],
            "pace": "examples",
        },
    },
    {
        "key": "activation",
        "title": "Sigmoid vs ReLU",
        "question": "Does the shape of the neurons' response change how fast the network learns?",
        "race": {
            "lanes": [
                lane("sigmoid", activation="sigmoid", loss="cross-entropy", lr=0.1, batch_size=10),
                lane("ReLU", activation="relu", loss="cross-entropy", lr=0.1, batch_size=10),
            ],
            "pace": "examples",
        },
    },
    {
        "key": "cost",
        "title": "Quadratic cost vs cross-entropy",
        "question": "A confidently wrong output: which cost pushes harder to fix it?",
        "race": {
            "lanes": [
                lane("quadratic", loss="mse", lr=0.5, batch_size=10),
                lane("cross-entropy", loss="cross-entropy", lr=0.5, batch_size=10),
            ],
            "pace": "examples",
        },
    },
]
