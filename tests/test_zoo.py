"""Zoo registry, shared training loop (resume, metrics) and layer-wise pretraining."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data import get_task
from rnnzoo.optimizers import NAG, HessianFree
from rnnzoo.optimizers.momentum import Momentum
from rnnzoo.training import evaluation, layerwise_pretraining, registry
from rnnzoo.training.optimizer_factory import make_optimizer
from rnnzoo.training.loop import TrainConfig, evaluate_checkpoint, train
from rnnzoo.training.run_directory import RunDirectory

FAST = dict(task="addition", seq_len=12, batch_size=16, test_size=200, eval_every=10, verbose=0)


def test_registry_lists_every_model_and_rejects_unknown_names():
    names = registry.model_names()
    for name in ("rnn", "irnn", "resrnn", "vlirnn", "mrnn", "lstm", "layerwise_lstm",
                 "deep_lstm", "deep_autoencoder"):
        assert name in names
    with pytest.raises(ValueError, match=r"Unknown model 'irn'; did you mean 'irnn'\?.*resrnn"):
        registry.get_family("irn")
    with pytest.raises(ValueError, match="has no option 'depth'"):
        registry.make_config(registry.get_family("irnn"), depth=3)


def test_optimizer_factory_builds_each_optimizer_with_schedules():
    config = TrainConfig(model_dir="unused", clip_norm=1.0)
    assert isinstance(make_optimizer(dataclasses.replace(config, optimizer="sgd")),
                      keras.optimizers.SGD)
    nag = make_optimizer(dataclasses.replace(
        config, optimizer="nag", momentum_schedule="piecewise", momentum_boundaries=(10,),
        momentum_values=(0.9, 0.98), lr_boundaries=(5,), lr_values=(0.1, 0.01)))
    assert isinstance(nag, NAG) and nag.clipnorm == 1.0
    assert float(nag.momentum_at(9)) == pytest.approx(0.9)
    assert float(nag.momentum_at(10)) == pytest.approx(0.98)
    assert float(nag._learning_rate(6)) == pytest.approx(0.01)
    momentum = make_optimizer(dataclasses.replace(config, optimizer="momentum", momentum=0.5))
    assert isinstance(momentum, Momentum)
    hf = make_optimizer(dataclasses.replace(config, optimizer="hf", clip_norm=0.0,
                                            hf_structural_damping=0.3))
    assert isinstance(hf, HessianFree) and hf.structural_damping == 0.3
    with pytest.raises(ValueError, match="does not apply to --optimizer=hf"):
        make_optimizer(dataclasses.replace(config, optimizer="hf"))
    with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'.*sgd, momentum, nag, adam, hf"):
        make_optimizer(dataclasses.replace(config, optimizer="rmsprop"))


def test_inverse_time_decay_needs_no_run_length_and_excludes_piecewise_rates():
    config = TrainConfig(model_dir="unused", optimizer="adam", learning_rate=3e-3, lr_decay_steps=1000)
    for train_steps in (10, 10**9):  # the same schedule whatever the run's length
        adam = make_optimizer(dataclasses.replace(config, train_steps=train_steps))
        schedule = adam._learning_rate
        assert [float(schedule(t)) for t in (0, 1000, 3000)] == pytest.approx([3e-3, 1.5e-3, 7.5e-4])
    with pytest.raises(ValueError, match="two learning-rate schedules"):
        make_optimizer(dataclasses.replace(config, lr_boundaries=(5,), lr_values=(0.1, 0.01)))
    with pytest.raises(ValueError, match="lr_decay_steps must be an integer >= 0"):
        make_optimizer(dataclasses.replace(config, lr_decay_steps=-1))


def test_hf_cg_warm_start_and_evaluation_batch_reach_hessian_free_or_are_refused():
    config = TrainConfig(model_dir="unused", optimizer="hf", clip_norm=0.0)
    assert (make_optimizer(config).cg_warm_start,
            make_optimizer(config).evaluation_batch) == ("backtracked", "gradient")
    hf = make_optimizer(dataclasses.replace(config, hf_cg_warm_start="final",
                                            hf_evaluation_batch="curvature"))
    assert (hf.cg_warm_start, hf.evaluation_batch) == ("final", "curvature")
    assert {k: hf.get_config()[k] for k in ("cg_warm_start", "evaluation_batch")} == {
        "cg_warm_start": "final", "evaluation_batch": "curvature"}
    with pytest.raises(ValueError, match="hf_cg_warm_start='last' is not an option of HessianFree; "
                       "pass --hf_cg_warm_start=backtracked or --hf_cg_warm_start=final"):
        make_optimizer(dataclasses.replace(config, hf_cg_warm_start="last"))
    with pytest.raises(ValueError, match="hf_evaluation_batch='full' is not an option of "
                       "HessianFree; pass --hf_evaluation_batch=gradient or "
                       "--hf_evaluation_batch=curvature"):
        make_optimizer(dataclasses.replace(config, hf_evaluation_batch="full"))


def test_momentum_matches_keras_sgd_with_constant_momentum():
    var_a, var_b = keras.Variable([1.0, -2.0]), keras.Variable([1.0, -2.0])
    ours, theirs = Momentum(0.1, momentum=0.9), keras.optimizers.SGD(0.1, momentum=0.9)
    for step in range(4):
        grad = tf.constant([0.5 * step + 1.0, -0.25])
        ours.apply([grad], [var_a])
        theirs.apply([grad], [var_b])
    np.testing.assert_allclose(var_a.numpy(), var_b.numpy(), rtol=1e-6)


def test_train_writes_metrics_and_resumes_where_it_stopped(tmp_path):
    model_dir = str(tmp_path / "run")
    config = TrainConfig(model="resrnn", optimizer="adam", learning_rate=1e-2, train_steps=20,
                         model_dir=model_dir, early_stop=False, **FAST)
    first = train(config, units=8)
    with open(os.path.join(model_dir, "metrics.json")) as f:
        saved = json.load(f)
    for key in ("step", "wall_time_s", "train_loss", "test_loss", "test_error_rate", "success"):
        assert key in saved
    assert saved["diverged"] is False
    assert saved["metric_directions"] == {"test_error_rate": "lower"}
    assert saved["success_criterion"]["metric"] == "test_error_rate"
    assert saved["step"] == 20 and first["step"] == 20
    assert [h["step"] for h in saved["history"]] == [10, 20]
    assert os.listdir(os.path.join(model_dir, "tensorboard"))
    assert not [n for n in os.listdir(model_dir) if n.startswith(".tmp")]

    evaluated = evaluate_checkpoint(model_dir, checkpoint="last")
    assert evaluated["test_loss"] == pytest.approx(saved["test_loss"], rel=1e-5)
    assert evaluated["test_error_rate"] == saved["test_error_rate"]
    best = evaluate_checkpoint(model_dir)  # the best checkpoint, what rnnzoo-export exports
    assert best["step"] == saved["best_step"] and best["test_loss"] == pytest.approx(saved["best"]["test_loss"],
                                                                                     rel=1e-5)
    with pytest.raises(ValueError, match=r"inputs of shape \(None, 12, 2\).*seq_len=24 gives"):
        evaluate_checkpoint(model_dir, seq_len=24)

    weights_before = RunDirectory(model_dir).load_model().get_weights()
    same = train(config, units=8)  # already at train_steps: nothing to do
    assert same["step"] == 20 and same["history"] == saved["history"]
    resumed = train(dataclasses.replace(config, train_steps=40), units=8)
    assert resumed["step"] == 40
    assert [h["step"] for h in resumed["history"]] == [10, 20, 30, 40]
    assert resumed["history"][:2] == saved["history"]
    assert resumed["wall_time_s"] > saved["wall_time_s"]
    weights_after = RunDirectory(model_dir).load_model().get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(weights_before, weights_after))


def test_resuming_a_different_run_in_the_same_dir_is_refused(tmp_path):
    config = TrainConfig(model="irnn", train_steps=10, model_dir=str(tmp_path), **FAST)
    train(config, units=4)
    with pytest.raises(ValueError, match="holds a different run.*model: saved 'irnn', requested 'lstm'"):
        train(dataclasses.replace(config, model="lstm"), units=4)


def _register_constant_family(name, threshold):
    """A family whose success criterion always (or never) holds."""

    def build(model_name, config, train_config):
        task = get_task("addition", seq_len=5, seed=train_config.seed)
        inputs = keras.Input((5, 2))
        from rnnzoo.model import Model

        model = Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
        return registry.Built(model=model, loss=keras.losses.MeanSquaredError(),
                              train_dataset=task.train_dataset(8),
                              test_dataset=task.test_dataset(50, size=50),
                              metrics=(evaluation.Metric("test_error_rate", task.error_rate),),
                              success=evaluation.Criterion("test_error_rate", threshold))

    @dataclasses.dataclass
    class Config:
        pass

    registry.register(registry.Family(name=name, models=(name,), config_class=Config, build=build))


def test_early_stop_when_the_success_criterion_holds(tmp_path):
    _register_constant_family("test_always_succeeds", threshold=2.0)
    _register_constant_family("test_never_succeeds", threshold=0.0)
    base = TrainConfig(task="addition", seq_len=5, train_steps=30, eval_every=10, verbose=0)
    stopped = train(dataclasses.replace(base, model="test_always_succeeds",
                                        model_dir=str(tmp_path / "a")))
    assert stopped["success"] and stopped["step"] == 10
    unstopped = train(dataclasses.replace(base, model="test_never_succeeds",
                                          model_dir=str(tmp_path / "b")))
    assert not unstopped["success"] and unstopped["step"] == 30
    no_early_stop = train(dataclasses.replace(base, model="test_always_succeeds", early_stop=False,
                                              model_dir=str(tmp_path / "c")))
    assert no_early_stop["success"] and no_early_stop["step"] == 30


@pytest.mark.slow
@pytest.mark.parametrize("model", ["rnn", "irnn", "vlirnn", "mrnn", "lstm"])
def test_every_pathological_model_trains_a_few_steps(tmp_path, model):
    metrics = train(TrainConfig(model=model, train_steps=4, optimizer="momentum",
                                clip_norm=0.1, model_dir=str(tmp_path), **{**FAST, "eval_every": 4}),
                    units=6, num_scopes=3 if model == "vlirnn" else None)
    assert metrics["step"] == 4 and np.isfinite(metrics["test_loss"])


def test_hessian_free_trains_keras_simple_rnn_on_a_variable_length_problem(tmp_path):
    """Padded, masked batches give Keras's SimpleRNN the static length HF's products need."""
    config = TrainConfig(model="rnn", task="multiplication", seq_len=10, optimizer="hf",
                         batch_size=200, train_steps=6, eval_every=3, test_size=200,
                         hf_max_cg_iterations=20, model_dir=str(tmp_path), verbose=0,
                         early_stop=False)
    metrics = train(config, units=8)
    first, last = metrics["history"][0], metrics["history"][-1]
    assert metrics["step"] == 6 and last["test_loss"] < first["test_loss"]
    model = RunDirectory(tmp_path).load_model()
    assert model.input_shape == (None, 11, 2) and model.get_layer("padding").mask_value == -1.0


def test_per_step_task_uses_sequence_outputs(tmp_path):
    metrics = train(TrainConfig(model="irnn", task="memorization_5bit", seq_len=10, batch_size=8,
                                test_size=50, train_steps=3, eval_every=3,
                                model_dir=str(tmp_path), verbose=0), units=6)
    assert 0.0 <= metrics["test_error_rate"] <= 1.0


def _stacked_lstms(units=6, layers=2, seed=0):
    keras.utils.set_random_seed(seed)
    lstms = [keras.layers.LSTM(units, return_sequences=True, return_state=True,
                               name=f"lstm_{i + 1}") for i in range(layers)]
    inputs = keras.Input((8, 8))
    hidden = inputs
    for lstm in lstms:
        hidden = lstm(hidden)[0]
    return lstms


def test_layerwise_pretraining_freezes_lower_layers():
    lstms = _stacked_lstms()
    task = get_task("digits", seed=0)
    snapshots = []

    def make_optimizer():
        snapshots.append([w.copy() for w in lstms[0].get_weights()])
        return keras.optimizers.Adam(1e-2)

    initial_top = [w.copy() for w in lstms[1].get_weights()]
    stats = layerwise_pretraining.pretrain(
        lstms, (8, 8), task.train_dataset(32), make_optimizer, steps=5,
        initializer=keras.initializers.RandomUniform(-0.1, 0.1))
    assert [s["layer"] for s in stats] == [1, 2]
    assert len(snapshots) == 2
    # Layer 1 changed during its own phase, then stayed fixed while layer 2 trained.
    assert any(not np.allclose(a, b) for a, b in zip(snapshots[0], snapshots[1]))
    for before, after in zip(snapshots[1], lstms[0].get_weights()):
        np.testing.assert_array_equal(before, after)
    assert any(not np.allclose(a, b) for a, b in zip(initial_top, lstms[1].get_weights()))
    assert all(layer.trainable for layer in lstms)


def test_decoder_learns_to_reconstruct_the_reversed_input():
    x = np.arange(2 * 3 * 1, dtype="float32").reshape(2, 3, 1)
    _, target = layerwise_pretraining.reversed_targets(x, np.zeros(2))
    np.testing.assert_array_equal(target, x[:, ::-1])
    shifted = np.asarray(layerwise_pretraining.teacher_forcing_inputs(x))
    np.testing.assert_array_equal(shifted[:, 0], 0.0)
    np.testing.assert_array_equal(shifted[:, 1:], x[:, ::-1][:, :-1])

    lstms = _stacked_lstms(units=24, layers=1)
    task = get_task("digits", seed=0)
    model = layerwise_pretraining.autoencoder(
        lstms, 0, (8, 8), keras.initializers.RandomUniform(-0.1, 0.1), "ae")
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.MeanSquaredError())
    model.fit(task.train_dataset(64).map(layerwise_pretraining.reversed_targets),
              steps_per_epoch=150, epochs=1, shuffle=False, verbose=0)
    images = next(iter(task.test_dataset(200)))[0].numpy()
    reconstruction = model.predict(images, verbose=0)
    error_reversed = np.mean((reconstruction - images[:, ::-1]) ** 2)
    error_forward = np.mean((reconstruction - images) ** 2)
    mean_predictor = np.mean((images - images.mean(axis=(0, 1))) ** 2)
    assert error_reversed < 0.6 * mean_predictor
    assert error_reversed < 0.6 * error_forward


@pytest.mark.slow
def test_layerwise_lstm_run_records_pretraining(tmp_path):
    metrics = train(TrainConfig(model="layerwise_lstm", task="digits", batch_size=64,
                                train_steps=5, eval_every=5, model_dir=str(tmp_path), verbose=0),
                    units=8, layers=2, pretrain_steps=3)
    layers = metrics["pretraining"]["layers"]
    assert [(s["layer"], s["steps"]) for s in layers] == [(1, 3), (2, 3)]
    # The run's clock counts the pretraining too.
    pretraining_seconds = metrics["pretraining"]["wall_time_s"]
    assert 0 < pretraining_seconds <= metrics["wall_time_s"]
    assert metrics["history"][0]["wall_time_s"] >= pretraining_seconds


def test_deep_autoencoder_reports_training_squared_error(tmp_path):
    metrics = train(TrainConfig(model="deep_autoencoder", task="digits", optimizer="nag",
                                learning_rate=0.005, batch_size=100, train_steps=30,
                                eval_every=15, model_dir=str(tmp_path), verbose=0),
                    encoder_sizes="16,4")
    first, last = metrics["history"][0], metrics["history"][-1]
    assert last["reconstruction_error"] < first["reconstruction_error"]
    assert metrics["metric_directions"] == {"reconstruction_error": "lower"}
    assert "test_error_rate" not in metrics and metrics["success_criterion"] is None
    with pytest.raises(ValueError, match="train on digits only; got task .addition."):
        train(TrainConfig(model="deep_autoencoder", task="addition", seq_len=10,
                          model_dir=str(tmp_path / "x")))


def test_interrupted_checkpoint_keeps_the_previous_one(tmp_path):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    run_dir = RunDirectory(tmp_path)
    run_dir.save(model, {"step": 1})
    saved = model.get_weights()

    class Interrupted(Exception):
        pass

    def failing_save(path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise Interrupted()

    model.set_weights([w + 1.0 for w in saved])
    model.save = failing_save
    with pytest.raises(Interrupted):
        run_dir.save(model, {"step": 2})
    assert run_dir.state() == {"step": 1}
    for a, b in zip(run_dir.load_model().get_weights(), saved):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "model.keras"]
