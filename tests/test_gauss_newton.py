"""Gauss-Newton products against explicit Jacobians (float64, tiny models)."""

import numpy as np
import pytest
import tensorflow as tf

import keras

from rnnzoo.layers import MRNN, ResRNN, ScopedRNN, TensorRNN
from rnnzoo.optimizers import gauss_newton_operator, gauss_newton_product

BATCH, TIME, FEATURES, OUTPUTS = 2, 3, 2, 2


@pytest.fixture(autouse=True)
def _float64(float64):
    """Every test here runs in float64 (the shared `float64` fixture of conftest.py)."""


def _model(layer, outputs=OUTPUTS, time=TIME):
    inputs = keras.Input((time, FEATURES))
    return keras.Model(inputs, keras.layers.Dense(outputs)(layer(inputs)))


def _inputs(seed=0):
    return np.random.default_rng(seed).normal(size=(BATCH, TIME, FEATURES))


def _flat(tensors):
    return np.concatenate([np.reshape(t, [-1]) for t in tensors])


def _random_vectors(model, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=v.shape) for v in model.trainable_variables]


def _jacobian(model, x):
    """d outputs / d theta as a (outputs, parameters) matrix, by reverse mode per output."""
    variables = model.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        y = tf.reshape(model(x), [-1])
    rows = tape.jacobian(y, [v.value for v in variables], experimental_use_pfor=False)
    return np.concatenate([np.reshape(r, (y.shape[0], -1)) for r in rows], axis=1), y.numpy()


def _penalty_hessian(model, x):
    """Exact Hessian of the model's own losses (layer penalties), or zeros."""
    primals = [v.value for v in model.trainable_variables]
    n = sum(int(np.prod(p.shape)) for p in primals)
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            model(x)
            penalty = tf.add_n(model.losses) if model.losses else tf.constant(0.0, tf.float64)
        gradient = inner.gradient(penalty, primals, unconnected_gradients="zero")
        flat = tf.concat([tf.reshape(g, [-1]) for g in gradient], 0)
    rows = outer.jacobian(flat, primals, unconnected_gradients="zero", experimental_use_pfor=False)
    return np.concatenate([np.reshape(r, (n, -1)) for r in rows], axis=1)


def _output_hessian(loss_name, logits):
    """(L o g)'' of the Keras mean-reduced loss w.r.t. the flattened outputs, by hand."""
    logits = logits.reshape(-1, OUTPUTS)
    positions = logits.shape[0]
    if loss_name == "mse":
        return 2.0 * np.eye(logits.size) / logits.size
    if loss_name == "bce":
        s = 1.0 / (1.0 + np.exp(-logits.reshape(-1)))
        return np.diag(s * (1 - s)) / logits.size
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    blocks = [np.diag(row) - np.outer(row, row) for row in p]
    hessian = np.zeros((logits.size, logits.size))
    for i, block in enumerate(blocks):
        hessian[i * OUTPUTS : (i + 1) * OUTPUTS, i * OUTPUTS : (i + 1) * OUTPUTS] = block
    return hessian / positions


LOSSES = {  # built in the test, after the float64 fixture set floatx
    "mse": lambda: "mse",
    "bce": lambda: keras.losses.BinaryCrossentropy(from_logits=True),
    "scce": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
}

LAYERS = {
    "SimpleRNN": lambda: keras.layers.SimpleRNN(3, return_sequences=True),
    "SimpleRNN_last": lambda: keras.layers.SimpleRNN(3),
    "GRU": lambda: keras.layers.GRU(2, return_sequences=True),
    "LSTM": lambda: keras.layers.LSTM(2, return_sequences=True),
    "MRNN": lambda: MRNN(3, factors=2, return_sequences=True),
    "TensorRNN_cp": lambda: TensorRNN(3, rank=2, return_sequences=True),
    "TensorRNN_full": lambda: TensorRNN(2, return_sequences=True),
    "ResRNN": lambda: ResRNN(3, return_sequences=True),
    "ScopedRNN": lambda: ScopedRNN(
        2, num_scopes=2, scope_length=2, penalty=0.5, return_sequences=True
    ),
}


