"""The cost chart since the run began, kept for the browsers that join late (the ``history``
of a ``hello`` frame; see :mod:`server.frames`)."""

from __future__ import annotations

from typing import Any

from engine.training import Evaluation
from server.frames import HISTORY_POINTS, VALUE_DIGITS, HistoryFrame, eval_frame, significant
from server.trainer.protocol import BatchRecord, CostRecord


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

    @classmethod
    def restored(cls, run: str, record: CostRecord) -> History:
        """The chart of a run that trained ``record`` before it was restored or resumed."""
        history = cls(record.first_batch)
        evaluations = dict(record.evaluations)
        for offset, (cost, norms) in enumerate(zip(record.costs, record.gradient_norms)):
            index = record.first_batch + offset
            history.add_batch(index, float(cost), [float(norm) for norm in norms])
            if index in evaluations:
                history.add_evaluation(run, index, evaluations[index])
        return history

    def add(self, record: BatchRecord) -> None:
        self.add_batch(record.index, record.cost, [stats.weight_norm for stats in record.gradients])
        if record.evaluation is not None:
            self.add_evaluation(record.run, record.index, record.evaluation, record.lane)

    def add_batch(self, index: int, cost: float, norms: list[float]) -> None:
        if index != self.next_batch:
            return  # only consecutive batches belong on the chart
        self.next_batch += 1
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

    def add_evaluation(
        self, run: str, index: int, evaluation: Evaluation, lane: int | None = None
    ) -> None:
        frame = eval_frame(run, index, evaluation, lane)
        del frame["type"]  # type: ignore[misc]
        self.evaluations.append(dict(frame))

    def _halve(self) -> None:
        def pairs(values: list[Any]) -> list[tuple[Any, ...]]:
            return [tuple(values[i : i + 2]) for i in range(0, len(values), 2)]

        self.cost_sums = [sum(pair) for pair in pairs(self.cost_sums)]
        self.norm_sums = [[sum(layer) for layer in zip(*pair)] for pair in pairs(self.norm_sums)]
        self.counts = [sum(pair) for pair in pairs(self.counts)]
        self.stride *= 2

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
