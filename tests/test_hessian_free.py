"""Hessian-free optimizer (thesis Alg. 5, §4.2): steps, damping, rejection, tracing, errors."""

import numpy as np
import pytest
import tensorflow as tf

import keras
import rnnzoo

from rnnzoo.layers import MRNN
from rnnzoo.optimizers import HessianFree
from rnnzoo.optimizers.conjugate_gradient import backtracking_steps, conjugate_gradient


def _least_squares(seed=0, n=64, d=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=(d, 1)) + 0.3 + 0.1 * rng.normal(size=(n, 1))
    return x, y


def _linear_model(d=3):
    inputs = keras.Input((d,))
    return rnnzoo.Model(inputs, keras.layers.Dense(1)(inputs))


def _weights(model):
    return np.concatenate([np.reshape(w, [-1]) for w in model.get_weights()])


def test_conjugate_gradient_minimises_the_quadratic_and_saves_iterates():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(12, 12))
    a, b = m @ m.T + 0.5 * np.eye(12), rng.normal(size=12)
    run = tf.function(lambda x0: conjugate_gradient(lambda v: tf.linalg.matvec(a, v), b, x0, 40))
    iterates, values, saved, steps = run(tf.zeros(12, tf.float64))
    iterates, values = iterates[:saved], values[:saved]
    np.testing.assert_allclose(iterates[-1], np.linalg.solve(a, b), rtol=1e-6, atol=1e-8)
    for iterate, value in zip(iterates.numpy(), values.numpy()):
        assert value == pytest.approx(0.5 * iterate @ a @ iterate - b @ iterate, rel=1e-10)
    assert np.all(np.diff(values.numpy()) <= 1e-12)  # CG decreases phi monotonically
    assert len(iterates) == len([s for s in backtracking_steps(40) if s < int(steps)]) + 1
    # Martens's relative-progress rule stops long before the cap once phi stalls.
    assert 11 <= int(steps) < 40


def test_hf_solves_linear_least_squares_in_one_step(float64):
    x, y = _least_squares()
    model = _linear_model()
    model.compile(
        optimizer=HessianFree(damping=1e-10, curvature_fraction=1.0, max_cg_iterations=20),
        loss="mse",
    )
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    solution = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0][:, 0]
    np.testing.assert_allclose(_weights(model), solution, rtol=1e-7, atol=1e-9)
    assert history.history["step_size"] == [1.0]
    assert history.history["rho"][0] == pytest.approx(1.0, rel=1e-6)  # quadratic: exact model
    assert history.history["damping"][0] == pytest.approx(1e-10 * 2 / 3)


def test_hf_takes_curvature_from_the_first_fraction_of_the_batch(float64):
    x, y = _least_squares(seed=3, n=40)
    model = _linear_model()
    start = _weights(model)
    model.compile(
        optimizer=HessianFree(damping=1e-10, curvature_fraction=0.5, max_cg_iterations=20),
        loss="mse",
    )
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    design = np.c_[x, np.ones(len(x))]
    residual = design @ start - y[:, 0]
    gradient = 2 * design.T @ residual / len(x)
    curvature = 2 * design[:20].T @ design[:20] / 20  # the first half only
    assert history.history["step_size"] == [1.0]
    np.testing.assert_allclose(
        _weights(model), start - np.linalg.solve(curvature, gradient), rtol=1e-7
    )


def _sequence_regression(seed=0, n=64, time=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, time, 2)).astype("float32")
    y = np.tanh(x[:, 0, :1] - 0.5 * x[:, 2, 1:] + 0.25 * x[:, -1, :1]).astype("float32")
    return x, y


@pytest.mark.parametrize(
    "layer",
    [lambda: keras.layers.SimpleRNN(8), lambda: MRNN(8, factors=8)],
    ids=["SimpleRNN", "MRNN"],
)
def test_hf_with_structural_damping_lowers_the_loss_of_a_recurrent_regression(layer):
    x, y = _sequence_regression()
    inputs = keras.Input((6, 2))
    model = rnnzoo.Model(inputs, keras.layers.Dense(1)(layer()(inputs)))
    model.compile(
        optimizer=HessianFree(damping=1.0, structural_damping=0.3, max_cg_iterations=30,
                              curvature_fraction=0.5),
        loss="mse",
    )
    initial = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, batch_size=64, epochs=8, verbose=0)
    final = model.evaluate(x, y, verbose=0)
    assert final < 0.5 * initial
    assert np.all(np.isfinite(_weights(model)))
    assert all(1 <= steps <= 30 for steps in history.history["cg_steps"])