def _explicit_product(model, loss_name, x, vector):
    jacobian, logits = _jacobian(model, x)
    gauss_newton = jacobian.T @ _output_hessian(loss_name, logits) @ jacobian
    return (gauss_newton + _penalty_hessian(model, x)) @ _flat(vector)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_gauss_newton_product_equals_explicit_jacobians_for_each_layer(layer):
    model = _model(LAYERS[layer]())
    x = _inputs()
    vector = _random_vectors(model, seed=1)
    got = gauss_newton_product(model, "mse", x, vector)
    np.testing.assert_allclose(_flat(got), _explicit_product(model, "mse", x, vector), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("loss_name", ["bce", "scce"])
def test_gauss_newton_product_equals_explicit_jacobians_for_each_loss(loss_name):
    model = _model(keras.layers.SimpleRNN(3, return_sequences=True))
    x = _inputs(seed=2)
    vector = _random_vectors(model, seed=3)
    got = gauss_newton_product(model, LOSSES[loss_name](), x, vector)
    expected = _explicit_product(model, loss_name, x, vector)
    np.testing.assert_allclose(_flat(got), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("structural_damping", [0.0, 0.7])
def test_gauss_newton_matrix_is_symmetric_and_psd(loss_name, structural_damping):
    model = _model(MRNN(3, factors=2, return_sequences=True))
    x = _inputs(seed=4)
    products = {}
    for seed in range(3):
        v = _random_vectors(model, seed)
        products[seed] = (
            _flat(v),
            _flat(gauss_newton_product(
                model, LOSSES[loss_name](), x, v, structural_damping=structural_damping
            )),
        )
    (v, gv), (w, gw) = products[0], products[1]
    np.testing.assert_allclose(w @ gv, v @ gw, rtol=1e-10)
    for vector, product in products.values():
        assert vector @ product > 0


def _hand_written_simple_rnn(layer, dense, x):
    """SimpleRNN + Dense by hand: returns (outputs, pre-activations u, hidden h)."""

    def run(kernel, recurrent, bias, out_kernel, out_bias):
        h = tf.zeros((x.shape[0], recurrent.shape[0]), tf.float64)
        us, hs = [], []
        for t in range(x.shape[1]):
            u = x[:, t] @ kernel + h @ recurrent + bias
            h = tf.tanh(u)
            us.append(u)
            hs.append(h)
        return h @ out_kernel + out_bias, tf.stack(us, 1), tf.stack(hs, 1)

    return run


def test_structural_damping_term_equals_its_explicit_form():
    """G_S = J_u^T diag(1 - h^2) J_u / batch (S summed over steps), Alg. 6 line 13 (tanh-matching D)."""
    layer = keras.layers.SimpleRNN(3)  # returns the last state only: S still sees all steps
    model = _model(layer, outputs=1)
    x = _inputs(seed=5)
    weights = [v.value for v in model.trainable_variables]
    run = _hand_written_simple_rnn(layer, None, tf.constant(x))
    with tf.GradientTape(persistent=True) as tape:
        outputs, u, h = run(*weights)
        flat_u = tf.reshape(u, [-1])
    np.testing.assert_allclose(outputs.numpy(), model(x).numpy(), rtol=1e-12)
    rows = tape.jacobian(flat_u, weights, unconnected_gradients="zero", experimental_use_pfor=False)
    jacobian_u = np.concatenate([np.reshape(r, (flat_u.shape[0], -1)) for r in rows], axis=1)
    damping = jacobian_u.T @ np.diag(1 - h.numpy().reshape(-1) ** 2) @ jacobian_u / BATCH

    vector = _random_vectors(model, seed=6)
    plain = _flat(gauss_newton_product(model, "mse", x, vector))
    damped = _flat(gauss_newton_product(model, "mse", x, vector, structural_damping=0.25))
    np.testing.assert_allclose(damped - plain, 0.25 * damping @ _flat(vector), rtol=1e-8)
    assert np.abs(damped - plain).max() > 1e-3 * np.abs(plain).max()


def test_gauss_newton_product_works_inside_tf_function_for_non_unrolled_rnnzoo_layer():
    model = _model(MRNN(3, factors=2, return_sequences=True), time=None)
    x = _inputs(seed=7)
    vector = _random_vectors(model, seed=8)
    product = tf.function(
        lambda x, v: gauss_newton_product(model, "mse", x, v),
        input_signature=[
            tf.TensorSpec((None, None, FEATURES), tf.float64),
            [tf.TensorSpec(v.shape, tf.float64) for v in vector],
        ],
    )
    np.testing.assert_allclose(
        _flat(product(x, vector)), _explicit_product(model, "mse", x, vector), rtol=1e-9
    )


def test_unknown_length_path_equals_unrolled_path_with_damping_and_penalty():
    """Two passes (state-carrying loop) == one unrolled pass, incl. G_S and a layer penalty."""
    layer = ScopedRNN(3, num_scopes=2, scope_length=2, penalty=0.5, activation="tanh")
    model = _model(layer, time=None)
    x = _inputs(seed=9)
    vector = _random_vectors(model, seed=10)
    dynamic = tf.function(
        lambda x, v: gauss_newton_product(model, "mse", x, v, structural_damping=0.3),
        input_signature=[
            tf.TensorSpec((None, None, FEATURES), tf.float64),
            [tf.TensorSpec(v.shape, tf.float64) for v in vector],
        ],
    )
    unrolled = gauss_newton_product(model, "mse", x, vector, structural_damping=0.3)
    np.testing.assert_allclose(_flat(dynamic(x, vector)), _flat(unrolled), rtol=1e-10)


def test_keras_rnn_without_static_length_gets_a_clear_error():
    model = _model(keras.layers.SimpleRNN(3, return_sequences=True), time=None)
    vector = _random_vectors(model, seed=0)
    product = tf.function(lambda x: gauss_newton_product(model, "mse", x, vector))
    spec = tf.TensorSpec((None, None, FEATURES), tf.float64)
    with pytest.raises(ValueError, match="simple_rnn.*no static number of time steps"):
        product.get_concrete_function(spec)
    layer = model.layers[1]  # the tracing context left the layer as it was
    assert "inner_loop" not in vars(layer) and not layer.unroll and layer.return_sequences


def test_cudnn_layer_gets_a_clear_error():
    model = _model(keras.layers.LSTM(2, use_cudnn=True, return_sequences=True))
    with pytest.raises(ValueError, match="use_cudnn=True.*use_cudnn=False"):
        gauss_newton_product(model, "mse", _inputs(), _random_vectors(model, 0))


@pytest.mark.parametrize(
    "loss, match",
    [
        ("mean_sqared_error", "Unknown loss name"),
        ("binary_crossentropy", "from_logits=True"),
        (keras.losses.SparseCategoricalCrossentropy(), "not a Keras softmax.*from_logits=True"),
        ("mae", "no matching-loss"),
    ],
)
def test_bad_losses_get_clear_errors(loss, match):
    model = _model(keras.layers.SimpleRNN(2, return_sequences=True))
    with pytest.raises(ValueError, match=match):
        gauss_newton_product(model, loss, _inputs(), _random_vectors(model, 0))


def test_bad_vectors_and_weightless_models_get_clear_errors():
    model = _model(keras.layers.SimpleRNN(2, return_sequences=True))
    vectors = _random_vectors(model, 0)
    with pytest.raises(ValueError, match="vectors for"):
        gauss_newton_product(model, "mse", _inputs(), vectors[:-1])
    with pytest.raises(ValueError, match="does not match variable"):
        gauss_newton_product(model, "mse", _inputs(), [np.zeros(5)] + vectors[1:])
    frozen = _model(keras.layers.SimpleRNN(2, return_sequences=True))
    frozen.trainable = False
    with pytest.raises(ValueError, match="no trainable weights"):
        gauss_newton_product(frozen, "mse", _inputs(), [])


PADDED_LAYERS = {
    "SimpleRNN": lambda: keras.layers.SimpleRNN(3),
    "LSTM": lambda: keras.layers.LSTM(2),
    "ResRNN": lambda: ResRNN(3),
    "MRNN": lambda: MRNN(3, factors=2),
}


@pytest.mark.parametrize("layer", sorted(PADDED_LAYERS))
def test_masked_pre_padding_leaves_outputs_and_products_unchanged(layer):
    """A pre-padded batch behind `Masking` (rnnzoo.data's padded problems) is the unpadded batch."""
    x = _inputs(seed=4)
    padded = np.concatenate([np.full((BATCH, 2, FEATURES), -1.0), x], axis=1)
    recurrent, dense = PADDED_LAYERS[layer](), keras.layers.Dense(OUTPUTS)
    padded_inputs = keras.Input((TIME + 2, FEATURES))
    masked = keras.Model(padded_inputs, dense(recurrent(keras.layers.Masking(-1.0)(padded_inputs))))
    plain_inputs = keras.Input((TIME, FEATURES))
    plain = keras.Model(plain_inputs, dense(recurrent(plain_inputs)))
    np.testing.assert_allclose(masked(padded), plain(x), rtol=1e-12)
    vector = _random_vectors(plain, seed=5)
    for damping in (0.0, 0.5):
        got = gauss_newton_product(masked, "mse", padded, vector, structural_damping=damping)
        want = gauss_newton_product(plain, "mse", x, vector, structural_damping=damping)
        np.testing.assert_allclose(_flat(got), _flat(want), rtol=1e-9, atol=1e-12)


@keras.saving.register_keras_serializable(package="rnnzoo_tests")
class CountingIdentity(keras.layers.Layer):
    """Passes its input through and counts the times it runs."""

    def build(self, input_shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", dtype="int64",
                                     trainable=False, name="calls")

    def call(self, x):
        self.calls.assign_add(1)
        return tf.identity(x)


@pytest.mark.parametrize("structural_damping", [0.0, 0.4])
def test_gauss_newton_operator_runs_the_forward_pass_once_for_all_products(structural_damping):
    """Thesis §4.2.2: forward states computed once; each product reuses them."""
    inputs = keras.Input((TIME, FEATURES))
    counter = CountingIdentity()
    hidden = ScopedRNN(3, num_scopes=2, scope_length=2, penalty=0.5, activation="tanh",
                       return_sequences=True)(counter(inputs))
    model = keras.Model(inputs, keras.layers.Dense(OUTPUTS)(hidden))
    x = _inputs(seed=11)
    vectors = [_random_vectors(model, seed) for seed in range(3)]

    @tf.function
    def products(x, vectors):
        product = gauss_newton_operator(model, "mse", x, structural_damping)
        return [product(v) for v in vectors]

    got = products(tf.constant(x), vectors)
    assert int(counter.calls.numpy()) == 1
    for vector, product in zip(vectors, got):
        want = gauss_newton_product(model, "mse", x, vector, structural_damping=structural_damping)
        np.testing.assert_allclose(_flat(product), _flat(want), rtol=1e-10)
    if structural_damping == 0:
        np.testing.assert_allclose(
            _flat(got[0]), _explicit_product(model, "mse", x, vectors[0]), rtol=1e-9
        )


@pytest.mark.parametrize("loss_name", ["mse", "bce"])
def test_products_of_a_float64_model_are_computed_in_float64_under_float32_floatx(loss_name):
    """The output Hessian runs in the variables' dtype, not in keras.config.floatx()."""
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    inputs = keras.Input((TIME, FEATURES), dtype="float64")
    hidden = keras.layers.SimpleRNN(3, return_sequences=True, dtype="float64")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(OUTPUTS, dtype="float64")(hidden))
    assert model.trainable_variables[0].dtype == "float64"
    x = _inputs(seed=12)
    vector = _random_vectors(model, seed=13)
    got = gauss_newton_product(model, LOSSES[loss_name](), x, vector)
    assert all(g.dtype == tf.float64 for g in got)
    np.testing.assert_allclose(
        _flat(got), _explicit_product(model, loss_name, x, vector), rtol=1e-11, atol=1e-14
    )


STRUCTURAL_CELLS = {  # layer, and `e` of h = e(x), x the hidden units' input (eq. 4.7)
    "SimpleRNN_tanh": (lambda: keras.layers.SimpleRNN(3, return_sequences=True), "tanh"),
    "SimpleRNN_sigmoid": (
        lambda: keras.layers.SimpleRNN(3, activation="sigmoid", return_sequences=True), "sigmoid"
    ),
    "SimpleRNN_relu": (
        lambda: keras.layers.SimpleRNN(3, activation="relu", return_sequences=True), "identity"
    ),
    "LSTM": (lambda: keras.layers.LSTM(2, return_sequences=True), "identity"),
    "GRU": (lambda: keras.layers.GRU(2, return_sequences=True), "identity"),
    "MRNN": (lambda: MRNN(3, factors=2, return_sequences=True), "tanh"),
    "TensorRNN_cp": (lambda: TensorRNN(3, rank=2, return_sequences=True), "tanh"),
    "TensorRNN_full": (lambda: TensorRNN(2, return_sequences=True), "tanh"),
    # h_t = h_{t-1} + W r_t + b: linear in its input whatever r_t's activation.
    "ResRNN_relu": (
        lambda: ResRNN(3, recurrent_initializer="orthogonal", return_sequences=True), "identity"
    ),
    "ResRNN_tanh": (
        lambda: ResRNN(3, activation="tanh", recurrent_initializer="orthogonal",
                       return_sequences=True),
        "identity",
    ),
    "ScopedRNN_relu": (
        lambda: ScopedRNN(3, num_scopes=2, scope_length=2, penalty=0.0, return_sequences=True),
        "identity",
    ),
    "ScopedRNN_tanh": (
        lambda: ScopedRNN(3, num_scopes=2, scope_length=2, penalty=0.0, activation="tanh",
                          return_sequences=True),
        "tanh",
    ),
}


@pytest.mark.parametrize("cell", sorted(STRUCTURAL_CELLS))
def test_structural_damping_term_equals_eq_4_7_for_every_cell(cell):
    """G_S = J_x^T (D o e)'' J_x / batch with D matching e (thesis §4.2.3).

    With h = e(x): J_x = diag(1 / e'(x)) J_h, so G_S = J_h^T diag(1 / e'(x)) J_h
    (tanh: e' = 1 - h^2, logistic: e' = h (1 - h)); states that are not an
    elementwise function of one input use the squared distance: J_h^T J_h.
    """
    layer_fn, activation = STRUCTURAL_CELLS[cell]
    inputs = keras.Input((TIME, FEATURES))
    layer = layer_fn()
    hidden = layer(inputs)
    model = keras.Model(inputs, keras.layers.Dense(OUTPUTS)(hidden))
    states_model = keras.Model(inputs, hidden)
    x = _inputs(seed=14)
    weights = [v.value for v in model.trainable_variables]
    with tf.GradientTape(persistent=True) as tape:
        states = tf.reshape(states_model(x), [-1])
    rows = tape.jacobian(states, weights, unconnected_gradients="zero",
                         experimental_use_pfor=False)
    jacobian = np.concatenate([np.reshape(r, (states.shape[0], -1)) for r in rows], axis=1)
    h = states.numpy()
    derivative = {"tanh": 1 - h**2, "sigmoid": h * (1 - h), "identity": np.ones_like(h)}
    explicit = jacobian.T @ np.diag(1 / derivative[activation]) @ jacobian / BATCH

    vector = _random_vectors(model, seed=15)
    plain = _flat(gauss_newton_product(model, "mse", x, vector))
    damped = _flat(gauss_newton_product(model, "mse", x, vector, structural_damping=0.25))
    np.testing.assert_allclose(damped - plain, 0.25 * explicit @ _flat(vector),
                               rtol=1e-8, atol=1e-12)
    assert np.abs(damped - plain).max() > 1e-3 * np.abs(plain).max()


PROBABILITY_OUTPUTS = {  # final activation, loss on probabilities, the loss on the logits
    "sigmoid": ("sigmoid", "binary_crossentropy", "bce"),
    "softmax": ("softmax", "sparse_categorical_crossentropy", "scce"),
}


@pytest.mark.parametrize("output", sorted(PROBABILITY_OUTPUTS))
def test_final_sigmoid_or_softmax_with_a_cross_entropy_of_probabilities_is_matched(output):
    """As Keras does, the logits behind the final activation are the linear outputs (§4.2.2)."""
    activation, loss, logits_loss = PROBABILITY_OUTPUTS[output]
    inputs = keras.Input((TIME, FEATURES))
    hidden = keras.layers.SimpleRNN(3, return_sequences=True)(inputs)
    probabilities = keras.Model(inputs, keras.layers.Dense(OUTPUTS, activation=activation)(hidden))
    logits = _model(keras.layers.SimpleRNN(3, return_sequences=True))
    logits.set_weights(probabilities.get_weights())
    x = _inputs(seed=16)
    vector = _random_vectors(probabilities, seed=17)
    expected = _explicit_product(logits, logits_loss, x, vector)
    eager = gauss_newton_product(probabilities, loss, x, vector)
    traced = tf.function(lambda x: gauss_newton_product(probabilities, loss, x, vector))(x)
    for got in (eager, traced):
        np.testing.assert_allclose(_flat(got), expected, rtol=1e-9, atol=1e-12)


def test_probabilities_without_recoverable_logits_are_refused_naming_the_fix():
    inputs = keras.Input((TIME, FEATURES))
    hidden = keras.layers.SimpleRNN(3, return_sequences=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="hard_sigmoid")(hidden))
    with pytest.raises(ValueError, match="activation='sigmoid'.*from_logits=True"):
        gauss_newton_product(model, "binary_crossentropy", _inputs(), _random_vectors(model, 0))
