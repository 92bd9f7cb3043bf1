"""The pipelines drive a plain Keras model as declared by the Task."""

import keras
import numpy as np
import pytest

from rnnzoo.data import get_task


def _model(task, units=16):
    inputs = keras.Input((task.time_steps, task.input_dim))
    hidden = keras.layers.SimpleRNN(units, return_sequences=task.return_sequences)(inputs)
    outputs = keras.layers.Dense(task.output_dim, activation=task.output_activation)(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.01), task.loss)
    return model


def _test_error(task, model, size=None):
    ys, predictions = [], []
    for batch in task.test_dataset(batch_size=256, size=size):
        ys.append(batch[1].numpy())
        predictions.append(model.predict_on_batch(batch[0]))
    y, prediction = np.concatenate(ys), np.concatenate(predictions)
    assert size is None or len(y) == len(prediction) == size
    return task.error_rate(y, prediction)


def test_digits_model_beats_the_baseline():
    task = get_task("digits", seed=0)
    model = _model(task, units=32)
    model.fit(task.train_dataset(64), steps_per_epoch=150, epochs=1, verbose=0)
    assert _test_error(task, model) < 0.5 < task.baseline().error_rate


@pytest.mark.parametrize("name", ["addition_thesis", "random_permutation", "memorization_5bit"])
def test_variable_length_and_weighted_steps_train(name):
    task = get_task(name, seq_len=10, seed=0)
    model = _model(task)
    history = model.fit(task.train_dataset(32), steps_per_epoch=20, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    error = _test_error(task, model, size=300)
    assert np.isfinite(error)


def test_zero_weight_step_does_not_enter_the_loss():
    task = get_task("random_permutation", seq_len=6, seed=0)
    model = _model(task)
    x, y, w = next(iter(task.test_dataset(batch_size=50, size=50)))
    probabilities = model.predict_on_batch(x)
    picked = np.take_along_axis(probabilities, y.numpy()[..., None], axis=-1)[..., 0]
    per_step = -np.log(picked)
    expected = np.sum(per_step * w.numpy()) / w.numpy().size
    loss = model.evaluate(x, y, sample_weight=w, verbose=0)
    assert loss == pytest.approx(expected, rel=1e-4)
    assert loss != pytest.approx(np.mean(per_step), rel=1e-3)
