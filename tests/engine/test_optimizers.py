"""Optimiser updates against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.optimizers import SGD, Adam, Momentum, make_optimizer


def params_and_grads() -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [np.array([1.0, -2.0]), np.array([0.5])], [np.array([0.1, -0.4]), np.array([2.0])]


def test_sgd_steps_against_the_gradient() -> None:
    params, grads = params_and_grads()
    SGD(lr=0.5).step(params, grads)
    np.testing.assert_allclose(params[0], [1.0 - 0.05, -2.0 + 0.2])
    np.testing.assert_allclose(params[1], [0.5 - 1.0])


def test_gradients_are_left_as_backprop_computed_them() -> None:
    for optimizer in (SGD(0.1, weight_decay=0.1), Momentum(0.1), Adam(0.1)):
        params, grads = params_and_grads()
        optimizer.step(params, grads)
        np.testing.assert_array_equal(grads[0], [0.1, -0.4])
        np.testing.assert_array_equal(grads[1], [2.0])


def test_momentum_accumulates_a_velocity() -> None:
    param, optimizer = np.array([1.0]), Momentum(lr=0.1, momentum=0.9)
    optimizer.step([param], [np.array([2.0])])
    # v₁ = −0.1·2 = −0.2;  θ₁ = 1 − 0.2 = 0.8
    assert param[0] == pytest.approx(0.8)
    optimizer.step([param], [np.array([1.0])])
    # v₂ = 0.9·(−0.2) − 0.1·1 = −0.28;  θ₂ = 0.8 − 0.28 = 0.52
    assert param[0] == pytest.approx(0.52)
    assert optimizer.velocities[0][0] == pytest.approx(-0.28)


def test_adam_first_steps_by_hand() -> None:
    param, optimizer = np.array([1.0]), Adam(lr=0.01)
    optimizer.step([param], [np.array([0.5])])
    # m = 0.1·0.5 = 0.05, v = 0.001·0.25 = 0.00025; the bias-corrected step is
    # 0.01·√(1 − 0.999)/(1 − 0.9) · 0.05/(√0.00025 + 1e-8) ≈ 0.01: Adam's first step is ~lr.
    first = 0.01 * math.sqrt(0.001) / 0.1 * 0.05 / (math.sqrt(0.00025) + 1e-8)
    assert param[0] == pytest.approx(1.0 - first, rel=1e-12)
    assert first == pytest.approx(0.01, rel=1e-6)
    optimizer.step([param], [np.array([-1.0])])
    m = 0.9 * 0.05 + 0.1 * -1.0  # −0.055
    v = 0.999 * 0.00025 + 0.001 * 1.0  # 0.00124975
    second = 0.01 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2) * m / (math.sqrt(v) + 1e-8)
    assert param[0] == pytest.approx(1.0 - first - second, rel=1e-12)
    assert optimizer.steps == 2


def test_adam_step_size_does_not_depend_on_the_gradients_scale() -> None:
    small, large = np.array([0.0]), np.array([0.0])
    Adam(lr=0.001).step([small], [np.array([1e-3])])
    Adam(lr=0.001).step([large], [np.array([1e3])])
    assert small[0] == pytest.approx(large[0], rel=1e-3)


def test_learning_rate_can_change_between_steps() -> None:
    sgd, momentum, adam = SGD(0.1), Momentum(0.1, momentum=0.9), Adam(0.1)
    steady_adam = Adam(0.1)
    params = {name: np.array([1.0]) for name in ("sgd", "momentum", "adam", "steady_adam")}
    for name, optimizer in zip(params, (sgd, momentum, adam, steady_adam)):
        optimizer.step([params[name]], [np.array([1.0])])
    after_first = {name: param[0] for name, param in params.items()}
    for optimizer in (sgd, momentum, adam):
        optimizer.lr = 0.01
    for name, optimizer in zip(params, (sgd, momentum, adam, steady_adam)):
        optimizer.step([params[name]], [np.array([1.0])])
    moved = {name: after_first[name] - param[0] for name, param in params.items()}
    assert moved["sgd"] == pytest.approx(0.01)  # 0.01·1
    assert moved["momentum"] == pytest.approx(0.1)  # −v = 0.9·0.1 + 0.01·1
    assert moved["adam"] == pytest.approx(moved["steady_adam"] / 10, rel=1e-12)


def test_lr_scale_multiplies_the_learning_rate() -> None:
    param, optimizer = np.array([1.0]), SGD(lr=0.4)
    optimizer.lr_scale = 0.25
    optimizer.step([param], [np.array([1.0])])
    assert param[0] == pytest.approx(0.9)
    assert optimizer.lr == 0.4


def test_weight_decay_adds_lambda_theta_to_decayed_parameters_only() -> None:
    params, grads = params_and_grads()
    SGD(lr=0.5, weight_decay=0.1).step(params, grads, decayed=[True, False])
    # θ ← θ − lr·(g + λθ) for the weights; the bias follows its plain gradient.
    np.testing.assert_allclose(params[0], [1.0 - 0.5 * (0.1 + 0.1), -2.0 - 0.5 * (-0.4 - 0.2)])
    np.testing.assert_allclose(params[1], [0.5 - 0.5 * 2.0])


def test_weight_decay_alone_shrinks_weights_geometrically() -> None:
    param, optimizer = np.array([2.0]), SGD(lr=0.1, weight_decay=0.5)
    for _ in range(3):
        optimizer.step([param], [np.array([0.0])])
    assert param[0] == pytest.approx(2.0 * 0.95**3)


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_restored_state_continues_exactly(name: str) -> None:
    """What a checkpoint saves (state, steps) is all an optimiser needs to carry on."""
    rng = np.random.default_rng(0)
    gradients = [rng.normal(size=3) for _ in range(4)]
    straight, param = make_optimizer(name, 0.01), np.zeros(3)
    for grad in gradients:
        straight.step([param], [grad])
    first, resumed_param = make_optimizer(name, 0.01), np.zeros(3)
    for grad in gradients[:2]:
        first.step([resumed_param], [grad])
    resumed = make_optimizer(name, 0.01)
    resumed.restore([resumed_param], first.steps, first.state())
    for grad in gradients[2:]:
        resumed.step([resumed_param], [grad])
    np.testing.assert_array_equal(param, resumed_param)


def test_unknown_optimizer_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", 0.1)
