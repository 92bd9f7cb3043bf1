"""Honest results: divergence is never success, the thesis's success criteria, finite training sets."""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data import get_task
from rnnzoo.data.char_corpus import default_holdout_chars, load_corpus
from rnnzoo.model import Model
from rnnzoo.optimizers import NAG
from rnnzoo.optimizers.momentum import Momentum
from rnnzoo.training import evaluation, registry
from rnnzoo.experiments.report import write_report
from rnnzoo.training.loop import TrainConfig, build_run, train
from rnnzoo.training.run_directory import RunDirectory

# ---------------------------------------------------------------- non-finite predictions


def test_nan_predictions_count_as_errors_in_every_error_rate():
    addition = get_task("addition", seq_len=10)
    y = np.zeros((4, 1), np.float32)
    assert addition.error_rate(y, np.array([[0.0], [np.nan], [np.inf], [0.01]])) == 0.5
    temporal = get_task("temporal_order", seq_len=20)
    labels = np.array([0, 1, 2, 3])
    scores = np.eye(4, dtype=np.float32)[labels]
    scores[1, 0] = np.nan  # argmax of a NaN row would be 0 or 1: still wrong
    scores[2] = np.nan
    assert temporal.error_rate(labels, scores) == 0.5
    memory = get_task("memorization_5bit", seq_len=5)
    targets = np.zeros((2, memory.time_steps), np.int32)
    outputs = np.zeros((2, memory.time_steps, memory.output_dim), np.float32)
    outputs[..., 0] = 1.0
    outputs[1, -1] = np.nan
    assert memory.error_rate(targets, outputs) == pytest.approx(1 / 10)
    assert memory.sequence_error_rate(targets, outputs) == 0.5


