"""VL-iRNN: the tying penalty, its schedule, and the collapse into one tied iRNN."""

import numpy as np
import keras

from rnnzoo.layers import ScopedRNN, paper_penalty_schedule
from tests.layer_cases import randomize

RNG = np.random.default_rng(3)
X = RNG.standard_normal((4, 9, 2)).astype("float32")


def test_scopes_start_tied_and_penalty_is_zero():
    layer = ScopedRNN(5, num_scopes=3, scope_length=3)
    layer(X)
    for weight in layer.cell.scope_parameters():
        values = np.asarray(weight)
        np.testing.assert_array_equal(values, np.repeat(values[:1], 3, axis=0))
    np.testing.assert_array_equal(np.asarray(layer.cell.recurrent_kernel)[0], np.eye(5))
    assert float(layer.losses[0]) == 0.0


def test_penalty_equals_rho_times_sum_of_squared_scope_differences():
    layer = ScopedRNN(5, num_scopes=3, scope_length=3, penalty=0.25)
    layer(X)
    randomize(layer)
    layer(X)
    expected = 0.25 * sum(
        np.sum((np.asarray(w)[1:] - np.asarray(w)[:-1]) ** 2) for w in layer.cell.scope_parameters()
    )
    np.testing.assert_allclose(float(layer.losses[-1]), expected, rtol=1e-5)


def test_paper_schedule_grows_rho_by_1_001_every_37_training_steps():
    rho = paper_penalty_schedule()
    np.testing.assert_allclose(float(rho(0)), 2e-6, rtol=1e-6)
    np.testing.assert_allclose(float(rho(36)), 2e-6, rtol=1e-6)
    np.testing.assert_allclose(float(rho(37)), 2e-6 * 1.001, rtol=1e-6)
    # float32 arithmetic, as in Keras's schedule: 1.001 rounds to 1.00100005.
    np.testing.assert_allclose(float(rho(37 * 1000)), 2e-6 * 1.001**1000, rtol=1e-4)
    np.testing.assert_allclose(float(rho(1_000_000)), 2e-6 * 1.001 ** (1_000_000 // 37), rtol=2e-3)
    assert 5e5 < float(rho(1_000_000)) < 2e6  # §6.3: "about 10^6 at 1 million iterations"


def test_fit_advances_the_penalty_step_and_adds_the_loss():
    layer = ScopedRNN(5, num_scopes=3, scope_length=3, penalty=keras.optimizers.schedules.ExponentialDecay(1.0, 1, 2.0, staircase=True))
    model = keras.Sequential([keras.Input((9, 2)), layer, keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    model.fit(X, np.zeros((4, 1)), batch_size=2, epochs=2, verbose=0)
    assert int(layer.penalty_step.numpy()) == 4  # two batches x two epochs
    model.predict(X, verbose=0)
    assert int(layer.penalty_step.numpy()) == 4  # inference does not advance it
    np.testing.assert_allclose(float(layer.penalty_weight()), 2.0**4)
    assert float(layer.scope_distance()) > 0  # training untied the scopes


def test_scope_selection_follows_time():
    """A change to scope 1's recurrent weights affects only steps 3..5 onwards."""
    layer = ScopedRNN(5, num_scopes=3, scope_length=3, return_sequences=True)
    layer(X)
    before = layer(X).numpy()
    kernel = np.asarray(layer.cell.recurrent_kernel).copy()
    kernel[1] *= 0.5
    layer.cell.recurrent_kernel.assign(kernel)
    after = layer(X).numpy()
    np.testing.assert_array_equal(before[:, :3], after[:, :3])
    assert np.abs(before[:, 3:] - after[:, 3:]).max() > 0


def test_collapse_gives_the_tied_irnn():
    layer = ScopedRNN(5, num_scopes=3, scope_length=3, return_sequences=True)
    layer(X)
    tied = layer.collapse()
    assert isinstance(tied, keras.layers.SimpleRNN)
    np.testing.assert_allclose(tied(X), layer(X), rtol=1e-5, atol=1e-6)
    randomize(layer)
    tied = layer.collapse()
    for ours, theirs in zip(tied.get_weights(), layer.cell.scope_parameters()):
        np.testing.assert_allclose(ours, np.mean(np.asarray(theirs), axis=0), rtol=1e-6)
