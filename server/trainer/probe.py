"""The probe: one fixed test digit whose activations every snapshot shows, chosen the same way
in the trainer process (which computes them) and the web process (which sends its pixels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.mnist import Dataset

PROBE_LABEL = 2  # 3Blue1Brown's running example is a handwritten 2


@dataclass(frozen=True)
class Probe:
    index: int
    label: int
    pixels: np.ndarray  # 784 float32 in [0, 1]


def choose_probe(dataset: Dataset) -> Probe:
    """The first test digit labelled ``PROBE_LABEL`` (or digit 0 if there is none)."""
    matches = np.flatnonzero(dataset.test_labels == PROBE_LABEL)
    index = int(matches[0]) if len(matches) else 0
    pixels = np.asarray(dataset.test_images[index], np.float32)
    return Probe(index, int(dataset.test_labels[index]), pixels)
