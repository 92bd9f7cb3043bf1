"""Per-time-step recurrent gradients (longer-rnns §6.9) against a hand-written BPTT."""

import json
import os

import keras
import numpy as np
import pytest

from rnnzoo.layers import ResRNN
from rnnzoo.training import gradient_propagation as gp


def _tiny_tanh_rnn(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 2))
    hidden = keras.layers.SimpleRNN(3, activation="tanh", name="rnn")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden))
    rng = np.random.default_rng(seed)
    for w in model.weights:  # nonzero biases too
        w.assign(rng.normal(scale=0.7, size=w.shape).astype("float32"))
    return model


def _numpy_bptt(model, x, y):
    """dL/dW_hh^(t) = h_{t-1}^T (dL/dh_t * (1 - h_t^2)) for L = mean((y_hat - y)^2)."""
    w_x, w_h, b, w_o, b_o = [np.asarray(w, np.float64) for w in model.get_weights()]
    batch, steps, _ = x.shape
    hs = [np.zeros((batch, w_h.shape[0]))]
    for t in range(steps):
        hs.append(np.tanh(x[:, t] @ w_x + hs[-1] @ w_h + b))
    y_hat = hs[-1] @ w_o + b_o
    dh = (2.0 * (y_hat - y) / y.size) @ w_o.T
    per_step = [None] * steps
    for t in reversed(range(steps)):
        da = dh * (1.0 - hs[t + 1] ** 2)
        per_step[t] = hs[t].T @ da
        dh = da @ w_h.T
    return np.stack(per_step)


def test_per_step_gradients_match_hand_bptt_and_sum_to_the_gradient():
    model = _tiny_tanh_rnn()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4, 2)).astype("float32")
    y = rng.normal(size=(5, 1)).astype("float32")
    loss = keras.losses.MeanSquaredError()
    gradients = gp.per_step_gradients(model, x, y, loss)
    assert set(gradients) == {"recurrent_kernel"}
    expected = _numpy_bptt(model, x.astype(np.float64), y.astype(np.float64))
    np.testing.assert_allclose(gradients["recurrent_kernel"], expected, rtol=1e-4, atol=1e-6)

    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = loss(y, model(x))
    full = tape.gradient(value, model.get_layer("rnn").cell.recurrent_kernel.value)
    np.testing.assert_allclose(gradients["recurrent_kernel"].sum(0), full, rtol=1e-4, atol=1e-6)

    summary = gp.summarize(gradients)["recurrent_kernel"]
    magnitudes = np.abs(expected.reshape(4, -1))
    np.testing.assert_allclose(summary["min"], magnitudes.min(1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(summary["median"], np.median(magnitudes, 1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(summary["max"], magnitudes.max(1), rtol=1e-4, atol=1e-7)


def test_resrnn_recurrent_weights_have_zero_gradient_at_first_step_of_training():
    """Longer-rnns §6.9: W_hh1's gradients are identically zero at initialisation; W_hh2's are not."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 2))
    model = keras.Model(inputs, keras.layers.Dense(1)(ResRNN(4)(inputs)))
    x = np.random.default_rng(0).uniform(size=(8, 6, 2)).astype("float32")
    y = np.ones((8, 1), "float32")
    summary = gp.summarize(gp.per_step_gradients(model, x, y, keras.losses.MeanSquaredError()))
    assert set(summary) == {"recurrent_kernel", "combination_kernel"}
    assert max(summary["recurrent_kernel"]["max"]) == 0.0
    assert min(summary["combination_kernel"]["max"]) > 0.0


def test_callback_writes_json_and_png_at_chosen_steps(tmp_path):
    model = _tiny_tanh_rnn()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 4, 2)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    loss = keras.losses.MeanSquaredError()
    expected_at_0 = gp.summarize(gp.per_step_gradients(model, x[:4], y[:4], loss))
    model.compile(keras.optimizers.SGD(0.1), loss)
    callback = gp.GradientPropagation([0, 3], (x[:4], y[:4]), loss, str(tmp_path))
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[callback], verbose=0)
    with open(tmp_path / "gradients.json") as f:
        records = json.load(f)
    assert sorted(records) == ["0", "3"]
    np.testing.assert_allclose(
        records["0"]["recurrent_kernel"]["median"], expected_at_0["recurrent_kernel"]["median"],
        rtol=1e-5,
    )
    assert records["3"]["recurrent_kernel"]["max"] != records["0"]["recurrent_kernel"]["max"]
    assert os.path.getsize(tmp_path / "step_0.png") > 1000
    assert os.path.getsize(tmp_path / "step_3.png") > 1000


def test_model_without_single_rnn_is_rejected():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    with pytest.raises(ValueError, match="exactly one recurrent layer"):
        gp.per_step_gradients(model, np.zeros((1, 3)), np.zeros((1, 1)), keras.losses.MeanSquaredError())
