"""NAG (thesis eq. 7.12-7.13) against a hand-written trajectory, in float64."""

import numpy as np
import pytest

import keras

from rnnzoo.optimizers import NAG, schedules


def _linear_problem(seed=0, n=32, d=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=(d, 1)) + 0.5 + 0.1 * rng.normal(size=(n, 1))
    return x, y


def _linear_model():
    inputs = keras.Input((3,), dtype="float64")
    outputs = keras.layers.Dense(1, dtype="float64", kernel_initializer="ones")(inputs)
    return keras.Model(inputs, outputs)


def _mse_gradient(x, y, w, b):
    residual = x @ w + b - y
    return 2 * x.T @ residual / residual.size, 2 * residual.sum(0) / residual.size


def _reference_lookahead(x, y, steps, learning_rate, momentum):
    """Eq. 7.12-7.13 literally; returns the look-ahead y_t = theta_t + mu_t v_t."""
    theta = [np.ones((3, 1)), np.zeros(1)]
    velocity = [np.zeros((3, 1)), np.zeros(1)]
    for t in range(steps):
        mu = float(momentum(t))
        lookahead = [p + mu * v for p, v in zip(theta, velocity)]
        grads = _mse_gradient(x, y, *lookahead)
        velocity = [mu * v - learning_rate(t) * g for v, g in zip(velocity, grads)]
        theta = [p + v for p, v in zip(theta, velocity)]
    mu = float(momentum(steps))
    return [p + mu * v for p, v in zip(theta, velocity)]


def test_nag_matches_eq_7_12_7_13_with_momentum_changing_every_step():
    x, y = _linear_problem()
    momentum = schedules.NesterovMomentum(max_momentum=0.95, period=1)  # new mu every step
    learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay([5], [0.125, 0.0625])
    model = _linear_model()
    model.compile(optimizer=NAG(learning_rate=learning_rate, momentum=momentum), loss="mse")
    model.fit(x, y, batch_size=len(x), epochs=12, shuffle=False, verbose=0)

    expected = _reference_lookahead(
        x, y, 12, lambda t: float(learning_rate(t)), momentum
    )
    for variable, value in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-6, atol=1e-9)


def test_nag_differs_from_keras_nesterov_sgd_when_momentum_changes():
    """Keras's SGD(nesterov=True) uses one mu per step; eq. 7.12-7.13 need mu_t and mu_{t+1}."""
    x, y = _linear_problem()
    momentum = schedules.NesterovMomentum(max_momentum=0.95, period=1)
    nag = _linear_model()
    nag.compile(optimizer=NAG(learning_rate=0.125, momentum=momentum), loss="mse")
    nag.fit(x, y, batch_size=len(x), epochs=6, shuffle=False, verbose=0)
    expected = _reference_lookahead(x, y, 6, lambda t: 0.125, momentum)
    np.testing.assert_allclose(nag.trainable_variables[0].numpy(), expected[0], rtol=1e-6)

    constant_nag, keras_sgd = _linear_model(), _linear_model()
    constant_nag.compile(optimizer=NAG(learning_rate=0.125, momentum=0.75), loss="mse")
    keras_sgd.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.125, momentum=0.75, nesterov=True),
        loss="mse",
    )
    for model in (constant_nag, keras_sgd):
        model.fit(x, y, batch_size=len(x), epochs=6, shuffle=False, verbose=0)
    for a, b in zip(constant_nag.trainable_variables, keras_sgd.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    assert not np.allclose(nag.trainable_variables[0].numpy(), keras_sgd.trainable_variables[0].numpy())


def test_nag_save_load_mid_training_continues_identically(tmp_path):
    x, y = _linear_problem(seed=1)
    momentum = schedules.thesis_final_phase(0.1, schedules.NesterovMomentum(0.9, period=2), 12)[1]

    def fresh():
        model = _linear_model()
        model.compile(optimizer=NAG(learning_rate=0.05, momentum=momentum), loss="mse")
        return model

    straight = fresh()
    straight.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)

    interrupted = fresh()
    interrupted.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "nag.keras")
    interrupted.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored.optimizer, NAG)
    assert int(restored.optimizer.iterations.numpy()) == 4
    restored.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(straight.trainable_variables, restored.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


def test_nag_config_round_trip_keeps_the_schedule():
    optimizer = NAG(learning_rate=0.01, momentum=schedules.ExponentialProgression())
    clone = NAG.from_config(optimizer.get_config())
    assert isinstance(clone.momentum, schedules.ExponentialProgression)
    assert clone.momentum.boundaries == optimizer.momentum.boundaries
    assert float(clone.momentum_at(200_000)) == pytest.approx(0.999)


@pytest.mark.parametrize("momentum", [1.0, -0.1, "fast", True])
def test_nag_rejects_bad_momentum(momentum):
    with pytest.raises(ValueError, match="momentum"):
        NAG(momentum=momentum)
