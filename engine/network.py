"""A multilayer perceptron and its backpropagation, written once, in the textbook's order.

The names follow Michael Nielsen's network.py and 3Blue1Brown's "Backpropagation, intuitively":

- layer ``l`` receives the previous layer's activations ``a[l-1]`` and computes its
  weighted inputs ``z[l] = a[l-1] @ W[l].T + b[l]`` and its activations ``a[l] = σ(z[l])``;
- ``W[l][j, k]`` is the weight from neuron ``k`` of layer ``l-1`` to neuron ``j`` of layer ``l``;
- ``activation_gradients[l] = dC/da[l]``: how the cost changes when a neuron's activation
  changes. Its negative is the "desired nudge" 3Blue1Brown draws as an arrow beside each neuron;
- ``deltas[l] = dC/dz[l]``: the same for the weighted input ("the error" in Nielsen's book).

Examples are rows: a mini-batch of ``m`` digits is an array of shape ``(m, 784)`` and every
per-example quantity has shape ``(m, neurons)``. Index 0 of the activation list is the input
layer; weights, biases, weighted inputs, deltas and activation gradients are lists over layers
1..L only.

The cost of a mini-batch is the mean of its examples' costs:

- ``"mse"``: Nielsen's quadratic cost ``C_x = ½·Σ_j (a_j − y_j)²`` on sigmoid outputs;
- ``"cross-entropy"``: softmax outputs with ``C_x = −log a_y`` for the correct digit ``y``.

Speed comes from :class:`Workspace`, which holds every intermediate array so that a training
loop reuses memory instead of allocating it for each mini-batch, and from keeping all the
weights and biases in one vector (:meth:`Network.parameters`) so that an optimiser updates
them in a few NumPy calls. The maths does not change.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ACTIVATIONS = ("sigmoid", "relu", "tanh")
LOSSES = ("mse", "cross-entropy")


def activate(name: str, z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Apply the activation function ``name`` to ``z``, writing into ``out``."""
    if name == "sigmoid":
        # σ(z) = ½(1 + tanh(z/2)): the same function, but it cannot overflow for large |z|.
        np.multiply(z, 0.5, out=out)
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
    elif name == "tanh":
        np.tanh(z, out=out)
    elif name == "relu":
        np.maximum(z, 0, out=out)
    else:
        raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")
    return out


