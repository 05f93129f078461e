"""The network's gradients against finite differences and an independent per-example backprop."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

from engine.network import ACTIVATIONS, LOSSES, Network, Workspace

EPS = 1e-5  # central differences: truncation ~EPS² and rounding ~1e-16/EPS are both ≪ 1e-6
TOLERANCE = 1e-6
HIDDEN = ((5,), (5, 4), (6, 5, 4))
CASES = list(itertools.product(ACTIVATIONS, LOSSES, HIDDEN))


def case_id(case: tuple[str, str, tuple[int, ...]]) -> str:
    activation, loss, hidden = case
    return f"{activation}-{loss}-{'x'.join(map(str, hidden))}"


def make_network(activation: str, loss: str, hidden: tuple[int, ...], seed: int = 1) -> Network:
    """A small float64 network with non-zero biases, so no term of the gradient hides."""
    network = Network((8, *hidden, 10), activation, loss, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed + 100)
    for b in network.biases:
        b[:] = rng.normal(0, 0.5, b.shape)
    return network


def make_batch(seed: int = 2, size: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((size, 8)), rng.integers(0, 10, size)


def cost_of_output(loss: str, output: np.ndarray, labels: np.ndarray) -> float:
    """The mean cost written straight from its definition, independent of the engine."""
    targets = np.eye(output.shape[1])[labels]
    if loss == "mse":
        return float(np.mean(0.5 * np.sum((output - targets) ** 2, axis=1)))
    return float(np.mean(-np.log(np.sum(output * targets, axis=1))))


def feed_forward_from(network: Network, layer: int, activations: np.ndarray) -> np.ndarray:
    """The output when layer ``layer``'s activations are ``activations`` (0 = the input)."""
    a = activations
    for index in range(layer, network.num_layers):
        z = a @ network.weights[index].T + network.biases[index]
        if index < network.num_layers - 1:
            a = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh}.get(
                network.activation, lambda z: np.maximum(z, 0)
            )(z)
        elif network.loss == "mse":
            a = 1 / (1 + np.exp(-z))
        else:
            exp = np.exp(z - z.max(axis=1, keepdims=True))
            a = exp / exp.sum(axis=1, keepdims=True)
    return a


def numerical_gradient(cost, values: np.ndarray) -> np.ndarray:
    """dC/dvalues by central differences, nudging each entry of ``values`` in place."""
    gradient = np.zeros_like(values)
    for index in np.ndindex(values.shape):
        saved = values[index]
        values[index] = saved + EPS
        above = cost()
        values[index] = saved - EPS
        below = cost()
        values[index] = saved
        gradient[index] = (above - below) / (2 * EPS)
    return gradient


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖): scale-free, and not fooled by the
    many entries that are tiny (an element-wise ratio of two tiny numbers is mostly noise)."""
    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric))
    assert scale > 1e-8, "a gradient that is all zeros would check nothing"
    return float(np.linalg.norm(analytic - numeric) / scale)


def assert_far_from_relu_kinks(network: Network, x: np.ndarray) -> None:
    """Finite differences are only valid where ReLU is smooth within ±EPS of every z."""
    if network.activation == "relu":
        for z in network.forward(x).weighted_inputs[:-1]:
            assert np.abs(z).min() > 100 * EPS


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_weight_and_bias_gradients_match_central_differences(case) -> None:
    network = make_network(*case)
    x, labels = make_batch()
    assert_far_from_relu_kinks(network, x)
    gradients = network.backward(x, labels)

    def cost() -> float:
        return cost_of_output(network.loss, feed_forward_from(network, 0, x), labels)

    for layer in range(network.num_layers):
        numeric_w = numerical_gradient(cost, network.weights[layer])
        numeric_b = numerical_gradient(cost, network.biases[layer])
        assert relative_error(gradients.weights[layer], numeric_w) < TOLERANCE, layer
        assert relative_error(gradients.biases[layer], numeric_b) < TOLERANCE, layer
        assert (
            np.abs(gradients.weights[layer] - numeric_w).max() < TOLERANCE * np.abs(numeric_w).max()
        )


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_activation_gradients_match_central_differences_of_each_layers_activations(case) -> None:
    """dC/da of a layer: move one example's activation and feed forward from there."""
    network = make_network(*case)
    x, labels = make_batch()
    assert_far_from_relu_kinks(network, x)
    forward = network.forward(x)
    activations = [a.copy() for a in forward.activations]
    gradients = network.backward(x, labels)
    for layer in range(1, network.num_layers + 1):
        values = activations[layer]
        if layer == network.num_layers:
            # At the output the cost is a function of the activations themselves.
            def cost(values=values) -> float:
                return cost_of_output(network.loss, values, labels)
        else:

            def cost(values=values, layer=layer) -> float:
                output = feed_forward_from(network, layer, values)
                return cost_of_output(network.loss, output, labels)

        numeric = numerical_gradient(cost, values)
        analytic = gradients.activation_gradients[layer - 1]
        assert analytic.shape == (len(x), network.layer_sizes[layer])
        assert relative_error(analytic, numeric) < TOLERANCE, layer


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_cost_matches_the_definition(case) -> None:
    network = make_network(*case)
    x, labels = make_batch()
    expected = cost_of_output(network.loss, feed_forward_from(network, 0, x), labels)
    assert network.backward(x, labels).cost == pytest.approx(expected, rel=1e-12)
    assert network.cost(x, labels) == pytest.approx(expected, rel=1e-12)