@keras.saving.register_keras_serializable(package="rnnzoo_tests")
class GuardedScale(keras.layers.Layer):
    """`y = w x`, NaN once `w > 1.5` (the guard's log turns NaN)."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(), initializer="zeros", name="w")

    def call(self, x):
        return self.w * x + 0.0 * keras.ops.log(1.5 - self.w)


def test_hf_rejects_a_nan_step_raises_damping_and_keeps_weights_finite(float64):
    x = np.linspace(-1, 1, 32)[:, None]
    inputs = keras.Input((1,))
    model = rnnzoo.Model(inputs, GuardedScale()(inputs))
    model.compile(
        optimizer=HessianFree(damping=1e-6, curvature_fraction=1.0, max_cg_iterations=5),
        loss="mse",
    )
    # The Newton step goes to w = 3, where the loss is NaN: backtracking finds no
    # finite iterate, rho is not finite, and the line search shrinks to w < 1.5.
    history = model.fit(x, 3 * x, batch_size=32, epochs=1, verbose=0)
    w = float(model.get_weights()[0])
    assert 0 < w < 1.5
    second_moment = np.mean(x**2)
    newton = 6 * second_moment / (2 * second_moment + 1e-6)  # -g / (G + lambda)
    assert w == pytest.approx(newton * 0.8**4, rel=1e-9)
    assert history.history["damping"][0] == pytest.approx(1.5e-6)
    assert not np.isfinite(history.history["rho"][0])


def test_hf_keeps_weights_when_the_loss_is_already_nan(float64):
    x = np.linspace(-1, 1, 32)[:, None]
    inputs = keras.Input((1,))
    model = rnnzoo.Model(inputs, GuardedScale()(inputs))
    model.set_weights([np.array(2.0)])
    model.compile(optimizer=HessianFree(damping=0.1, max_cg_iterations=5), loss="mse")
    history = model.fit(x, 3 * x, batch_size=32, epochs=2, verbose=0)
    assert float(model.get_weights()[0]) == 2.0
    assert history.history["step_size"] == [0.0, 0.0]
    assert history.history["damping"][-1] == pytest.approx(0.1 * 1.5**2)


@keras.saving.register_keras_serializable(package="rnnzoo_tests")
class GuardedLinear(keras.layers.Layer):
    """`y = x . w`, NaN once `||w||^2 > 20`."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="w")

    def call(self, x):
        return tf.linalg.matvec(x, self.w)[:, None] + 0.0 * keras.ops.log(
            20.0 - keras.ops.sum(self.w**2)
        )


def _numpy_cg_iterates(a, b, steps):
    """Plain CG from 0 on `a x = b`: the iterates after steps 1..steps."""
    x, r = np.zeros_like(b), b.copy()
    p, iterates = r.copy(), []
    for _ in range(steps):
        alpha = r @ r / (p @ a @ p)
        x, r_new = x + alpha * p, r - alpha * a @ p
        p, r = r_new + (r_new @ r_new) / (r @ r) * p, r_new
        iterates.append(x)
    return iterates