def derivative(name: str, activation: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write σ'(z) into ``out``, computed from the activation a = σ(z) the forward pass kept."""
    if name == "sigmoid":
        np.multiply(activation, activation, out=out)
        np.subtract(activation, out, out=out)  # σ' = a(1 − a) = a − a²
    elif name == "tanh":
        np.multiply(activation, activation, out=out)
        np.subtract(1, out, out=out)  # tanh' = 1 − a²
    elif name == "relu":
        np.greater(activation, 0, out=out)  # relu' = 1 where a > 0, else 0
    else:
        raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")
    return out


def softmax(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Softmax of each row of ``z`` into ``out``; shifting by the row maximum keeps exp finite.

    Rows are short (ten digits), and NumPy reduces along a short axis with a loop per row: the
    maximum is read where ``argmax`` points and the sum is a product with ones, at half the time.
    """
    row_max = z[np.arange(len(z)), z.argmax(axis=1), None]
    np.subtract(z, row_max, out=out)
    np.exp(out, out=out)
    out /= np.matmul(out, np.ones(z.shape[1], z.dtype))[:, None]
    return out


@dataclass
class Forward:
    """Everything the forward pass computed for a mini-batch.

    ``activations[0]`` is the input; ``activations[l]`` and ``weighted_inputs[l - 1]`` belong
    to layer ``l``.
    """

    weighted_inputs: list[np.ndarray]
    activations: list[np.ndarray]

    @property
    def output(self) -> np.ndarray:
        return self.activations[-1]


@dataclass
class Gradients:
    """The gradient of the mini-batch's mean cost, and what backpropagation learned on the way.

    ``weights[i]`` and ``biases[i]`` are dC/dW and dC/db of layer ``i + 1``, shaped like the
    parameters. ``activation_gradients[i]`` (dC/da) and ``deltas[i]`` (dC/dz) have one row per
    example.
    Because ``C`` is the *mean* over ``m`` examples, each row is that example's own gradient
    divided by ``m``; their sum over rows is the average per-example gradient.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation_gradients: list[np.ndarray]
    deltas: list[np.ndarray]
    cost: float


def views(vector: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Consecutive pieces of ``vector`` shaped as ``shapes``: arrays that share its memory."""
    pieces, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        pieces.append(vector[start : start + size].reshape(shape))
        start += size
    return pieces


class Workspace:
    """Preallocated arrays for one mini-batch size, reused by forward and backward.

    Results returned while using a workspace live in its arrays: they stay valid until the
    next call that uses the same workspace.
    """

    def __init__(self, layer_sizes: Sequence[int], batch_size: int, dtype: np.dtype) -> None:
        self.batch_size = batch_size
        later_layers = layer_sizes[1:]
        self.weighted_inputs = [np.empty((batch_size, n), dtype) for n in later_layers]
        self.activations = [np.empty((batch_size, n), dtype) for n in later_layers]
        self.activation_gradients = [np.empty((batch_size, n), dtype) for n in later_layers]
        self.deltas = [np.empty((batch_size, n), dtype) for n in later_layers]
        # dC/dW of every layer, then dC/db of every layer, in one vector laid out like the
        # network's parameters (see Network.parameters): an optimiser takes it whole.
        shapes: list[tuple[int, ...]] = [
            *((n_out, n_in) for n_in, n_out in zip(layer_sizes, later_layers)),
            *((n,) for n in later_layers),
        ]
        self.gradient = np.empty(sum(math.prod(shape) for shape in shapes), dtype)
        pieces = views(self.gradient, shapes)
        self.weight_gradients = pieces[: len(later_layers)]
        self.bias_gradients = pieces[len(later_layers) :]
        self.targets = np.empty((batch_size, layer_sizes[-1]), dtype)
        self.identity = np.eye(layer_sizes[-1], dtype=dtype)
        self.ones = np.ones(batch_size, dtype)
        self.rows = np.arange(batch_size)


class Network:
    """A fully connected network: ``layer_sizes[0]`` inputs, then hidden layers, then outputs.

    ``activation`` is used by the hidden layers. The output layer is a sigmoid for the ``"mse"``
    cost (as in 3Blue1Brown's videos and Nielsen's book) and a softmax for ``"cross-entropy"``.
    Weights start as Gaussian noise scaled to keep the weighted inputs' variance near one
    (√(1/fan_in) for sigmoid and tanh, √(2/fan_in) for ReLU); biases start at zero.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str = "sigmoid",
        loss: str = "mse",
        seed: int = 0,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
        if len(layer_sizes) < 2 or min(layer_sizes) < 1:
            raise ValueError(f"layer_sizes needs at least two positive sizes, got {layer_sizes}")
        self.layer_sizes = tuple(int(n) for n in layer_sizes)
        self.activation = activation
        self.loss = loss
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        gain = 2.0 if activation == "relu" else 1.0
        self.weights = [
            (rng.standard_normal((n_out, n_in)) * np.sqrt(gain / n_in)).astype(self.dtype)
            for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:])
        ]
        self.biases = [np.zeros(n_out, self.dtype) for n_out in self.layer_sizes[1:]]
        self._parameters: np.ndarray | None = None
        self._workspaces: dict[int, Workspace] = {}
        self.parameters()

    def parameters(self) -> np.ndarray:
        """Every weight, then every bias, as one vector that ``weights`` and ``biases`` are
        views of: an optimiser updates them all with one NumPy call per operation instead of
        one per layer. Arrays assigned to ``weights`` or ``biases`` since the last call (a loaded
        checkpoint does that) are first copied into a new vector, which they become views of.
        """
        arrays = [*self.weights, *self.biases]
        vector = self._parameters
        if vector is None or any(array.base is not vector for array in arrays):
            vector = np.concatenate([np.ravel(array) for array in arrays]).astype(
                self.dtype, copy=False
            )
            pieces = views(vector, [array.shape for array in arrays])
            self.weights, self.biases = pieces[: len(self.weights)], pieces[len(self.weights) :]
            self._parameters = vector
        return vector

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a snapshot for the web process) without the vector, whose contents the
        weights and biases already hold, and without the workspaces."""
        state = self.__dict__.copy()
        state.update(_parameters=None, _workspaces={})
        return state

    def copy(self) -> Network:
        """A network with the same architecture and its own copy of the weights and biases
        (made without drawing new random weights first, as the constructor would)."""
        twin = copy.copy(self)
        twin._parameters = None
        twin._workspaces = {}
        twin.parameters()  # new arrays: the weights and biases are copied into its own vector
        return twin

    @property
    def num_layers(self) -> int:
        """Layers with weights (hidden layers plus the output layer)."""
        return len(self.weights)

    def workspace(self, batch_size: int) -> Workspace:
        """This network's reusable workspace for mini-batches of ``batch_size`` examples."""
        if batch_size not in self._workspaces:
            self._workspaces[batch_size] = Workspace(self.layer_sizes, batch_size, self.dtype)
        return self._workspaces[batch_size]

    def forward(self, x: np.ndarray, workspace: Workspace | None = None) -> Forward:
        """Feed the rows of ``x`` through the network, keeping every layer's z and a."""
        ws = workspace or Workspace(self.layer_sizes, len(x), self.dtype)
        activation = x
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = np.matmul(activation, w.T, out=ws.weighted_inputs[layer])
            z += b
            activation = ws.activations[layer]
            if layer < self.num_layers - 1:
                activate(self.activation, z, out=activation)
            elif self.loss == "mse":
                activate("sigmoid", z, out=activation)
            else:
                softmax(z, out=activation)
        return Forward(ws.weighted_inputs, [x, *ws.activations])

    def backward(
        self, x: np.ndarray, labels: np.ndarray, workspace: Workspace | None = None
    ) -> Gradients:
        """Backpropagate the mean cost of the examples ``x`` with the digits ``labels``.

        Starting at the output, each layer's ``delta = dC/dz`` gives its weight and bias
        gradients directly, and the weights carry it one layer back as the previous layer's
        ``dC/da`` (the negative of its desired nudges), summed over every neuron it feeds.
        """
        ws = workspace or Workspace(self.layer_sizes, len(x), self.dtype)
        forward = self.forward(x, ws)
        batch_size = len(x)
        rows = ws.rows
        output = forward.output
        activation_gradient, delta = ws.activation_gradients[-1], ws.deltas[-1]
        # y: each example's desired output, 1 for its digit and 0 for the others (one-hot)
        targets = np.take(ws.identity, labels, axis=0, out=ws.targets)

        if self.loss == "mse":
            # dC/da = (a − y)/m, and the sigmoid's slope turns it into dC/dz.
            np.subtract(output, targets, out=activation_gradient)
            cost = 0.5 * float(np.vdot(activation_gradient, activation_gradient)) / batch_size
            activation_gradient /= batch_size
            derivative("sigmoid", output, out=delta)
            delta *= activation_gradient
        else:
            # Softmax and cross-entropy together: dC/dz = (a − y)/m. Only the right digit's
            # activation appears in C, so dC/da is −1/(m·a_y) there and zero elsewhere.
            correct = np.maximum(output[rows, labels], np.finfo(self.dtype).tiny)
            cost = -float(np.mean(np.log(correct)))
            np.subtract(output, targets, out=delta)
            delta /= batch_size
            activation_gradient.fill(0)
            activation_gradient[rows, labels] = -1 / (batch_size * correct)

        for layer in range(self.num_layers - 1, -1, -1):
            delta = ws.deltas[layer]
            # dC/dW = δ ⊗ a[l−1] and dC/db = δ, both summed over the mini-batch's examples
            # (the bias sum as a product with ones: BLAS does it faster than a short-axis sum)
            np.matmul(delta.T, forward.activations[layer], out=ws.weight_gradients[layer])
            np.matmul(ws.ones, delta, out=ws.bias_gradients[layer])
            if layer > 0:
                # dC/da[l−1] = δ W, then δ[l−1] = dC/da[l−1] ⊙ σ'(z[l−1])
                previous_gradient = np.matmul(
                    delta, self.weights[layer], out=ws.activation_gradients[layer - 1]
                )
                previous_delta = ws.deltas[layer - 1]
                derivative(self.activation, forward.activations[layer], out=previous_delta)
                previous_delta *= previous_gradient

        return Gradients(
            ws.weight_gradients, ws.bias_gradients, ws.activation_gradients, ws.deltas, cost
        )

    def cost(self, x: np.ndarray, labels: np.ndarray) -> float:
        """The mean cost of the examples ``x`` with the digits ``labels``."""
        return self.output_cost(self.forward(x).output, labels)

    def output_cost(self, output: np.ndarray, labels: np.ndarray) -> float:
        """The mean cost, given the output activations the forward pass already computed."""
        rows = np.arange(len(output))
        if self.loss == "mse":
            errors = output.astype(np.float64)
            errors[rows, labels] -= 1
            return 0.5 * float(np.vdot(errors, errors)) / len(output)
        correct = np.maximum(output[rows, labels], np.finfo(self.dtype).tiny)
        return -float(np.mean(np.log(correct.astype(np.float64))))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The output activations for the rows of ``x`` (probabilities for cross-entropy)."""
        return self.forward(x).output.copy()
