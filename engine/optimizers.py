"""Optimisers: how a gradient becomes a change of the parameters.

Each optimiser updates a list of parameter arrays in place from a matching list of gradients,
leaving the gradients untouched (the visualiser still draws them). The learning rate ``lr`` is a
plain attribute, so it can change between any two mini-batches.
"""

from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")


class Optimizer:
    """Shared bookkeeping: one scratch array per parameter, made on the first step."""

    memory: tuple[str, ...] = ()  # attributes holding per-parameter arrays kept between steps

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.steps = 0
        self.scratch: list[np.ndarray] = []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if not self.scratch:
            self.scratch = [np.empty_like(param) for param in params]
            self.start(params)
        self.steps += 1
        self.update(params, grads)

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
        for param, grad, scratch in zip(params, grads, self.scratch):
            np.multiply(grad, self.lr, out=scratch)
            param -= scratch


class Momentum(Optimizer):
    """SGD with momentum: a velocity that remembers past gradients, ``v ← μv − lr·g; θ ← θ + v``."""

    memory = ("velocities",)

    def __init__(self, lr: float, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = momentum
        self.velocities: list[np.ndarray] = []

    def start(self, params: list[np.ndarray]) -> None:
        self.velocities = [np.zeros_like(param) for param in params]

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        for param, grad, velocity, scratch in zip(params, grads, self.velocities, self.scratch):
            velocity *= self.momentum
            np.multiply(grad, self.lr, out=scratch)
            velocity -= scratch
            param += velocity


class Adam(Optimizer):
    """Adam (Kingma & Ba): a step per parameter scaled by running estimates of the gradient's
    mean ``m`` and uncentred variance ``v``, with their start-up bias corrected."""

    memory = ("means", "variances")

    def __init__(
        self, lr: float, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8
    ) -> None:
        super().__init__(lr)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.means: list[np.ndarray] = []
        self.variances: list[np.ndarray] = []

    def start(self, params: list[np.ndarray]) -> None:
        self.means = [np.zeros_like(param) for param in params]
        self.variances = [np.zeros_like(param) for param in params]

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        step_size = self.lr * np.sqrt(1 - self.beta2**self.steps) / (1 - self.beta1**self.steps)
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
            # θ ← θ − step_size · m / (√v + ε)
            np.sqrt(variance, out=scratch)
            scratch += self.epsilon
            np.divide(mean, scratch, out=scratch)
            scratch *= step_size
            param -= scratch


def make_optimizer(name: str, lr: float) -> Optimizer:
    """The optimiser called ``name`` (one of ``OPTIMIZERS``) with learning rate ``lr``."""
    if name == "sgd":
        return SGD(lr)
    if name == "momentum":
        return Momentum(lr)
    if name == "adam":
        return Adam(lr)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