def test_hf_backtracking_walks_past_non_finite_iterates(float64):
    """The last CG iterate is beyond the NaN boundary: the walk goes on to the finite ones."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)) * np.array([1, 0.5, 0.2, 0.05])
    y = x @ np.array([[1.0], [2.0], [6.0], [20.0]])
    inputs = keras.Input((4,))
    model = rnnzoo.Model(inputs, GuardedLinear()(inputs))
    model.compile(
        optimizer=HessianFree(damping=1e-8, curvature_fraction=1.0, max_cg_iterations=4),
        loss="mse",
    )
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0)

    # Saved iterates: steps 1, 2, 3, 4 (ceil(1.3^j)); walk back from step 4 as HF does.
    curvature = 2 * x.T @ x / len(x) + 1e-8 * np.eye(4)
    iterates = _numpy_cg_iterates(curvature, 2 * x.T @ y[:, 0] / len(x), 4)
    losses = [np.mean((x @ w - y[:, 0]) ** 2) if w @ w < 20 else np.inf for w in iterates]
    assert not np.isfinite(losses[-1]) and np.isfinite(losses[0])
    best = None
    for j in reversed(range(4)):
        if not np.isfinite(losses[j]):
            continue
        if best is not None and losses[j] >= losses[best]:
            break
        best = j
    assert best > 0  # more than a steepest-descent step
    np.testing.assert_allclose(model.get_weights()[0], iterates[best], rtol=1e-6)
    assert history.history["step_size"] == [1.0]
    assert np.isfinite(history.history["rho"][0])


@keras.saving.register_keras_serializable(package="rnnzoo_tests")
class CountingGuardedScale(GuardedScale):
    """`GuardedScale` that counts its calls on batches of `full` examples."""

    def __init__(self, full, **kwargs):
        super().__init__(**kwargs)
        self.full = full

    def build(self, input_shape):
        super().build(input_shape)
        self.calls = self.add_weight(shape=(), initializer="zeros", dtype="int64",
                                     trainable=False, name="calls")

    def call(self, x):
        self.calls.assign_add(tf.cast(tf.equal(tf.shape(x)[0], self.full), "int64"))
        return super().call(x)


@pytest.mark.parametrize("warm_start", ["backtracked", "final"])
def test_hf_warm_starts_cg_from_the_backtracked_step_or_the_final_iterate(float64, warm_start):
    """The last CG iterate is beyond the NaN boundary, so the two candidates differ."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)) * np.array([1, 0.5, 0.2, 0.05])
    y = x @ np.array([[1.0], [2.0], [6.0], [20.0]])
    inputs = keras.Input((4,))
    model = rnnzoo.Model(inputs, GuardedLinear()(inputs))
    model.compile(
        optimizer=HessianFree(damping=1e-8, curvature_fraction=1.0, max_cg_iterations=4,
                              cg_warm_start=warm_start),
        loss="mse",
    )
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    curvature = 2 * x.T @ x / len(x) + 1e-8 * np.eye(4)
    iterates = _numpy_cg_iterates(curvature, 2 * x.T @ y[:, 0] / len(x), 4)
    accepted = model.get_weights()[0]  # the backtracked step, taken whole (step size 1)
    expected = iterates[-1] if warm_start == "final" else accepted
    assert not np.allclose(iterates[-1], accepted)
    np.testing.assert_allclose(model.optimizer.previous_update.numpy(), expected, rtol=1e-6)


def test_hf_backtracks_and_takes_rho_on_the_curvature_batch(float64):
    """`evaluation_batch="curvature"`: rho is the curvature half's actual over predicted
    decrease; the step (CG on that half's curvature, the whole batch's gradient) is the same."""
    x, y = _least_squares(seed=4, n=40)
    design = np.c_[x, np.ones(len(x))]
    rhos, steps = {}, {}
    for evaluation in ("gradient", "curvature"):
        model = _linear_model()
        model.set_weights([np.full((3, 1), 0.5), np.zeros(1)])
        model.compile(
            optimizer=HessianFree(damping=1e-10, curvature_fraction=0.5, max_cg_iterations=20,
                                  evaluation_batch=evaluation),
            loss="mse",
        )
        start = _weights(model)
        history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
        rhos[evaluation], steps[evaluation] = history.history["rho"][0], _weights(model) - start
        assert history.history["step_size"] == [1.0]
    gradient = 2 * design.T @ (design @ start - y[:, 0]) / len(x)
    curvature = 2 * design[:20].T @ design[:20] / 20
    delta = -np.linalg.solve(curvature, gradient)
    predicted = gradient @ delta + 0.5 * delta @ curvature @ delta

    def loss(rows, w):
        return np.mean((design[rows] @ w - y[rows, 0]) ** 2)

    for evaluation, rows in (("gradient", slice(None)), ("curvature", slice(0, 20))):
        np.testing.assert_allclose(steps[evaluation], delta, rtol=1e-7)
        actual = loss(rows, start + delta) - loss(rows, start)
        assert rhos[evaluation] == pytest.approx(actual / predicted, rel=1e-6)
    assert abs(rhos["curvature"] - rhos["gradient"]) > 0.1


