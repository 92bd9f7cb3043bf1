"""Layers against numpy implementations of their papers' equations, and their gradients."""

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.layers import forward_mode_recurrence
from tests.layer_cases import CASES, numpy_sequence, randomize

RNG = np.random.default_rng(7)
X = RNG.standard_normal((3, 5, 2))


def build(name, dtype="float32", **kwargs):
    make, step = CASES[name]
    layer = make(return_sequences=True, dtype=dtype, **kwargs)
    layer(X.astype(dtype))
    randomize(layer)
    return layer, step


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("unroll", [False, True])
def test_sequence_matches_numpy_equation(name, unroll):
    layer, step = build(name, dtype="float64", unroll=unroll)
    expected = numpy_sequence(layer, step, X)
    np.testing.assert_allclose(layer(X).numpy(), expected, rtol=1e-10, atol=1e-12)
    with forward_mode_recurrence():
        np.testing.assert_allclose(layer(X).numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_cell_step_matches_numpy_equation(name):
    layer, step = build(name, dtype="float64")
    h = RNG.standard_normal((3, layer.cell.units))
    states = [h] + ([np.zeros((3, 1))] if name == "scoped_rnn" else [])
    output, new_states = layer.cell(X[:, 0], states)
    np.testing.assert_allclose(output.numpy(), step(layer.cell, X[:, 0], h, 0), rtol=1e-10)
    np.testing.assert_allclose(new_states[0].numpy(), output.numpy())


def _loss_fn(layer, weights_out):
    def loss():
        return tf.reduce_sum(layer(X) * weights_out)

    return loss


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_central_differences(name):
    layer, _ = build(name, dtype="float64")
    weights_out = RNG.standard_normal((3, 5, layer.cell.units))
    loss = _loss_fn(layer, weights_out)
    with tf.GradientTape() as tape:
        value = loss()
    grads = tape.gradient(value, layer.trainable_variables)
    eps = 1e-6
    for variable, grad in zip(layer.trainable_variables, grads):
        flat = variable.numpy().ravel()
        for index in RNG.choice(flat.size, size=min(4, flat.size), replace=False):
            original = flat[index]

            def loss_at(value):
                flat[index] = value
                variable.assign(flat.reshape(variable.shape))
                return loss().numpy()

            plus, minus = loss_at(original + eps), loss_at(original - eps)
            loss_at(original)
            numeric = (plus - minus) / (2 * eps)
            analytic = np.asarray(grad).ravel()[index]
            assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (
                variable.path,
                index,
                numeric,
                analytic,
            )


def _finite_difference_jvp(layer, tangents, eps=1e-6):
    originals = [v.numpy() for v in layer.trainable_variables]
    outputs = []
    for sign in (1, -1):
        for v, o, d in zip(layer.trainable_variables, originals, tangents):
            v.assign(o + sign * eps * d)
        outputs.append(layer(X).numpy())
    for v, o in zip(layer.trainable_variables, originals):
        v.assign(o)
    return (outputs[0] - outputs[1]) / (2 * eps)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("route", ["unroll", "forward_mode_recurrence"])
def test_forward_accumulator_jvp_matches_finite_differences(name, route):
    layer, _ = build(name, dtype="float64", unroll=route == "unroll")
    variables = [v.value for v in layer.trainable_variables]
    tangents = [RNG.standard_normal(v.shape) for v in variables]

    @tf.function
    def jvp():
        with forward_mode_recurrence():
            with tf.autodiff.ForwardAccumulator(variables, tangents) as acc:
                outputs = layer(X)
        return acc.jvp(outputs)

    np.testing.assert_allclose(
        jvp().numpy(), _finite_difference_jvp(layer, tangents), rtol=1e-6, atol=1e-8
    )


def test_keras_default_loop_is_not_forward_mode_safe_without_the_context():
    """The reason for forward_mode_recurrence: Keras's TensorArray loop fails under JVP."""
    layer, _ = build("mrnn", dtype="float64")
    variables = [v.value for v in layer.trainable_variables]

    @tf.function
    def jvp():
        with tf.autodiff.ForwardAccumulator(variables, [tf.ones_like(v) for v in variables]) as acc:
            outputs = layer(X)
        return acc.jvp(outputs)

    with pytest.raises((TypeError, AttributeError, ValueError)):
        jvp()


def test_res_rnn_zero_initialisation_is_identity_and_trainable():
    """longer-rnns §3: W_hh1, b1, W_hh2, b2 = 0 make h -> h the transition without input."""
    from rnnzoo.layers import ResRNN

    layer = ResRNN(4, return_sequences=True, dtype="float64")
    h0 = RNG.standard_normal((3, 4))
    zeros = np.zeros((3, 5, 2))
    outputs = layer(zeros, initial_state=[h0]).numpy()
    np.testing.assert_allclose(outputs, np.repeat(h0[:, None], 5, axis=1))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(X) * RNG.standard_normal((3, 5, 4)))
    grads = tape.gradient(loss, layer.trainable_variables)
    names = [v.name for v in layer.trainable_variables]
    assert np.abs(grads[names.index("combination_kernel")].numpy()).max() > 0


def test_mrnn_default_initialisation_gives_every_token_a_well_conditioned_transition():
    """Eq. 5.4 at initialisation: W_hh^(v) = W_hf diag(W_fv v) W_fh stays near orthogonal."""
    from rnnzoo.layers import MRNN

    layer = MRNN(64, factors=64, input_dim=10)
    layer(np.zeros((1, 3), dtype="int32"))
    cell = layer.cell
    for token in range(10):
        gains = cell.input_factor_kernel.numpy()[token]
        matrix = cell.hidden_factor_kernel.numpy() @ np.diag(gains) @ cell.factor_hidden_kernel.numpy()
        singular_values = np.linalg.svd(matrix, compute_uv=False)
        assert 0.5 < singular_values.min() and singular_values.max() < 1.5
