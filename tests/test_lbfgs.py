"""L-BFGS (memory 100, thesis §6.7.1): two-loop recursion and convergence against SciPy."""

import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

import keras
import rnnzoo
from rnnzoo.optimizers import LBFGS
from rnnzoo.optimizers.lbfgs import two_loop_direction


def _bfgs_inverse_hessian(pairs, n):
    """The dense L-BFGS matrix: H_0 = gamma I of the newest pair, then the BFGS updates."""
    s_last, y_last = pairs[-1]
    h = (s_last @ y_last) / (y_last @ y_last) * np.eye(n)
    for s, y in pairs:
        rho = 1.0 / (y @ s)
        v = np.eye(n) - rho * np.outer(y, s)
        h = v.T @ h @ v + rho * np.outer(s, s)
    return h


def test_two_loop_recursion_is_the_bfgs_matrix_over_the_last_pairs():
    rng = np.random.default_rng(0)
    n, memory = 6, 3
    a = rng.normal(size=(n, n))
    a = a @ a.T + np.eye(n)
    pairs = [(s, a @ s) for s in rng.normal(size=(5, n))]  # y = A s: positive curvature
    s_buf, y_buf = np.zeros((memory, n)), np.zeros((memory, n))
    for k, (s, y) in enumerate(pairs):
        s_buf[k % memory], y_buf[k % memory] = s, y
    g = rng.normal(size=n)
    direction = two_loop_direction(tf.constant(g), tf.constant(s_buf), tf.constant(y_buf),
                                   tf.constant(5), memory)
    expected = -_bfgs_inverse_hessian(pairs[-memory:], n) @ g  # pairs 3, 4, 5 of 5
    np.testing.assert_allclose(direction.numpy(), expected, rtol=1e-10)
    first = two_loop_direction(tf.constant(g), tf.constant(s_buf), tf.constant(y_buf),
                               tf.constant(0), memory)
    np.testing.assert_allclose(first.numpy(), -g / np.abs(g).sum(), rtol=1e-12)


def _problem(seed=0, n=200, d=20):
    """An ill-conditioned least-squares problem (condition number of X^T X about 1e4)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * np.logspace(0, -2, d)
    y = x @ rng.normal(size=(d, 1)) + 0.5 + 0.01 * rng.normal(size=(n, 1))
    return x, y


def test_lbfgs_converges_like_scipy_lbfgsb_on_least_squares(float64):
    x, y = _problem()
    inputs = keras.Input((x.shape[1],))
    model = rnnzoo.Model(inputs, keras.layers.Dense(1, kernel_initializer="zeros")(inputs))
    model.compile(optimizer=LBFGS(), loss="mse")
    design = np.c_[x, np.ones(len(x))]

    def loss(w):
        return np.mean((design @ w - y[:, 0]) ** 2)

    def gradient(w):
        return 2 * design.T @ (design @ w - y[:, 0]) / len(x)

    optimum = loss(np.linalg.lstsq(design, y[:, 0], rcond=None)[0])
    initial_gap = loss(np.zeros(design.shape[1])) - optimum
    done = 0
    for steps in (10, 20, 40):
        reference = scipy.optimize.minimize(
            loss, np.zeros(design.shape[1]), jac=gradient, method="L-BFGS-B",
            options={"maxcor": 100, "maxiter": steps, "ftol": 0, "gtol": 0},
        )
        assert reference.nit == steps
        model.fit(x, y, batch_size=len(x), epochs=steps - done, shuffle=False, verbose=0)
        done = steps
        ours = loss(np.concatenate([w.reshape(-1) for w in model.get_weights()]))
        # Measured gaps: 10 its 1.7e-2 (SciPy 1.4e-2), 20: 1.6e-3 (1.4e-3), 40: 4e-5 (3.1e-5).
        assert ours - optimum <= 1.5 * (reference.fun - optimum)
    assert ours - optimum < 1e-4 * initial_gap
    assert int(model.optimizer.pairs.numpy()) == 40


def test_lbfgs_never_raises_the_loss_and_rejects_bad_arguments(float64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 3))
    y = np.tanh(x @ rng.normal(size=(3, 1)))
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)
    model = rnnzoo.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(optimizer=LBFGS(memory=5), loss="mse")
    history = model.fit(x, y, batch_size=64, epochs=15, shuffle=False, verbose=0).history
    assert np.all(np.diff(history["loss"]) <= 0)
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    with pytest.raises(ValueError, match="memory"):
        LBFGS(memory=0)
    with pytest.raises(ValueError, match="line_search_shrink"):
        LBFGS(line_search_shrink=1.0)


def test_lbfgs_memory_is_saved_and_restored_with_the_model(tmp_path, float64):
    x, y = _problem(n=50, d=4)
    inputs = keras.Input((4,))
    model = rnnzoo.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=LBFGS(memory=2), loss="mse")
    model.fit(x, y, batch_size=50, epochs=3, shuffle=False, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored.optimizer, LBFGS) and restored.optimizer.memory == 2
    assert int(restored.optimizer.pairs.numpy()) == 3  # 3 stored, the ring buffer holds 2
    np.testing.assert_array_equal(restored.optimizer.s_memory.numpy(),
                                  model.optimizer.s_memory.numpy())
    for trained in (model, restored):
        trained.fit(x, y, batch_size=50, epochs=1, shuffle=False, verbose=0)
    for ours, theirs in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
