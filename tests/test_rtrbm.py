"""RTRBM / TRBM layers (thesis ch. 3): the CD + BPTT gradient against a hand-written numpy
derivation, free energies against enumeration, Gibbs sampling against the exact distribution,
seeds, generation, and the Keras layer behaviour (.keras round trip, config, masking, shapes)."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.layers import RTRBM, TRBM


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def tiny_layer(cls, pixels=5, units=4, seed=0, **kwargs):
    """A built layer with random weights large enough that every term matters."""
    layer = cls(units, **kwargs)
    layer.build((None, None, pixels))
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(rng.normal(0, 0.7, variable.shape))
    return layer


def numpy_gradient(W, Wp, b_h, b_v, h0, v, v_neg):
    """The derivation of docs/rtrbm.md (thesis-notes form, column vectors, one sequence):
    the ascent direction of sum_t log P(v_t | r_{t-1}) estimated by CD with negatives v_neg."""
    T = len(v)
    r = np.zeros((T + 1, len(b_h)))
    r[0] = h0
    b = np.zeros((T, len(b_h)))
    for t in range(T):
        b[t] = b_h + Wp @ r[t]
        r[t + 1] = sigmoid(W @ v[t] + b[t])
    d = np.array([sigmoid(W @ v[t] + b[t]) - sigmoid(W @ v_neg[t] + b[t]) for t in range(T)])
    s = np.zeros_like(d)
    g = np.zeros(len(b_h))  # g_T = 0
    for t in reversed(range(T)):
        if t < T - 1:
            g = Wp.T @ (d[t + 1] + s[t + 1])
        s[t] = r[t + 1] * (1 - r[t + 1]) * g
    dWp = sum(np.outer(d[t] + s[t], r[t]) for t in range(T))
    dW = sum(np.outer(sigmoid(W @ v[t] + b[t]), v[t]) - np.outer(sigmoid(W @ v_neg[t] + b[t]), v_neg[t])
             for t in range(T)) + sum(np.outer(s[t], v[t]) for t in range(T))
    db_h = (d + s).sum(axis=0)
    db_v = (v - v_neg).sum(axis=0)
    dh0 = Wp.T @ (d[0] + s[0])
    return {"kernel": dW.T, "recurrent_kernel": dWp.T, "hidden_bias": db_h, "visible_bias": db_v,
            "initial_hidden": dh0}


def autodiff_gradient(layer, frames, negatives, biases_fn):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer.free_energy_gap(frames, negatives, biases_fn()))
    names = [v.name for v in layer.trainable_variables]
    return dict(zip(names, [np.asarray(g) for g in tape.gradient(loss, layer.trainable_variables)]))


@pytest.mark.parametrize("visible", ["binary", "gaussian"])
def test_cd_bptt_gradient_matches_the_numpy_derivation(float64, visible):
    # the formulas hold for both unit types: dF/db_v is -v (binary) or -(v - b_v) (Gaussian), and
    # the b_v terms cancel in the free-energy gap
    layer = tiny_layer(RTRBM, visible=visible)
    rng = np.random.default_rng(1)
    frames = (rng.random((2, 6, 5)) < 0.5).astype(np.float64)
    biases = layer.hidden_biases(frames)
    negatives, _ = layer.gibbs(frames, biases, 3, seed=7)
    negatives = np.asarray(negatives)
    assert 0 < np.mean(negatives != frames) <= 1  # the Gibbs samples differ from the data
    got = autodiff_gradient(layer, frames, negatives, lambda: layer.training_biases(frames, seed=0))
    W, Wp = np.asarray(layer.kernel).T, np.asarray(layer.recurrent_kernel).T
    params = (W, Wp, np.asarray(layer.hidden_bias), np.asarray(layer.visible_bias), np.asarray(layer.initial_hidden))
    expected = [numpy_gradient(*params, frames[i], negatives[i]) for i in range(2)]
    for name in got:
        want = -(expected[0][name] + expected[1][name])  # the loss is minimised: minus the ascent direction
        assert np.abs(want).max() > 1e-3, name  # every parameter's gradient is exercised
        np.testing.assert_allclose(got[name], want, rtol=1e-9, atol=1e-12, err_msg=name)


def test_the_trbm_gradient_holds_the_sampled_history_constant(float64):
    layer = tiny_layer(TRBM)
    rng = np.random.default_rng(2)
    frames = (rng.random((1, 5, 5)) < 0.5).astype(np.float64)
    negatives = (rng.random((1, 5, 5)) < 0.5).astype(np.float64)
    got = autodiff_gradient(layer, frames, negatives, lambda: layer.training_biases(frames, seed=3))
    # the sampled history the biases were made from: binary, so b_t - b_h = h_{t-1} W'^T
    biases = np.asarray(layer.training_biases(frames, seed=3))[0]
    W, Wp = np.asarray(layer.kernel).T, np.asarray(layer.recurrent_kernel).T
    history = np.linalg.solve(Wp, (biases - np.asarray(layer.hidden_bias)).T).T
    np.testing.assert_allclose(history[0], np.asarray(layer.initial_hidden), atol=1e-9)
    np.testing.assert_allclose(history[1:], np.round(history[1:]), atol=1e-9)
    v, vn = frames[0], negatives[0]
    d = sigmoid(v @ W.T + biases) - sigmoid(vn @ W.T + biases)
    np.testing.assert_allclose(got["recurrent_kernel"], -(d.T @ history).T, atol=1e-10)
    np.testing.assert_allclose(got["hidden_bias"], -d.sum(0), atol=1e-10)
    np.testing.assert_allclose(got["initial_hidden"], -(Wp.T @ d[0]), atol=1e-10)
    direct = sigmoid(v @ W.T + biases).T @ v - sigmoid(vn @ W.T + biases).T @ vn
    np.testing.assert_allclose(got["kernel"], -direct.T, atol=1e-10)  # no path through the history


@pytest.mark.parametrize("visible", ["binary", "gaussian"])
def test_free_energy_is_minus_the_log_of_the_summed_out_hiddens(float64, visible):
    layer = tiny_layer(RTRBM, pixels=3, units=2, visible=visible)
    v = np.random.default_rng(3).random((1, 2, 3))
    biases = np.random.default_rng(4).normal(size=(1, 2, 2))
    W, b_v = np.asarray(layer.kernel), np.asarray(layer.visible_bias)
    got = np.asarray(layer.free_energy(v, biases))
    for t in range(2):
        total = sum(np.exp(h @ (v[0, t] @ W) + h @ biases[0, t]) for h in map(np.array, itertools.product([0, 1], repeat=2)))
        visible_term = v[0, t] @ b_v if visible == "binary" else -0.5 * np.sum((v[0, t] - b_v) ** 2)
        np.testing.assert_allclose(got[0, t], -visible_term - np.log(total), rtol=1e-10)


def test_gibbs_chains_sample_the_step_rbms_distribution():
    layer = tiny_layer(RTRBM, pixels=3, units=2, seed=5)
    biases = np.array([[[0.5, -1.0]], [[-0.3, 1.2]]], np.float32)  # two step RBMs
    chains = 4000
    start = np.zeros((2 * chains, 1, 3), np.float32)
    sample, _ = layer.gibbs(start, np.repeat(biases, chains, axis=0), 30, seed=11)
    sample = np.asarray(sample).reshape(2, chains, 3)
    states = np.array(list(itertools.product([0, 1], repeat=3)), np.float32)
    for step in range(2):
        free = np.asarray(layer.free_energy(states[None], np.repeat(biases[step:step + 1], 8, axis=1)))[0]
        exact = np.exp(-free) / np.exp(-free).sum()
        codes = sample[step] @ np.array([4, 2, 1])
        empirical = np.bincount(codes.astype(int), minlength=8) / chains
        np.testing.assert_allclose(empirical, exact, atol=0.03)


def test_samples_follow_the_seed_and_per_row_seeds_ignore_the_rest_of_the_batch():
    layer = tiny_layer(RTRBM, pixels=6, units=3)
    frames = (np.random.default_rng(0).random((3, 4, 6)) < 0.5).astype(np.float32)
    biases = layer.hidden_biases(frames)
    first = np.asarray(layer.gibbs(frames, biases, 2, seed=1)[0])
    np.testing.assert_array_equal(first, np.asarray(layer.gibbs(frames, biases, 2, seed=1)[0]))
    assert not np.array_equal(first, np.asarray(layer.gibbs(frames, biases, 2, seed=2)[0]))
    rows = tf.constant([5, 6, 7], tf.int64)
    generate = tf.function(lambda prefix, seed: layer.generate(5, prefix=prefix, gibbs_steps=3, seed=seed))
    batch = np.asarray(generate(frames, rows))
    alone = np.asarray(generate(frames[1:2], rows[1:2]))
    np.testing.assert_allclose(batch[1:2], alone, atol=1e-6)
    assert batch.shape == (3, 5, 6) and np.all((batch >= 0) & (batch <= 1))


def test_the_chain_biases_predictions_and_generation_follow_the_equations():
    layer = tiny_layer(RTRBM, pixels=5, units=4)
    frames = np.random.default_rng(6).random((2, 4, 5)).astype(np.float32)
    W, Wp = np.asarray(layer.kernel), np.asarray(layer.recurrent_kernel)
    b_h, b_v, h0 = (np.asarray(w) for w in (layer.hidden_bias, layer.visible_bias, layer.initial_hidden))
    r, biases = [np.tile(h0, (2, 1))], []
    for t in range(4):
        biases.append(b_h + r[-1] @ Wp)
        r.append(sigmoid(frames[:, t] @ W + biases[-1]))  # eq. 3.20
    np.testing.assert_allclose(layer(frames), np.stack(r[1:], 1), rtol=1e-5)
    np.testing.assert_allclose(layer.hidden_biases(frames), np.stack(biases, 1), rtol=1e-5, atol=1e-6)
    # mean field: one update from frame t-1 is E[v | h = P(h | v_{t-1}; b_t)]
    start = np.concatenate([np.zeros((2, 1, 5)), frames[:, :-1]], 1)
    expected = sigmoid(sigmoid(start @ W + np.stack(biases, 1)) @ W.T + b_v)
    np.testing.assert_allclose(layer.predict_frames(frames, 1, "mean_field"), expected, rtol=1e-5)
    after = sigmoid(sigmoid(frames[:, -1] @ W + b_h + r[-1] @ Wp) @ W.T + b_v)
    np.testing.assert_allclose(layer.predict_next(frames, 1, "mean_field"), after, rtol=1e-5)
    # predicting the frame after t frames is predicting frame t + 1 of a longer video
    np.testing.assert_allclose(layer.predict_next(frames[:, :2], 3, "mean_field"),
                               layer.predict_frames(frames[:, :3], 3, "mean_field")[:, 2], rtol=1e-5, atol=1e-6)
    assert layer.generate(0, batch_size=2).shape == (2, 0, 5)
    assert layer.predict_next(frames[:, :0], 2).shape == (2, 5)


def test_keras_round_trip_config_masking_and_symbolic_shapes(tmp_path):
    inputs = keras.Input((None, 5))
    r, biases = RTRBM(4, return_biases=True, name="rbm")(inputs)
    model = keras.Model(inputs, [r, biases])
    assert model.output_shape == [(None, None, 4), (None, None, 4)]
    frames = np.random.default_rng(7).random((2, 6, 5)).astype(np.float32)
    path = tmp_path / "rtrbm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for got, want in zip(loaded(frames), model(frames)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    layer = model.get_layer("rbm")
    clone = RTRBM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config() and clone.return_biases
    trbm = TRBM.from_config({**layer.get_config(), "name": "trbm"})
    trbm.build((None, None, 5))
    assert [w.path.split("/")[-1] for w in trbm.weights] == [w.path.split("/")[-1] for w in layer.weights]
    # masking: padded steps carry the chain over, so a padded video ends where the short one does
    masked = keras.Sequential([keras.Input((None, 5)), keras.layers.Masking(0.0), RTRBM(4)])
    masked.layers[-1].set_weights(layer.get_weights())
    padded = np.concatenate([frames[:, :4], np.zeros((2, 2, 5), np.float32)], axis=1)
    np.testing.assert_allclose(masked(padded)[:, -1], masked(frames[:, :4])[:, -1], rtol=1e-6)


def test_bad_arguments_name_the_value_and_the_fix():
    with pytest.raises(ValueError, match="visible='poisson' is not a visible unit type; choose one of binary, gaussian"):
        RTRBM(4, visible="poisson")
    with pytest.raises(ValueError, match="`units` must be a positive integer, got 0"):
        TRBM(0)
    layer = tiny_layer(RTRBM, pixels=5)
    with pytest.raises(ValueError, match=r"frames have 6 visible units per step, the layer 5; pass frames of shape"):
        layer.hidden_biases(np.zeros((1, 2, 6), np.float32))
    with pytest.raises(ValueError, match="expectation='mode' is not a way to take the expectation"):
        layer.predict_frames(np.zeros((1, 2, 5), np.float32), expectation="mode")
    with pytest.raises(ValueError, match="`gibbs_steps` must be an integer >= 1, got 0"):
        layer.predict_next(np.zeros((1, 2, 5), np.float32), gibbs_steps=0)
    with pytest.raises(ValueError, match="Pass prefix frames or a batch_size"):
        layer.generate(3)
