"""Optimisers: how a gradient becomes a change of the parameters.

Each optimiser updates a list of parameter arrays in place from a matching list of gradients,
leaving the gradients untouched (the visualiser still draws them). The learning rate ``lr`` is a
plain attribute, so it can change between any two mini-batches; ``lr_scale`` is the factor a
learning-rate schedule multiplies it by, kept apart so that ``lr`` stays what a person set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")


class Optimizer:
    """Shared bookkeeping: one scratch array per parameter, made on the first step.

    ``weight_decay`` (λ) is L2 regularisation: it adds ``λ·θ`` to the gradient of every
    parameter the caller marks as decayed (usually the weights, not the biases), pulling
    weights that the data does not need back towards zero.
    """

    memory: tuple[str, ...] = ()  # attributes holding per-parameter arrays kept between steps

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        self.lr = lr
        self.lr_scale = 1.0
        self.weight_decay = weight_decay
        self.steps = 0
        self.scratch: list[np.ndarray] = []
        self.decayed_grads: list[np.ndarray] = []

    @property
    def step_lr(self) -> float:
        """The learning rate the next step uses: ``lr`` times the schedule's factor."""
        return self.lr * self.lr_scale

    def step(
        self,
        params: list[np.ndarray],
        grads: list[np.ndarray],
        decayed: Sequence[bool] | None = None,
    ) -> None:
        """Update ``params`` in place; ``decayed[i]`` says whether weight decay applies to
        ``params[i]`` (all of them when ``decayed`` is None)."""
        if not self.scratch:
            self.scratch = [np.empty_like(param) for param in params]
            self.start(params)
        if self.weight_decay:
            grads = self.add_weight_decay(params, grads, decayed or [True] * len(params))
        self.steps += 1
        self.update(params, grads)

    def add_weight_decay(
        self, params: list[np.ndarray], grads: list[np.ndarray], decayed: Sequence[bool]
    ) -> list[np.ndarray]:
        """``g + λθ`` for the decayed parameters, written into buffers of our own."""
        if not self.decayed_grads:
            self.decayed_grads = [np.empty_like(param) for param in params]
        result = []
        for param, grad, decay, buffer in zip(params, grads, decayed, self.decayed_grads):
            if decay:
                np.multiply(param, self.weight_decay, out=buffer)
                buffer += grad
                grad = buffer
            result.append(grad)
        return result

    def state(self) -> dict[str, list[np.ndarray]]:
        """What the optimiser remembers between steps, by attribute name (for checkpoints)."""
        return {name: getattr(self, name) for name in self.memory} if self.steps else {}

    def restore(self, params: list[np.ndarray], steps: int, state: dict) -> None:
        """Continue after ``steps`` steps from a saved :meth:`state`, as if never stopped."""
        self.steps = steps
        if not steps:
            return
        self.scratch = [np.empty_like(param) for param in params]
        self.start(params)
        for name in self.memory:
            for remembered, saved in zip(getattr(self, name), state[name], strict=True):
                np.copyto(remembered, saved)

    def start(self, params: list[np.ndarray]) -> None:
        """Allocate the optimiser's state, shaped like the parameters."""

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent: step downhill, ``θ ← θ − lr·g``."""

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        lr = self.step_lr
        for param, grad, scratch in zip(params, grads, self.scratch):
            np.multiply(grad, lr, out=scratch)
            param -= scratch


class Momentum(Optimizer):
    """SGD with momentum: a velocity that remembers past gradients, ``v ← μv − lr·g; θ ← θ + v``."""

    memory = ("velocities",)

    def __init__(self, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        self.momentum = momentum
        self.velocities: list[np.ndarray] = []

    def start(self, params: list[np.ndarray]) -> None:
        self.velocities = [np.zeros_like(param) for param in params]

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        lr = self.step_lr
        for param, grad, velocity, scratch in zip(params, grads, self.velocities, self.scratch):
            velocity *= self.momentum
            np.multiply(grad, lr, out=scratch)
            velocity -= scratch
            param += velocity


class Adam(Optimizer):
    """Adam (Kingma & Ba): a step per parameter scaled by running estimates of the gradient's
    mean ``m`` and uncentred variance ``v``, with their start-up bias corrected."""

    memory = ("means", "variances")

    def __init__(
        self,
        lr: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.means: list[np.ndarray] = []
        self.variances: list[np.ndarray] = []

    def start(self, params: list[np.ndarray]) -> None:
        self.means = [np.zeros_like(param) for param in params]
        self.variances = [np.zeros_like(param) for param in params]

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        # math.sqrt, not np.sqrt: a NumPy float64 scalar would turn every float32 pass that
        # it multiplies into a float64 one (several times slower), a Python float does not.
        corrected_lr = (
            self.step_lr * math.sqrt(1 - self.beta2**self.steps) / (1 - self.beta1**self.steps)
        )
        for param, grad, mean, variance, scratch in zip(
            params, grads, self.means, self.variances, self.scratch
        ):
            # m ← β₁m + (1 − β₁)g ;  v ← β₂v + (1 − β₂)g²
            np.multiply(grad, 1 - self.beta1, out=scratch)
            mean *= self.beta1
            mean += scratch
            np.multiply(grad, grad, out=scratch)
            scratch *= 1 - self.beta2
            variance *= self.beta2
            variance += scratch
            # θ ← θ − lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)
            np.sqrt(variance, out=scratch)
            scratch += self.epsilon
            np.divide(mean, scratch, out=scratch)
            scratch *= corrected_lr
            param -= scratch


def make_optimizer(name: str, lr: float, weight_decay: float = 0.0) -> Optimizer:
    """The optimiser called ``name`` (one of ``OPTIMIZERS``) with learning rate ``lr``."""
    if name == "sgd":
        return SGD(lr, weight_decay=weight_decay)
    if name == "momentum":
        return Momentum(lr, weight_decay=weight_decay)
    if name == "adam":
        return Adam(lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