@keras.saving.register_keras_serializable(package="rnnzoo_tests")
class CountingLinear(keras.layers.Layer):
    """`y = x . w + b`, counting its calls on batches of `full` examples."""

    def __init__(self, full, **kwargs):
        super().__init__(**kwargs)
        self.full = full

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 1), initializer="zeros", name="w")
        self.b = self.add_weight(shape=(1,), initializer="zeros", name="b")
        self.calls = self.add_weight(shape=(), initializer="zeros", dtype="int64",
                                     trainable=False, name="calls")

    def call(self, x):
        self.calls.assign_add(tf.cast(tf.equal(tf.shape(x)[0], self.full), "int64"))
        return x @ self.w + self.b


@pytest.mark.parametrize(
    "evaluation, whole_batch_losses", [("gradient", 1 + 2), ("curvature", 1 + 1)]
)
def test_hf_evaluates_the_whole_batch_for_backtracking_only_on_the_gradient_batch(
    float64, evaluation, whole_batch_losses
):
    """CG solves the least-squares quadratic exactly (the curvature half has the whole batch's
    curvature); the walk back stops one iterate before the last.
    `"gradient"`: the gradient's loss, the walk's two (the unit step's reused by the line
    search); `"curvature"`: the gradient's, then the line search's unit step (the walk ran
    on the curvature half)."""
    x, y = _least_squares(seed=4, n=20)
    x, y = np.concatenate([x, x]), np.concatenate([y, y])  # the curvature half is the batch's twin
    inputs = keras.Input((3,))
    layer = CountingLinear(full=40)
    model = rnnzoo.Model(inputs, layer(inputs))
    model.compile(
        optimizer=HessianFree(damping=1e-10, curvature_fraction=0.5, max_cg_iterations=20,
                              evaluation_batch=evaluation),
        loss="mse",
    )
    history = model.fit(x, y, batch_size=40, epochs=1, verbose=0)
    assert history.history["step_size"] == [1.0]
    assert int(layer.calls.numpy()) == whole_batch_losses


def test_hf_line_search_does_not_evaluate_the_unit_step_twice(float64):
    """Full-batch losses: the gradient's, one backtracking one (the unit step, NaN), then
    the line search from alpha = 0.8 on (accepted at 0.8^4): 1 + 1 + 4 evaluations."""
    x = np.linspace(-1, 1, 32)[:, None]
    inputs = keras.Input((1,))
    layer = CountingGuardedScale(full=32)
    model = rnnzoo.Model(inputs, layer(inputs))
    model.compile(
        optimizer=HessianFree(damping=1e-6, curvature_fraction=0.5, max_cg_iterations=5),
        loss="mse",
    )
    history = model.fit(x, 3 * x, batch_size=32, epochs=1, verbose=0)
    assert history.history["step_size"][0] == pytest.approx(0.8**4)
    assert int(layer.calls.numpy()) == 1 + 1 + 4


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"cg_warm_start": "final", "evaluation_batch": "curvature"},
                     id="final_warm_start_curvature_evaluation", marks=pytest.mark.slow),
    ],
)
def test_hf_step_compiles_with_xla_and_takes_the_same_steps(float64, options):
    """`jit_compile=True` compiles the whole HF step (CG, backtracking, line search)."""
    x, y = _sequence_regression(n=32)
    inputs = keras.Input((6, 2))
    outputs = keras.layers.Dense(1)(keras.layers.SimpleRNN(4)(inputs))
    weights = rnnzoo.Model(inputs, outputs).get_weights()
    histories, trained = {}, {}
    for jit in (False, True):
        model = rnnzoo.Model(inputs, outputs)
        model.set_weights(weights)
        model.compile(
            optimizer=HessianFree(structural_damping=0.3, max_cg_iterations=8,
                                  curvature_fraction=0.5, **options),
            loss="mse", jit_compile=jit,
        )
        histories[jit] = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history
        trained[jit] = _weights(model)
    assert model.jit_compile
    for key in ("loss", "damping", "cg_steps", "step_size"):
        np.testing.assert_allclose(histories[True][key], histories[False][key], rtol=1e-8)
    np.testing.assert_allclose(trained[True], trained[False], rtol=1e-7, atol=1e-10)
    assert histories[True]["loss"][-1] < histories[True]["loss"][0]


