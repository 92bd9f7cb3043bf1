"""Collapse as an outcome: the degradation rules, the best checkpoint kept beside the last one, and
`rnnzoo-export` exporting the best unless told otherwise."""

import math
import os
import sysconfig

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.export import export_run
from rnnzoo.training.degradation import STEPS_PER_PATIENCE, WARMUP_STEPS, TrainLossMonitor, heldout_degradation
from rnnzoo.training.loop import TrainConfig, degradation_message, evaluate_checkpoint, train

BITS = ("bits_per_char", "lower")


def history(values, name="bits_per_char", every=100):
    return [{"step": every * (i + 1), name: v} for i, v in enumerate(values)]


def test_a_noisy_improving_curve_is_not_degraded():
    rng = np.random.default_rng(0)
    curve = 4.0 * np.exp(-np.arange(30) / 10) + 2.0
    noisy = curve * (1 + rng.uniform(-0.04, 0.04, curve.size))  # +-4% between evaluations
    for end in range(1, curve.size + 1):
        assert heldout_degradation(history(noisy[:end]), 0, BITS, patience=3, tolerance=0.1) is None


def test_a_collapse_is_degraded_at_the_third_worse_evaluation_with_its_peak():
    values = [4.0, 3.0, 2.5, 2.1, 2.0, 2.3, 2.5, 2.9, 3.2]
    found = [heldout_degradation(history(values[:end]), 0, BITS, 3, 0.1) for end in range(1, len(values) + 1)]
    assert found[:7] == [None] * 7  # 2.3 is within 10% of 2.0; 2.5 and 2.9 are two worse evaluations
    assert found[7].peak_step == 500 and found[7].found_at_step == 800 and found[7].signal == "heldout"
    higher = heldout_degradation(history([10.0, 20.0, 17.0, 16.0, 15.0], "bleu"), 0, ("bleu", "higher"), 3, 0.1)
    assert higher.peak_step == 200  # BLEU falls: its direction decides
    assert heldout_degradation(history(values), 7, BITS, 3, 0.1) is None  # a resumed invocation judges its own 2
    assert heldout_degradation(history(values), 0, BITS, 0, 0.1) is None  # patience 0: never
    assert heldout_degradation(history(values + [2.05]), 0, BITS, 3, 0.1) is None  # recovered: judged afresh


def test_the_training_loss_rule_sees_a_persistent_rise_and_not_noise():
    rng = np.random.default_rng(1)
    noisy, rising, recovering = TrainLossMonitor(3, 0.1), TrainLossMonitor(3, 0.1), TrainLossMonitor(3, 0.1)
    steps = WARMUP_STEPS + 2000
    found = None
    for step in range(1, steps + 1):
        level = 2.0 + 1.0 * math.exp(-step / 300)
        assert noisy.update(step, level * (1 + rng.normal(0, 0.2))) is None  # 20% noise per step
        collapse = 1.0 + max(0.0, (step - 1000) / 500)  # lowest at step 1000, then +100% per 500 steps
        found = found or rising.update(step, level * collapse)
        bump = 1.0 + (0.5 if 1000 < step <= 1500 else 0.0)  # a transient rise, then back below the best
        transient = recovering.update(step, level * bump)
    assert transient is None  # the smoothed loss is back within 10% of its lowest by the end
    assert found is not None and found.signal == "train_loss"
    assert abs(found.peak_step - 1000) < 150
    assert found.found_at_step - found.peak_step >= 3 * STEPS_PER_PATIENCE


def char_run(tmp_path, learning_rates, steps, name, **training):
    """A 32-unit char MRNN on the standard library's textwrap.py; Adam with `learning_rates[0]`, then
    `learning_rates[1]` from step 200."""
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        with open(os.path.join(sysconfig.get_paths()["stdlib"], "textwrap.py")) as f:
            corpus.write_text(f.read() * 3, encoding="utf-8")
    config = TrainConfig(model="char_mrnn", optimizer="adam", lr_boundaries=(200,), lr_values=learning_rates,
                         seq_len=30, batch_size=16, train_steps=steps, eval_every=25, early_stop=False, verbose=0,
                         model_dir=str(tmp_path / name), seed=0, **training)
    return config, train(config, corpus=str(corpus), units=32, context=10, holdout_chars=2000)


def test_a_learning_rate_raised_far_too_high_degrades_the_run_and_the_best_checkpoint_is_kept(tmp_path):
    config, metrics = char_run(tmp_path, (0.01, 0.3), 500, "too_high", stop_when_degraded=True)
    assert metrics["degraded"] and metrics["step"] < 500  # stopped once degraded
    bits = [entry["bits_per_char"] for entry in metrics["history"]]
    assert metrics["peak_step"] == metrics["best_step"] == metrics["history"][int(np.argmin(bits))]["step"]
    assert metrics["bits_per_char"] > 1.1 * min(bits)
    assert f"best checkpoint (step {metrics['best_step']})" in degradation_message(metrics)
    best = evaluate_checkpoint(config.model_dir)
    last = evaluate_checkpoint(config.model_dir, checkpoint="last")
    assert best["step"] == metrics["best_step"] and last["step"] == metrics["step"]
    assert best["bits_per_char"] == pytest.approx(min(bits), rel=1e-5)
    assert last["bits_per_char"] == pytest.approx(metrics["bits_per_char"], rel=1e-5)

    scored = {}
    for checkpoint in ("best", "last"):
        exported = export_run(config.model_dir, str(tmp_path / checkpoint), checkpoint=checkpoint)
        score = tf.saved_model.load(exported).signatures["score"]
        scored[checkpoint] = float(score(text=tf.constant(["def train(config):\n    return config\n"]))
                                   ["bits_per_char"][0])
    assert scored["best"] < scored["last"]


def test_a_merely_noisy_run_is_not_degraded_and_its_best_is_its_lowest(tmp_path):
    _, metrics = char_run(tmp_path, (0.01, 0.01), 300, "noisy")
    assert not metrics["degraded"] and metrics["step"] == 300
    bits = [entry["bits_per_char"] for entry in metrics["history"]]
    assert metrics["best"]["bits_per_char"] == min(bits)