def test_memorization_succeeds_on_sequences_not_symbols():
    """Thesis §4.4: under 1% of the test *sequences* wrong; one wrong symbol in 5% of the
    sequences is 0.5% of the symbols, which the symbol-level criterion called solved."""
    task = get_task("memorization_20bit", seq_len=5)
    n = 200
    targets = np.zeros((n, task.time_steps), np.int32)
    outputs = np.zeros((n, task.time_steps, task.output_dim), np.float32)
    outputs[..., 0] = 1.0
    outputs[: n // 20, -1, 0], outputs[: n // 20, -1, 1] = 0.0, 1.0  # 5% of sequences: 1 symbol
    assert task.error_rate(targets, outputs) == pytest.approx(0.005)  # table 7.3's symbol error
    assert task.sequence_error_rate(targets, outputs) == pytest.approx(0.05)
    assert not task.succeeded(targets, outputs)
    metrics, criterion = evaluation.task_metrics(task)
    values = {m.name: m.compute(targets, outputs) for m in metrics}
    assert [m.name for m in metrics] == ["test_error_rate", "test_sequence_error_rate"]
    assert criterion.metric == "test_sequence_error_rate" and not criterion.met(values)
    outputs[: n // 20, -1] = outputs[n // 20, -1]  # now every sequence right
    assert task.succeeded(targets, outputs)


def test_a_criterion_is_never_met_by_a_missing_or_nan_value():
    lower = evaluation.Criterion("error", 0.01)
    higher = evaluation.Criterion("bleu", 20.0, direction="higher")
    assert lower.met({"error": 0.0}) and not lower.met({"error": 0.01})
    assert not lower.met({"error": None}) and not lower.met({"error": float("nan")})
    assert higher.met({"bleu": 25.0}) and not higher.met({"bleu": float("nan")})
    assert evaluation.finite_or_none(float("inf")) is None


# ---------------------------------------------------------------- divergence


def _register_nan_family():
    """A family whose 4th training batch holds NaN inputs, and whose criterion a finite
    model always meets (error rate below 2)."""
    name = "test_nan_at_step_4"

    def build(model_name, config, train_config):
        task = get_task("addition", seq_len=5, seed=train_config.seed)
        inputs = keras.Input((5, 2))
        model = Model(inputs, keras.layers.Dense(1)(keras.layers.SimpleRNN(4)(inputs)))

        def poison(step, x, y):
            return tf.where(step == 3, x * np.nan, x), y

        batches = task.train_dataset(8)
        train = tf.data.Dataset.zip(tf.data.Dataset.counter(), batches).map(
            lambda step, batch: poison(step, *batch))
        return registry.Built(model=model, loss=keras.losses.MeanSquaredError(),
                              train_dataset=train, test_dataset=task.test_dataset(50, size=50),
                              metrics=(evaluation.Metric("test_error_rate", task.error_rate),),
                              success=evaluation.Criterion("test_error_rate", 2.0))

    @dataclasses.dataclass
    class Config:
        pass

    registry.register(registry.Family(name=name, models=(name,), config_class=Config,
                                      build=build))
    return name


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nag", "adam", "hf"])
def test_a_diverged_run_stops_keeps_its_last_good_checkpoint_and_is_no_success(tmp_path, optimizer):
    model = _register_nan_family()
    config = TrainConfig(model=model, task="addition", seq_len=5, optimizer=optimizer,
                         batch_size=8, train_steps=10, eval_every=2, verbose=0,
                         hf_max_cg_iterations=3, early_stop=False, model_dir=str(tmp_path))
    metrics = train(config)
    assert metrics["diverged"] is True and metrics["success"] is False
    assert metrics["diverged_at_step"] == 4 and metrics["last_good_step"] == 2
    assert metrics["divergence"] == "training loss nan"
    with open(tmp_path / "metrics.json") as f:
        saved = json.load(f)  # strict JSON: no NaN
    assert saved["diverged"] is True and saved["success"] is False and saved["test_loss"] is None
    state = RunDirectory(tmp_path).state()
    assert state["step"] == 2 and state["history"][-1]["success"]
    kept = RunDirectory(tmp_path).load_model(compile=False)
    assert all(np.all(np.isfinite(w)) for w in kept.get_weights())
    # A re-run resumes from the last good checkpoint (and here diverges again at step 4).
    again = train(config)
    assert again["diverged"] and again["diverged_at_step"] == 4 and again["last_good_step"] == 2


def test_a_run_diverging_before_its_first_round_keeps_the_step_0_checkpoint(tmp_path):
    model = _register_nan_family()
    config = TrainConfig(model=model, task="addition", seq_len=5, batch_size=8, train_steps=10,
                         eval_every=5, verbose=0, model_dir=str(tmp_path))
    initial = build_run(config)[1].model.get_weights()  # seeded as train seeds it
    metrics = train(config)
    assert metrics["diverged_at_step"] == 4 and metrics["last_good_step"] == 0
    kept = RunDirectory(tmp_path).load_model(compile=False).get_weights()
    for a, b in zip(initial, kept):
        np.testing.assert_array_equal(a, b)


def test_the_cli_says_where_a_run_diverged_and_fails(tmp_path):
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "rnnzoo-train"), "--model=resrnn",
         "--task=addition", "--seq_len=20", "--optimizer=nag", "--train_steps=30",
         "--batch_size=32", "--clip_norm=0", "--units=100", "--verbose=0",
         f"--model_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["diverged"] and not summary["success"] and summary["test_loss"] is None
    lines = [line for line in result.stderr.splitlines() if line.startswith("rnnzoo-train:")]
    assert len(lines) == 1
    assert f"diverged at step {summary['diverged_at_step']}" in lines[0]
    assert "last good checkpoint (step 0)" in lines[0]


def test_a_report_shows_diverged_and_degraded_runs_as_such(tmp_path):
    experiment = dataclasses.make_dataclass("E", ["name", "title", "claim", "metric_name",
                                                  "differences"])(
        "x", "X", "claim", "test error rate", "none")
    criterion = evaluation.Criterion("test_error_rate", 0.01).as_dict()
    history = [{"step": 10, "test_loss": 0.5, "test_error_rate": 0.2, "success": False}]
    diverged = {"step": 12, "wall_time_s": 3.0, "test_loss": None, "success": False,
                "diverged": True, "diverged_at_step": 12, "success_criterion": criterion,
                "history": history}
    solved = {"step": 20, "wall_time_s": 5.0, "test_loss": 0.001, "test_error_rate": 0.0,
              "success": True, "diverged": False, "success_criterion": criterion,
              "history": history}
    degraded = {**solved, "test_error_rate": 0.4, "success": False, "degraded": True, "peak_step": 10}
    results = [{"label": f"p {name}", "panel": "p", "seed": 0, "paper": "", "config": {
        "model_dir": str(tmp_path), "train_steps": 20}, "metric": "test_error_rate", "metrics": metrics}
        for name, metrics in (("a", diverged), ("b", solved), ("c", degraded))]
    with open(write_report(experiment, "small", results, 60.0, str(tmp_path))) as f:
        rows = [line for line in f if line.startswith("| p ")]
    assert "| 0/1 (diverged at step 12) |" in rows[0] and "| - |" in rows[0]
    assert "| 1/1 |" in rows[1]
    assert "| 0/1 (degraded after peaking at step 10) |" in rows[2]


# ---------------------------------------------------------------- NAG on the resRNN


def _quadratic_radius(optimizer, curvature, steps=60):
    """|x| after `steps` steps on f(x) = curvature / 2 x^2 from x = 1."""
    x = keras.Variable([1.0])
    for _ in range(steps):
        optimizer.apply([curvature * x.value], [x])
    return abs(float(x.numpy()[0]))


def test_nags_stability_limit_is_tighter_than_momentums():
    """The cause of the resRNN divergence: NAG is stable for eps * lambda < 2 (1 + mu) /
    (1 + 2 mu) = 1.36 at mu = 0.9, classical momentum up to 2 (1 + mu) = 3.8."""
    for eps_lambda, nag_stable in ((1.2, True), (2.09, False)):
        nag = _quadratic_radius(NAG(1e-3, momentum=0.9), eps_lambda / 1e-3)
        momentum = _quadratic_radius(Momentum(1e-3, momentum=0.9), eps_lambda / 1e-3)
        assert momentum < 1.0
        assert (nag < 1.0) == nag_stable, (eps_lambda, nag)


def test_nag_trains_the_resrnn_with_the_default_settings(tmp_path):
    """rnnzoo-train --model=resrnn --task=addition --seq_len=20 --optimizer=nag
    --train_steps=30 --batch_size=32: the model's recipe clips at 0.1 (longer-rnns §6)."""
    config = TrainConfig(model="resrnn", task="addition", seq_len=20, optimizer="nag",
                         train_steps=30, batch_size=32, eval_every=30, test_size=200,
                         verbose=0, model_dir=str(tmp_path))
    metrics = train(config)
    assert not metrics["diverged"] and metrics["step"] == 30
    assert np.isfinite(metrics["train_loss"]) and np.isfinite(metrics["test_loss"])
    assert RunDirectory(tmp_path).train_config()["clip_norm"] == 0.1
    unclipped = train(dataclasses.replace(config, clip_norm=0.0, model_dir=str(tmp_path / "raw")))
    assert unclipped["diverged"]  # without the recipe's clipping, as reported


def test_a_model_recipe_fills_only_unset_settings():
    from rnnzoo.training.loop import resolve_config

    resolved = resolve_config(TrainConfig(model="irnn", model_dir="x"))
    assert resolved.clip_norm == 0.1 and resolved.learning_rate == 1e-3
    assert resolve_config(TrainConfig(model="irnn", clip_norm=0.0, model_dir="x")).clip_norm == 0.0
    assert resolve_config(TrainConfig(model="rnn", model_dir="x")).clip_norm == 0.0
    assert resolve_config(TrainConfig(model="irnn", optimizer="hf", model_dir="x")).clip_norm == 0.0
    mrnn = resolve_config(TrainConfig(model="char_mrnn", model_dir="x"))
    assert (mrnn.learning_rate, mrnn.lr_decay_steps, mrnn.clip_norm) == (3e-3, 1000, 1.0)
    assert resolve_config(TrainConfig(model="char_mrnn", lr_decay_steps=0, model_dir="x")).lr_decay_steps == 0
    assert resolve_config(TrainConfig(model="char_rnn", model_dir="x")).lr_decay_steps == 0


# ---------------------------------------------------------------- corpora and training sets


def test_the_held_out_split_defaults_to_a_tenth_of_a_small_corpus(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("".join(chr(97 + i % 26) for i in range(46_000)))
    corpus = load_corpus(str(path))  # refused when the hold-out was fixed at 50,000
    assert len(corpus.heldout_ids) == 4_600 and len(corpus.train_ids) == 41_400
    assert len(load_corpus(str(path), holdout_chars=1_000).heldout_ids) == 1_000
    assert default_holdout_chars(10_000_000) == 50_000


def _sequences(dataset, batches):
    return np.concatenate([np.asarray(x) for x, *_ in dataset.take(batches)])


def test_a_finite_training_set_cycles_through_the_same_sequences_reshuffled():
    task = get_task("addition", seq_len=6, seed=3, train_size=64)
    assert task.train_size == 64
    epochs = _sequences(task.train_dataset(16), 8)
    first, second = epochs[:64], epochs[64:]
    key = lambda rows: sorted(map(bytes, rows))  # noqa: E731
    assert key(first) == key(second) and len(set(key(first))) == 64
    assert not np.array_equal(first, second)  # reshuffled every epoch
    np.testing.assert_array_equal(epochs, _sequences(task.train_dataset(16), 8))  # seeded
    endless = _sequences(get_task("addition", seq_len=6, seed=3).train_dataset(16), 8)
    assert len(set(key(endless))) == 128
    test = _sequences(task.test_dataset(64, size=64), 1)
    assert not set(key(test)) & set(key(first))


def test_a_finite_variable_length_training_set_is_padded_and_refusals_name_the_fix():
    task = get_task("addition_thesis", seq_len=10, train_size=32)
    x, y = next(iter(task.train_dataset(32, padded=True)))
    assert x.shape == (32, 11, 2)
    with pytest.raises(ValueError, match="read it with padded=True"):
        task.train_dataset(8)
    with pytest.raises(ValueError, match="train_size applies to generated problems only"):
        get_task("digits", train_size=100)
    with pytest.raises(ValueError, match="train_size must be a positive integer"):
        get_task("addition", seq_len=5, train_size=0)