def test_hf_takes_a_final_sigmoid_with_binary_crossentropy_as_keras_users_write_it(float64):
    """The step equals the one on the logits with BinaryCrossentropy(from_logits=True)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=64) > 0).astype("float64")[:, None]
    inputs = keras.Input((3,))
    probabilities = rnnzoo.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    logits = _linear_model()
    logits.set_weights(probabilities.get_weights())
    histories = {}
    for model, loss in ((probabilities, "binary_crossentropy"),
                        (logits, keras.losses.BinaryCrossentropy(from_logits=True))):
        model.compile(optimizer=HessianFree(damping=0.1, max_cg_iterations=10), loss=loss,
                      metrics=["binary_accuracy"] if model is probabilities else [])
        histories[model.name] = model.fit(x, y, batch_size=64, epochs=3, verbose=0).history
    np.testing.assert_allclose(_weights(probabilities), _weights(logits), rtol=1e-9)
    history = histories[probabilities.name]
    np.testing.assert_allclose(history["loss"], histories[logits.name]["loss"], rtol=1e-9)
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert "binary_accuracy" in history  # metrics see the probabilities


def test_hf_step_is_traced_once_per_run_also_for_batches_of_varying_length():
    traces = []

    class CountingHessianFree(HessianFree):
        def run_step(self, *args, **kwargs):
            traces.append(1)
            return super().run_step(*args, **kwargs)

    batches = [_sequence_regression(seed=seed, n=16, time=time) for seed, time in
               enumerate([6, 8, 5])]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=(tf.TensorSpec((16, None, 2)), tf.TensorSpec((16, 1))),
    ).repeat()
    inputs = keras.Input((None, 2))
    model = rnnzoo.Model(inputs, keras.layers.Dense(1)(MRNN(4, factors=4)(inputs)))
    model.compile(optimizer=CountingHessianFree(max_cg_iterations=5, structural_damping=0.3),
                  loss="mse")
    history = model.fit(dataset, steps_per_epoch=3, epochs=3, verbose=0)
    assert len(traces) == 1
    assert int(model.optimizer.iterations.numpy()) == 9
    assert all(size > 0 for size in history.history["step_size"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"damping": -1.0}, "damping"),
        ({"damping": 0.0}, "damping"),
        ({"structural_damping": -0.1}, "structural_damping"),
        ({"curvature_fraction": 0.0}, "curvature_fraction"),
        ({"max_cg_iterations": 2.5}, "max_cg_iterations"),
        ({"line_search_shrink": 1.0}, "line_search_shrink"),
        ({"cg_warm_start": "last"}, "cg_warm_start.*'backtracked', 'final'"),
        ({"evaluation_batch": "full"}, "evaluation_batch.*'gradient', 'curvature'"),
    ],
)
def test_hf_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HessianFree(**kwargs)


def test_hf_errors_name_the_fix():
    x, y = _least_squares()
    model = _linear_model()
    model.compile(optimizer=HessianFree(), loss="mae")
    with pytest.raises(ValueError, match="no matching-loss"):
        model.fit(x, y, epochs=1, verbose=0)
    model.compile(optimizer=HessianFree(), loss="mean_sqared_error")
    with pytest.raises(ValueError, match="Unknown loss name 'mean_sqared_error'"):
        model.fit(x, y, epochs=1, verbose=0)

    frozen = _linear_model()
    frozen.trainable = False
    frozen.compile(optimizer=HessianFree(), loss="mse")
    with pytest.raises(ValueError, match="no trainable weights"):
        frozen.fit(x, y, epochs=1, verbose=0)

    inputs = keras.Input((3,))
    plain = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    plain.compile(optimizer=HessianFree(), loss="mse")
    with pytest.raises(ValueError, match="rnnzoo.Model"):
        plain.fit(x, y, epochs=1, verbose=0)


def test_hf_config_round_trip():
    optimizer = HessianFree(damping=2.0, structural_damping=0.3, max_cg_iterations=7,
                            cg_warm_start="final", evaluation_batch="curvature")
    clone = HessianFree.from_config(optimizer.get_config())
    assert clone.get_config() == optimizer.get_config()
