"""The layers behave like Keras's own RNN layers: semantics, saving, export, token ids."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from rnnzoo.layers import MRNN, forward_mode_recurrence
from tests.layer_cases import CASES, UNITS, numpy_sequence, randomize

RNG = np.random.default_rng(11)
X = RNG.standard_normal((3, 6, 2)).astype("float32")
VOCAB = 7
IDS = RNG.integers(0, VOCAB, (3, 6))


def make(name, **kwargs):
    layer = CASES[name][0](**kwargs)
    return layer


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_file_round_trip_reproduces_outputs(name, tmp_path):
    model = keras.Sequential(
        [keras.Input((6, 2)), make(name, return_sequences=True), keras.layers.Dense(1)]
    )
    randomize(model.layers[0])
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(model.predict(X, verbose=0), restored.predict(X, verbose=0))
    assert type(restored.layers[0]) is type(model.layers[0])
    assert restored.layers[0].get_config() == model.layers[0].get_config()


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("loop", ["tensor_array", "unroll", "forward_mode"])
def test_masked_steps_hold_the_state(name, loop):
    """Trailing padding masked out: last output equals the unpadded sequence's; held outputs repeat."""
    layer = make(name, return_sequences=True, return_state=True, unroll=loop == "unroll")
    layer(X)
    randomize(layer)
    lengths = np.array([6, 4, 2])
    mask = np.arange(6)[None] < lengths[:, None]
    padded = np.where(mask[..., None], X, 0.0).astype("float32")
    if loop == "forward_mode":
        with forward_mode_recurrence():
            outputs, h, *_ = layer(padded, mask=mask)
    else:
        outputs, h, *_ = layer(padded, mask=mask)
    for i, n in enumerate(lengths):
        alone, h_alone, *_ = layer(X[i : i + 1, :n])
        np.testing.assert_allclose(h[i], h_alone[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outputs[i, :n], alone[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(outputs[i, n:], np.repeat(alone[:, -1], 6 - n, 0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_masking_layer_propagates_mask_and_zero_output_option(name):
    model = keras.Sequential(
        [
            keras.Input((6, 2)),
            keras.layers.Masking(0.0),
            make(name, return_sequences=True, zero_output_for_mask=True),
        ]
    )
    randomize(model.layers[-1])
    padded = X.copy()
    padded[0, 3:] = 0.0
    outputs = model(padded).numpy()
    np.testing.assert_array_equal(outputs[0, 3:], 0.0)
    assert np.abs(outputs[0, :3]).max() > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_go_backwards_initial_state_and_return_state(name):
    layer = make(name, return_sequences=True, return_state=True, go_backwards=True, dtype="float64")
    x = X.astype("float64")
    layer(x)
    randomize(layer)
    step = CASES[name][1]
    h0 = RNG.standard_normal((3, UNITS))
    initial = [h0] + ([np.zeros((3, 1))] if name == "scoped_rnn" else [])
    outputs, h, *_ = layer(x, initial_state=initial)
    expected = numpy_sequence(layer, step, x[:, ::-1], h0=h0)
    np.testing.assert_allclose(outputs, expected, rtol=1e-10)
    np.testing.assert_allclose(h, expected[:, -1], rtol=1e-10)


@pytest.mark.parametrize("name", sorted(CASES))
def test_stateful_layer_continues_across_calls(name):
    stateful = make(name, return_sequences=True, stateful=True)
    plain = make(name, return_sequences=True)
    stateful.build((3, 6, 2))
    plain.build((3, 6, 2))
    randomize(stateful)
    plain.set_weights(stateful.get_weights()[: len(plain.get_weights())])
    first, second = stateful(X[:, :3]), stateful(X[:, 3:])
    np.testing.assert_allclose(np.concatenate([first, second], 1), plain(X), rtol=1e-5, atol=1e-6)
    stateful.reset_state()
    np.testing.assert_allclose(stateful(X[:, :3]), first, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_public_cell_inside_keras_rnn_equals_the_layer(name):
    layer = make(name, return_sequences=True)
    layer(X)
    randomize(layer)
    wrapped = keras.layers.RNN(layer.cell, return_sequences=True)
    np.testing.assert_allclose(wrapped(X), layer(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_token_ids_equal_one_hot_inputs(name):
    layer = make(name, input_dim=VOCAB, return_sequences=True)
    layer(IDS)
    randomize(layer)
    one_hot = np.eye(VOCAB, dtype="float32")[IDS]
    np.testing.assert_allclose(layer(IDS), layer(one_hot), rtol=1e-6, atol=1e-6)
    model = keras.Sequential([keras.Input((None,), dtype="int32"), layer])
    np.testing.assert_allclose(model(IDS), layer(one_hot), rtol=1e-6, atol=1e-6)


def test_token_path_gathers_rows_instead_of_multiplying_one_hots():
    layer = MRNN(UNITS, factors=3, input_dim=VOCAB, return_sequences=True)
    layer(IDS)
    graph = tf.function(lambda ids: layer(ids)).get_concrete_function(
        tf.TensorSpec((None, None), tf.int32)
    ).graph
    op_types = {op.type for op in graph.get_operations()}
    assert "GatherV2" in op_types and "OneHot" not in op_types


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_fit_and_export_serve_the_same_numbers(name, tmp_path):
    model = keras.Sequential([keras.Input((6, 2)), make(name), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    history = model.fit(X, np.ones((3, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    model.export(str(tmp_path / "export"))
    served = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(served.serve(X), model.predict(X, verbose=0), rtol=1e-5, atol=1e-6)


# Input paths compiled with XLA: (input kind, loop, layer options, masked). Each
# layer meets both input kinds and every loop; the loops get lengths known only
# at run time, except `unroll`, which needs a static one.
XLA_PATHS = {
    "ids_masked_backwards_last": ("ids", "tensor_array", {"go_backwards": True, "return_state": True}, True),
    "float_unroll_masked": ("float", "unroll", {"return_sequences": True, "return_state": True}, True),
    "float_forward_mode_masked": ("float", "forward_mode", {"return_sequences": True}, True),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("path", sorted(XLA_PATHS))
def test_xla_compiled_outputs_and_derivatives_equal_the_uncompiled_ones(name, path):
    """Keras compiles train steps with XLA on a GPU (`jit_compile="auto"`).

    Every path compiles and gives the uncompiled outputs and derivatives:
    gradients, or for the forward-mode loop the JVPs it exists for.
    """
    kind, loop, options, masked = XLA_PATHS[path]
    inputs = (IDS.astype("int32") if kind == "ids" else X)[:, :4]
    layer = make(name, input_dim=VOCAB if kind == "ids" else None, unroll=loop == "unroll", **options)
    layer(inputs)
    randomize(layer)
    mask = np.arange(4)[None] < np.array([4, 3, 1])[:, None] if masked else None
    spec = tf.TensorSpec((None, 4 if loop == "unroll" else None) + inputs.shape[2:], inputs.dtype)
    variables = [v.value for v in layer.trainable_variables]
    tangents = [RNG.standard_normal(v.shape).astype("float32") for v in variables]

    def outputs_and_derivatives(x):
        if loop == "forward_mode":
            with forward_mode_recurrence():
                with tf.autodiff.ForwardAccumulator(variables, tangents) as accumulator:
                    outputs = layer(x, mask=mask)
            return outputs, accumulator.jvp(outputs)
        with tf.GradientTape() as tape:
            outputs = layer(x, mask=mask)
            loss = sum(tf.reduce_sum(tf.sin(o)) for o in tf.nest.flatten(outputs))
        return outputs, [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

    expected = outputs_and_derivatives(tf.constant(inputs))
    compiled = tf.function(outputs_and_derivatives, input_signature=[spec], jit_compile=True)(inputs)
    for got, want in zip(tf.nest.flatten(compiled), tf.nest.flatten(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
