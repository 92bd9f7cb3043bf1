"""Augmented Hessian-free (thesis §6.2): CG on a quadratic, monotone on a nonlinear model."""

import numpy as np
import pytest
import tensorflow as tf

import keras
import rnnzoo
from rnnzoo.optimizers import AugmentedHessianFree, gauss_newton_operator
from rnnzoo.optimizers.conjugate_gradient import conjugate_gradient
from rnnzoo.optimizers.second_order import flatten, unflatten
from rnnzoo.optimizers.matching_losses import matching_loss


def _linear(x):
    inputs = keras.Input((x.shape[1],))
    return rnnzoo.Model(inputs, keras.layers.Dense(1, kernel_initializer="zeros")(inputs))


def _cg_losses(design, y, steps):
    """mse after each of `steps` plain CG steps on the (exact) quadratic from zero, in numpy."""
    n = len(design)
    a, b = 2 * design.T @ design / n, 2 * design.T @ y / n
    w = np.zeros(len(b))
    r = b.copy()
    p = r.copy()
    losses = []
    for _ in range(steps):
        step = (r @ r) / (p @ a @ p)
        w = w + step * p
        r_new = r - step * a @ p
        p = r_new + (r_new @ r_new) / (r @ r) * p
        r = r_new
        losses.append(np.mean((design @ w - y) ** 2))
    return np.array(losses)


def test_ahf_is_cg_on_a_quadratic_and_solves_least_squares(float64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 8)) * np.logspace(0, -1, 8)
    y = x @ rng.normal(size=(8, 1)) + 0.2 + 0.05 * rng.normal(size=(100, 1))
    design = np.c_[x, np.ones(len(x))]
    model = _linear(x)
    optimizer = AugmentedHessianFree(max_directions=5, curvature_fraction=1.0, tolerance=0.0)
    model.compile(optimizer=optimizer, loss="mse")
    model.optimizer.build(model.trainable_variables)
    result = tf.function(optimizer.iterate)(model, tf.constant(x), tf.constant(y))
    # Quadratic objective = its Gauss-Newton model: the greedy coefficients are CG's.
    np.testing.assert_allclose(result["losses"].numpy()[1:], _cg_losses(design, y[:, 0], 5),
                               rtol=1e-9)
    np.testing.assert_allclose(result["losses"].numpy()[1:] - result["loss"].numpy(),
                               result["model_losses"].numpy()[1:], rtol=1e-8, atol=1e-14)
    assert int(result["evaluations"]) == 5  # the model's minimiser is accepted at once
    # A second iteration, hot-started from the first update, reaches the least-squares solution.
    optimizer.max_directions = 9
    second = tf.function(optimizer.iterate)(model, tf.constant(x), tf.constant(y))
    solution = np.linalg.lstsq(design, y, rcond=None)[0][:, 0]
    weights = np.concatenate([w.reshape(-1) for w in model.get_weights()])
    np.testing.assert_allclose(weights, solution, rtol=1e-7, atol=1e-9)
    assert float(second["losses"][1]) == pytest.approx(float(second["loss"]), rel=1e-12)  # c_0


def _cg_step_loss(model, x, y, steps):
    """mse at theta + (undamped CG on the Gauss-Newton quadratic, `steps` steps from zero)."""
    variables = model.trainable_variables
    theta = [v.numpy() for v in variables]
    loss = matching_loss("mse")
    with tf.GradientTape() as tape:
        value = loss.value(y, model(x, training=False))
    gradient = flatten(tape.gradient(value, variables))
    product = gauss_newton_operator(model, loss, x, 0.0, y=y)
    iterates, _, count, _ = conjugate_gradient(
        lambda v: flatten(product(unflatten(v, variables))), -gradient,
        tf.zeros_like(gradient), steps, tolerance=0.0)
    step = unflatten(iterates[count - 1], variables)
    for variable, start, change in zip(variables, theta, step):
        variable.assign(start + change)
    result = float(loss.value(y, model(x, training=False)))
    for variable, start in zip(variables, theta):
        variable.assign(start)
    return result


def test_ahf_never_raises_the_loss_and_beats_the_cg_step(float64):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(128, 4)))
    y = tf.constant(np.sin(x.numpy() @ rng.normal(size=(4, 2))))
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(16, activation="tanh")(inputs)
    model = rnnzoo.Model(inputs, keras.layers.Dense(2)(hidden))
    optimizer = AugmentedHessianFree(max_directions=20, curvature_fraction=1.0)
    model.compile(optimizer=optimizer, loss="mse")
    model.optimizer.build(model.trainable_variables)
    iterate = tf.function(optimizer.iterate)
    before, ahf, cg = [], [], []
    for _ in range(6):
        weights_before = [v.numpy() for v in model.trainable_variables]
        result = iterate(model, x, y)
        losses = result["losses"].numpy()
        assert np.all(np.diff(losses) <= 0)  # every 1-D search keeps the objective from rising
        before.append(float(result["loss"]))
        ahf.append(losses[-1])
        weights = [v.numpy() for v in model.trainable_variables]
        for variable, start in zip(model.trainable_variables, weights_before):
            variable.assign(start)
        cg.append(_cg_step_loss(model, x, y, int(result["directions"])))
        for variable, value in zip(model.trainable_variables, weights):
            variable.assign(value)
    assert np.all(np.diff(before) < 0)
    # The true loss after an AHF iteration is no higher than after the same number of plain
    # (measured: 0.26 vs 0.42, 0.088 vs 0.48, 0.037 vs 0.15, 0.021 vs 0.12, 0.014 vs 0.022, ...)
    # (undamped) CG steps on the Gauss-Newton quadratic from the same weights.
    assert np.all(np.array(ahf) <= np.array(cg))
    assert before[-1] < 0.5 * before[0]


def test_ahf_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_directions"):
        AugmentedHessianFree(max_directions=0)
    with pytest.raises(ValueError, match="curvature_fraction"):
        AugmentedHessianFree(curvature_fraction=1.5)
