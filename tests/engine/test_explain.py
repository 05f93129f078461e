"""The explained trace of one example is the engine's own backward pass, repackaged."""

import numpy as np
import pytest

from engine.explain import average_gradient, explain, frozen_copy, gradient_step, teach
from engine.network import Network


def make_network(activation: str, loss: str) -> Network:
    network = Network([12, 6, 5, 4], activation, loss, seed=3, dtype=np.float64)
    rng = np.random.default_rng(7)
    for b in network.biases:
        b[:] = rng.normal(0, 0.3, b.shape)
    return network


def numerical_gradient(
    network: Network, x: np.ndarray, label: int, param: np.ndarray
) -> np.ndarray:
    eps = 1e-5
    gradient = np.zeros_like(param)
    for index in np.ndindex(param.shape):
        original = param[index]
        param[index] = original + eps
        plus = network.cost(x[None], np.array([label]))
        param[index] = original - eps
        minus = network.cost(x[None], np.array([label]))
        param[index] = original
        gradient[index] = (plus - minus) / (2 * eps)
    return gradient


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a) + np.abs(b)), 1e-12))


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("loss", ["mse", "cross-entropy"])
def test_trace_gradients_match_backward_and_finite_differences(activation: str, loss: str) -> None:
    network = make_network(activation, loss)
    x = np.random.default_rng(1).random(12)
    trace = explain(network, x, label=2)
    backward = network.backward(x[None], np.array([2]))
    assert trace.cost == pytest.approx(backward.cost, rel=1e-12)
    for layer, w, b in zip(trace.layers, network.weights, network.biases):
        assert relative_error(layer.weight_gradient, numerical_gradient(network, x, 2, w)) < 1e-6
        assert relative_error(layer.bias_gradient, numerical_gradient(network, x, 2, b)) < 1e-6
    for layer, expected in zip(trace.layers, backward.activation_gradients):
        np.testing.assert_allclose(layer.activation_gradients, expected[0], rtol=1e-12)


def test_trace_shows_the_forward_pass_and_target() -> None:
    network = make_network("sigmoid", "mse")
    x = np.random.default_rng(2).random(12)
    trace = explain(network, x, label=1)
    np.testing.assert_allclose(trace.output, network.predict(x[None])[0])
    assert trace.target.tolist() == [0, 1, 0, 0]
    # For the quadratic cost the output's dC/da is simply a − y (its nudge is y − a).
    np.testing.assert_allclose(trace.layers[-1].activation_gradients, trace.output - trace.target)


def test_contributions_are_the_largest_terms_of_each_activation_gradient() -> None:
    network = make_network("tanh", "cross-entropy")
    trace = explain(network, np.random.default_rng(4).random(12), label=0, top=5)
    first, second = trace.layers[0], trace.layers[1]
    for k, contributions in enumerate(first.contributions):
        terms = network.weights[1][:, k] * second.deltas
        assert [c.neuron for c in contributions] == list(np.argsort(-np.abs(terms))[:5])
        assert sum(terms) == pytest.approx(first.activation_gradients[k])
    assert trace.layers[-1].contributions == []


def test_a_small_gradient_step_lowers_this_examples_cost() -> None:
    network = make_network("relu", "mse")
    x = np.random.default_rng(5).random(12)
    before = explain(network, x, label=3).cost
    assert gradient_step(network, x, 3, lr=0.05) == pytest.approx(before)
    assert explain(network, x, label=3).cost < before


def test_the_average_gradient_is_the_mean_of_each_examples_gradient() -> None:
    network = make_network("sigmoid", "mse")
    rng = np.random.default_rng(6)
    images, labels = rng.random((7, 12)), rng.integers(0, 4, 7)
    average = average_gradient(network, images, labels)
    traces = [explain(network, x, int(label)) for x, label in zip(images, labels)]
    assert average.size == 7
    assert average.cost == pytest.approx(np.mean([t.cost for t in traces]), rel=1e-12)
    for layer in range(network.num_layers):
        mean_weights = np.mean([t.layers[layer].weight_gradient for t in traces], axis=0)
        mean_biases = np.mean([t.layers[layer].bias_gradient for t in traces], axis=0)
        np.testing.assert_allclose(average.weights[layer], mean_weights, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(average.biases[layer], mean_biases, rtol=1e-10, atol=1e-14)


def test_teach_reports_the_cost_and_outputs_before_and_after_one_step() -> None:
    network = make_network("tanh", "cross-entropy")
    x = np.random.default_rng(8).random(12)
    before = explain(network, x, label=1)
    untouched = frozen_copy(network)
    lesson = teach(network, x, 1, lr=0.1)
    assert lesson.cost_before == pytest.approx(before.cost, rel=1e-12)
    np.testing.assert_allclose(lesson.output_before, before.output)
    assert lesson.cost_after == pytest.approx(explain(network, x, label=1).cost, rel=1e-12)
    assert lesson.cost_after < lesson.cost_before
    assert lesson.output_after[1] > lesson.output_before[1]
    # The copy taken before the step kept the old weights.
    assert explain(untouched, x, label=1).cost == pytest.approx(before.cost, rel=1e-12)