def nielsen_backprop(network: Network, x: np.ndarray, label: int):
    """Nielsen's per-example backprop with column vectors, as an oracle written differently:
    ``δ_L = ∇_a C ⊙ σ'(z_L)``, ``δ_l = (W_{l+1}ᵀ δ_{l+1}) ⊙ σ'(z_l)``,
    ``∂C/∂W_l = δ_l a_{l−1}ᵀ``."""
    functions = {
        "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
        "tanh": (np.tanh, lambda z: 1 / np.cosh(z) ** 2),
        "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float)),
    }
    sigma, sigma_prime = functions[network.activation]
    y = np.zeros((network.layer_sizes[-1], 1))
    y[label] = 1
    activation = x.reshape(-1, 1)
    activations, zs = [activation], []
    for layer, (w, b) in enumerate(zip(network.weights, network.biases)):
        z = w @ activation + b.reshape(-1, 1)
        zs.append(z)
        if layer < network.num_layers - 1:
            activation = sigma(z)
        elif network.loss == "mse":
            activation = functions["sigmoid"][0](z)
        else:
            activation = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        activations.append(activation)
    if network.loss == "mse":
        delta = (activations[-1] - y) * functions["sigmoid"][1](zs[-1])
    else:
        delta = activations[-1] - y
    nabla_w = [np.zeros_like(w) for w in network.weights]
    nabla_b = [np.zeros_like(b) for b in network.biases]
    nabla_w[-1] = delta @ activations[-2].T
    nabla_b[-1] = delta.ravel()
    for back in range(2, network.num_layers + 1):
        delta = (network.weights[-back + 1].T @ delta) * sigma_prime(zs[-back])
        nabla_w[-back] = delta @ activations[-back - 1].T
        nabla_b[-back] = delta.ravel()
    return nabla_w, nabla_b


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_batch_gradient_is_the_mean_of_nielsens_per_example_gradients(case) -> None:
    network = make_network(*case)
    x, labels = make_batch(size=7)
    gradients = network.backward(x, labels)
    per_example = [nielsen_backprop(network, row, label) for row, label in zip(x, labels)]
    for layer in range(network.num_layers):
        mean_w = np.mean([w[layer] for w, _ in per_example], axis=0)
        mean_b = np.mean([b[layer] for _, b in per_example], axis=0)
        np.testing.assert_allclose(gradients.weights[layer], mean_w, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(gradients.biases[layer], mean_b, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_float32_workspace_agrees_with_float64(activation: str, loss: str) -> None:
    """The fast path (float32, reused buffers) computes the same numbers, to float32 precision."""
    exact = make_network(activation, loss, (16, 16))
    fast = Network(exact.layer_sizes, activation, loss, dtype=np.float32)
    fast.weights = [w.astype(np.float32) for w in exact.weights]
    fast.biases = [b.astype(np.float32) for b in exact.biases]
    x, labels = make_batch(size=32)
    expected = exact.backward(x, labels)
    workspace = fast.workspace(32)
    for _ in range(2):  # the second pass reuses the buffers the first one filled
        got = fast.backward(x.astype(np.float32), labels, workspace)
    assert got.cost == pytest.approx(expected.cost, rel=1e-5)
    for ours, theirs in zip(
        got.weights + got.activation_gradients, expected.weights + expected.activation_gradients
    ):
        assert ours.dtype == np.float32
        assert relative_error(ours.astype(np.float64), theirs) < 1e-5


def test_softmax_cost_stays_finite_for_huge_weighted_inputs() -> None:
    network = Network((8, 4, 10), "relu", "cross-entropy", dtype=np.float64)
    network.weights[-1] *= 1e4
    x, labels = make_batch()
    gradients = network.backward(x, labels)
    assert np.isfinite(gradients.cost)
    assert all(np.isfinite(w).all() for w in gradients.weights)


def test_sigmoid_does_not_overflow() -> None:
    network = Network((8, 4, 10), "sigmoid", "mse", dtype=np.float32)
    network.weights[0] *= 1e6
    output = network.forward(make_batch()[0].astype(np.float32)).output
    assert np.isfinite(output).all()


def test_same_seed_gives_the_same_weights_and_other_seeds_do_not() -> None:
    first, again, other = (Network((784, 16, 10), "relu", seed=s) for s in (3, 3, 4))
    for w1, w2, w3 in zip(first.weights, again.weights, other.weights):
        np.testing.assert_array_equal(w1, w2)
        assert not np.array_equal(w1, w3)


@pytest.mark.parametrize(("activation", "gain"), [("sigmoid", 1.0), ("tanh", 1.0), ("relu", 2.0)])
def test_initial_weights_keep_the_weighted_inputs_variance_near_one(activation, gain) -> None:
    network = Network((784, 512, 10), activation, seed=0)
    assert network.weights[0].std() == pytest.approx(np.sqrt(gain / 784), rel=0.02)
    assert all(not b.any() for b in network.biases)


def test_workspace_results_live_in_its_buffers() -> None:
    network = Network((8, 5, 10), dtype=np.float64)
    workspace = Workspace(network.layer_sizes, 5, np.float64)
    x, labels = make_batch()
    gradients = network.backward(x, labels, workspace)
    assert gradients.weights[0] is workspace.weight_gradients[0]
    assert gradients.activation_gradients[0] is workspace.activation_gradients[0]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (((784, 10), "swish"), "unknown activation"),
        (((784, 10), "relu", "hinge"), "unknown loss"),
        (((784,),), "at least two"),
        (((784, 0, 10),), "at least two positive"),
    ],
)
def test_bad_arguments_are_refused(arguments, message) -> None:
    with pytest.raises(ValueError, match=message):
        Network(*arguments)


def test_weights_and_biases_are_views_of_one_parameter_vector_even_after_assignment() -> None:
    network = make_network("relu", "cross-entropy", (6, 4))
    vector = network.parameters()
    assert all(array.base is vector for array in (*network.weights, *network.biases))
    np.testing.assert_array_equal(
        vector, np.concatenate([a.ravel() for a in (*network.weights, *network.biases)])
    )
    network.weights[0] = np.ones_like(network.weights[0])  # e.g. a loaded checkpoint
    moved = network.parameters()
    assert moved is not vector and network.weights[0].base is moved
    assert moved[: network.weights[0].size].sum() == network.weights[0].size
    moved[0] = 5.0
    assert network.weights[0][0, 0] == 5.0


def test_a_copy_and_a_pickled_network_have_their_own_weights() -> None:
    network = make_network("sigmoid", "mse", (5,))
    twin = network.copy()
    restored = pickle.loads(pickle.dumps(network))
    network.parameters()[:] = 0
    for other in (twin, restored):
        assert other.weights[0].any()
        assert other.parameters() is not network.parameters()
