"""Backpropagation of one example, laid out for a person to follow step by step.

This is 3Blue1Brown's walk-through as data: the forward pass, the cost of this one example,
what each output neuron "wants" (the desired nudges, −dC/da), how those wishes flow back through
the weights into wishes for the layer before, and the gradient they add up to. Nothing here
computes a derivative of its own: the numbers come from :meth:`Network.backward`, so the trace
shows exactly what training uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.network import Network, Workspace

COMPARISON_BATCH = 100  # "this example's gradient beside the average over a mini-batch of 100"


@dataclass(frozen=True)
class Contribution:
    """One term of a neuron's dC/da: the next-layer neuron it came from, via which weight."""

    neuron: int  # index in the next layer
    weight: float  # W[next][neuron, this]
    delta: float  # dC/dz of that next-layer neuron
    amount: float  # weight × delta: this term's share of dC/da, the negative of the nudge


@dataclass(frozen=True)
class LayerTrace:
    """Layer ``l`` (1 = first hidden layer) of one example's forward and backward pass."""

    weighted_inputs: np.ndarray  # z
    activations: np.ndarray  # a
    activation_gradients: np.ndarray  # dC/da, whose negative is the desired nudge
    deltas: np.ndarray  # dC/dz = dC/da · σ'(z)
    bias_gradient: np.ndarray  # dC/db = dC/dz
    weight_gradient: np.ndarray  # dC/dW = dC/dz ⊗ a[l−1]
    contributions: list[list[Contribution]]  # per neuron: the largest terms of its dC/da


@dataclass(frozen=True)
class Trace:
    """The whole backward pass of one example with the network's current weights."""

    pixels: np.ndarray  # the 784 input activations
    label: int
    target: np.ndarray  # y: 1 for the right digit, 0 for the others
    cost: float
    layers: list[LayerTrace]

    @property
    def output(self) -> np.ndarray:
        return self.layers[-1].activations


def largest_contributions(
    deltas_next: np.ndarray, weights_next: np.ndarray, top: int
) -> list[list[Contribution]]:
    """For each neuron k, the ``top`` largest terms of dC/da_k = Σ_j W[j, k]·delta[j]."""
    terms = weights_next * deltas_next[:, None]  # terms[j, k]
    count = min(top, len(deltas_next))
    strongest = np.argsort(-np.abs(terms), axis=0, kind="stable")[:count]
    return [
        [
            Contribution(
                neuron=int(j),
                weight=float(weights_next[j, k]),
                delta=float(deltas_next[j]),
                amount=float(terms[j, k]),
            )
            for j in strongest[:, k]
        ]
        for k in range(weights_next.shape[1])
    ]


def explain(network: Network, pixels: np.ndarray, label: int, top: int = 5) -> Trace:
    """Trace the forward and backward pass of one example (784 pixels in [0, 1], its digit)."""
    x = np.asarray(pixels, dtype=network.dtype).reshape(1, -1)
    labels = np.array([label])
    workspace = Workspace(network.layer_sizes, 1, network.dtype)
    gradients = network.backward(x, labels, workspace)
    layers = []
    for layer in range(network.num_layers):
        is_last = layer == network.num_layers - 1
        layers.append(
            LayerTrace(
                weighted_inputs=workspace.weighted_inputs[layer][0].copy(),
                activations=workspace.activations[layer][0].copy(),
                activation_gradients=gradients.activation_gradients[layer][0].copy(),
                deltas=gradients.deltas[layer][0].copy(),
                bias_gradient=gradients.biases[layer].copy(),
                weight_gradient=gradients.weights[layer].copy(),
                contributions=[]
                if is_last
                else largest_contributions(
                    gradients.deltas[layer + 1][0], network.weights[layer + 1], top
                ),
            )
        )
    target = np.zeros(network.layer_sizes[-1])
    target[label] = 1
    return Trace(x[0].copy(), int(label), target, gradients.cost, layers)


def gradient_step(network: Network, pixels: np.ndarray, label: int, lr: float) -> float:
    """One plain gradient-descent step on this one example; returns its cost before the step."""
    x = np.asarray(pixels, dtype=network.dtype).reshape(1, -1)
    gradients = network.backward(x, np.array([label]))
    for param, grad in zip(
        [*network.weights, *network.biases], [*gradients.weights, *gradients.biases]
    ):
        param -= lr * grad
    return gradients.cost


def frozen_copy(network: Network) -> Network:
    """A network with the same architecture and a copy of the weights: a trace computed on it
    needs the live network's lock only for the copy, and training can go on meanwhile."""
    return network.copy()


@dataclass(frozen=True)
class AverageGradient:
    """The gradient training actually follows: the mean over a mini-batch of examples."""

    size: int
    cost: float
    weights: list[np.ndarray]  # dC/dW per layer, averaged over the examples
    biases: list[np.ndarray]


def average_gradient(network: Network, images: np.ndarray, labels: np.ndarray) -> AverageGradient:
    """The mini-batch's mean gradient, to set beside one example's: where one digit pulls the
    weights its own way, the average is a compromise that helps most digits at once."""
    x = np.asarray(images, dtype=network.dtype)
    gradients = network.backward(x, np.asarray(labels))
    return AverageGradient(
        size=len(x),
        cost=gradients.cost,
        weights=[w.copy() for w in gradients.weights],
        biases=[b.copy() for b in gradients.biases],
    )


@dataclass(frozen=True)
class Lesson:
    """One gradient step on one example: its cost and outputs before and after."""

    lr: float
    cost_before: float
    cost_after: float
    output_before: np.ndarray
    output_after: np.ndarray


def teach(network: Network, pixels: np.ndarray, label: int, lr: float) -> Lesson:
    """Take one plain gradient-descent step on this example and show what it changed."""
    x = np.asarray(pixels, dtype=network.dtype).reshape(1, -1)
    output_before = network.predict(x)[0]
    cost_before = gradient_step(network, x[0], label, lr)
    output_after = network.predict(x)[0]
    cost_after = network.output_cost(output_after[None], np.array([label]))
    return Lesson(lr, cost_before, cost_after, output_before, output_after)
