"""The cost chart since the run began, kept for the browsers that join late (the ``history``
of a ``hello`` frame; see :mod:`server.frames`)."""

from __future__ import annotations

import math
from typing import Any

from server.frames import (
    HISTORY_POINTS,
    VALUE_DIGITS,
    BatchRecord,
    HistoryFrame,
    eval_frame,
    significant,
)


class History:
    """The cost chart since the run began, for late joiners: at most ``max_points`` points.

    It holds the mini-batches with indices from ``first_batch`` up to, not including,
    ``next_batch``, the index of the one it waits for. When the points run out, neighbours are
    merged in pairs and each point then stands for twice as many mini-batches (``stride``), so
    memory stays bounded for a run of any length.
    """

    def __init__(self, first_batch: int = 0, max_points: int = HISTORY_POINTS) -> None:
        self.first_batch = first_batch
        self.next_batch = first_batch
        self.max_points = max_points
        self.stride = 1
        self.cost_sums: list[float] = []
        self.norm_sums: list[list[float]] = []
        self.counts: list[int] = []
        self.evaluations: list[dict[str, Any]] = []

    def add(self, record: BatchRecord) -> None:
        if record.index != self.next_batch:
            return  # only consecutive batches belong on the chart
        self.next_batch += 1
        cost = record.cost if record.cost is not None else math.nan
        norms = [stats.weight_norm for stats in record.gradients]
        if self.counts and self.counts[-1] < self.stride:
            self.cost_sums[-1] += cost
            self.norm_sums[-1] = [a + b for a, b in zip(self.norm_sums[-1], norms)]
            self.counts[-1] += 1
        else:
            self.cost_sums.append(cost)
            self.norm_sums.append(norms)
            self.counts.append(1)
        if len(self.counts) > self.max_points:
            self._halve()
        if record.evaluation is not None:
            frame = eval_frame(record.run, record.index, record.evaluation)
            del frame["type"]  # type: ignore[misc]
            self.evaluations.append(dict(frame))

    def _halve(self) -> None:
        def pairs(values: list[Any]) -> list[tuple[Any, ...]]:
            return [tuple(values[i : i + 2]) for i in range(0, len(values), 2)]

        self.cost_sums = [sum(pair) for pair in pairs(self.cost_sums)]
        self.norm_sums = [[sum(layer) for layer in zip(*pair)] for pair in pairs(self.norm_sums)]
        self.counts = [sum(pair) for pair in pairs(self.counts)]
        self.stride *= 2

    def to_dict(self) -> dict[str, Any]:
        """The history as plain JSON values, to save with a checkpoint."""
        return {
            "first_batch": self.first_batch,
            "next_batch": self.next_batch,
            "max_points": self.max_points,
            "stride": self.stride,
            "cost_sums": [s if math.isfinite(s) else None for s in self.cost_sums],
            "norm_sums": [[s if math.isfinite(s) else None for s in row] for row in self.norm_sums],
            "counts": self.counts,
            "evaluations": self.evaluations,
        }

    @classmethod
    def from_dict(cls, data: Any) -> History:
        """A history saved by :meth:`to_dict`; ``ValueError`` if ``data`` is anything else."""
        try:
            history = cls(int(data["first_batch"]), int(data["max_points"]))
            history.next_batch = int(data["next_batch"])
            history.stride = int(data["stride"])
            history.cost_sums = [math.nan if v is None else float(v) for v in data["cost_sums"]]
            history.norm_sums = [
                [math.nan if v is None else float(v) for v in row] for row in data["norm_sums"]
            ]
            history.counts = [int(n) for n in data["counts"]]
            history.evaluations = [dict(e) for e in data["evaluations"]]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a saved history ({error!r})") from None
        sizes = {len(history.cost_sums), len(history.norm_sums), len(history.counts)}
        if (
            len(sizes) != 1
            or len(history.counts) > history.max_points
            or history.stride < 1
            or any(not 1 <= n <= history.stride for n in history.counts)
            or sum(history.counts) != history.next_batch - history.first_batch
        ):
            raise ValueError("not a saved history (its counts do not add up)")
        return history

    def copy(self) -> History:
        return History.from_dict(self.to_dict())

    def frame(self) -> HistoryFrame:
        return {
            "first_batch": self.first_batch,
            "next_batch": self.next_batch,
            "stride": self.stride,
            "costs": [significant(s / n) for s, n in zip(self.cost_sums, self.counts)],
            "gradient_norms": [
                [significant(s / n, VALUE_DIGITS) for s in sums]
                for sums, n in zip(self.norm_sums, self.counts)
            ],
            "evaluations": list(self.evaluations),
        }
