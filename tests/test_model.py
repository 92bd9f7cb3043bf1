"""rnnzoo.Model: Keras fit with optimizers that run their own step; save/restore."""

import subprocess
import sys

import numpy as np

import keras
import rnnzoo

from rnnzoo.layers import MRNN
from rnnzoo.optimizers import HessianFree


def _data(seed=0, n=48):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5, 2)).astype("float32")
    y = np.tanh(x[:, 0, :1] + 0.5 * x[:, -1, 1:]).astype("float32")
    return x, y


def _model(cls=rnnzoo.Model, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5, 2))
    hidden = MRNN(6, factors=6)(inputs)
    return cls(inputs, keras.layers.Dense(1)(hidden))


def _hf():
    return HessianFree(damping=0.5, structural_damping=0.3, max_cg_iterations=10,
                       curvature_fraction=0.5)


def test_import_rnnzoo_stays_light_and_exposes_model_lazily():
    code = (
        "import sys, rnnzoo\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "import keras\n"
        "assert issubclass(rnnzoo.Model, keras.Model)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_with_a_keras_optimizer_it_trains_exactly_like_keras_model():
    x, y = _data()
    models = [_model(rnnzoo.Model), _model(keras.Model)]
    for model in models:
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_array_equal(a, b)


def test_hf_fit_feeds_history_callbacks_metrics_and_validation():
    x, y = _data()
    model = _model()
    model.compile(optimizer=_hf(), loss="mse", metrics=["mae"])
    seen = []
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(dict(logs))
    )
    history = model.fit(
        x, y, batch_size=24, epochs=3, validation_data=(x[:8], y[:8]), callbacks=[callback],
        verbose=0,
    )
    for key in ["loss", "mae", "damping", "rho", "cg_steps", "step_size", "val_loss", "val_mae"]:
        assert len(history.history[key]) == 3, key
    assert len(seen) == 6 and all("damping" in logs for logs in seen)
    # Reported loss is the loss of the batch before each step, as Keras reports it.
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert int(model.optimizer.iterations.numpy()) == 6


def test_hf_save_and_load_mid_training_continues_identically(tmp_path):
    x, y = _data(seed=1)
    straight = _model()
    straight.compile(optimizer=_hf(), loss="mse")
    straight.fit(x, y, batch_size=24, epochs=3, shuffle=False, verbose=0)

    interrupted = _model()
    interrupted.compile(optimizer=_hf(), loss="mse")
    checkpoint = str(tmp_path / "epoch{epoch}.keras")
    interrupted.fit(
        x, y, batch_size=24, epochs=1, shuffle=False, verbose=0,
        callbacks=[keras.callbacks.ModelCheckpoint(checkpoint)],
    )
    restored = keras.models.load_model(str(tmp_path / "epoch1.keras"))
    assert isinstance(restored, rnnzoo.Model)
    assert isinstance(restored.optimizer, HessianFree)
    assert restored.optimizer.get_config() == interrupted.optimizer.get_config()
    np.testing.assert_array_equal(
        restored.optimizer.damping.numpy(), interrupted.optimizer.damping.numpy()
    )
    np.testing.assert_array_equal(
        restored.optimizer.previous_update.numpy(), interrupted.optimizer.previous_update.numpy()
    )
    assert np.any(restored.optimizer.previous_update.numpy() != 0)  # a CG warm start to restore

    restored.fit(x, y, batch_size=24, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(straight.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        straight.optimizer.damping.numpy(), restored.optimizer.damping.numpy(), rtol=1e-6
    )


def test_hf_weights_checkpoint_restores_damping_and_warm_start(tmp_path):
    x, y = _data(seed=2)
    model = _model()
    model.compile(optimizer=_hf(), loss="mse")
    model.fit(x, y, batch_size=24, epochs=1, verbose=0)
    path = str(tmp_path / "hf.weights.h5")
    model.save_weights(path)

    fresh = _model(seed=5)
    fresh.compile(optimizer=_hf(), loss="mse")
    fresh.optimizer.build(fresh.trainable_variables)
    fresh.load_weights(path)
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fresh.optimizer.damping.numpy(), model.optimizer.damping.numpy())
    np.testing.assert_array_equal(
        fresh.optimizer.previous_update.numpy(), model.optimizer.previous_update.numpy()
    )
