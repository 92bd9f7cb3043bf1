"""Every loss the zoo trains on and reports is the mean over the positions that carry weight."""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.training.run_directory import RunDirectory
from rnnzoo.training.position_weights import normalized, per_position_mean
from rnnzoo.training.loop import TrainConfig, build_run, train

TEXT = "def f(x):\n    return x + 1\n\nclass A:\n    pass\n" * 40
PAIRS = [(f"the {c} file {n} is open", f"le fichier {c} {n} est ouvert")
         for n in ("one", "two", "three") for c in ("red", "blue", "green")]


def numpy_weighted_nll(outputs, y, w):
    """sum(w * -log p(y)) / sum(w), from logits or probabilities."""
    outputs = np.asarray(outputs, np.float64)
    if not np.allclose(outputs.sum(-1), 1.0, atol=1e-4) or outputs.min() < 0:  # logits
        outputs = outputs - outputs.max(-1, keepdims=True)
        log_p = outputs - np.log(np.exp(outputs).sum(-1, keepdims=True))
    else:
        log_p = np.log(outputs)
    nll = -np.take_along_axis(log_p, np.asarray(y)[..., None].astype(int), -1)[..., 0]
    w = np.asarray(w, np.float64)
    return float((nll * w).sum() / w.sum())


def test_normalized_weights_make_keras_reductions_per_weighted_position():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 6, 5)).astype(np.float32)
    y = rng.integers(0, 5, (4, 6))
    w = np.zeros((4, 6), np.float32)
    w[:, 3:] = 1.0  # half of the positions carry weight, as a char LM's context
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = numpy_weighted_nll(logits, y, w)
    assert float(loss(y, logits, sample_weight=w)) == pytest.approx(expected / 2, rel=1e-5)  # Keras's own
    assert float(loss(y, logits, sample_weight=normalized(w))) == pytest.approx(expected, rel=1e-5)
    assert np.all(np.asarray(normalized(np.zeros((2, 3), np.float32))) == 0)
    batches = per_position_mean(tf.data.Dataset.from_tensors((logits, y, w)))
    np.testing.assert_allclose(next(iter(batches))[2], 2 * w)
    unweighted = tf.data.Dataset.from_tensors((logits, y))
    assert per_position_mean(unweighted) is unweighted


CASES = {  # name: (TrainConfig fields, family options)
    "char_mrnn": (dict(model="char_mrnn", seq_len=20, batch_size=8), dict(units=8, context=10, holdout_chars=300)),
    "seq2seq": (dict(model="seq2seq", batch_size=8), dict(vocab_size=30, units=8, embedding_dim=4)),
    "rnn_random_permutation": (dict(model="rnn", task="random_permutation", seq_len=12, batch_size=8,
                                    test_size=16), dict(units=8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reported_train_and_test_losses_are_means_over_weighted_positions(name, tmp_path):
    """One step at learning rate 1e-12 (the weights stay as they are): the reported training loss is the initial model's weighted mean
    NLL on the first training batch (half or more of whose positions have weight 0), and the test
    loss the weighted mean over the test set, both computed here in numpy."""
    fields, options = CASES[name]
    corpus = tmp_path / "corpus"
    if name == "seq2seq":
        corpus.write_text("\n".join(f"{s}\t{t}" for s, t in PAIRS * 3), encoding="utf-8")
    else:
        corpus.write_text(TEXT, encoding="utf-8")
    if fields["model"] != "rnn":
        options = {**options, "corpus": str(corpus)}
    config = TrainConfig(**fields, optimizer="sgd", learning_rate=1e-12, train_steps=1, eval_every=1,
                         early_stop=False, verbose=0, model_dir=str(tmp_path / "run"))
    metrics = train(config, **options)
    _, built = build_run(dataclasses.replace(config, model_dir=str(tmp_path / "rebuilt")), **options)
    model = RunDirectory(config.model_dir).load_model()
    x, y, w = next(iter(built.train_dataset))
    assert float(np.mean(np.asarray(w) > 0)) < 1.0  # the batch has unweighted positions
    assert metrics["train_loss"] == pytest.approx(numpy_weighted_nll(model(x), y, w), rel=1e-4)
    if built.test_dataset is not None:
        total, weight = 0.0, 0.0
        for x, y, w in built.test_dataset:
            total += numpy_weighted_nll(model(x), y, w) * float(np.sum(w))
            weight += float(np.sum(w))
        assert metrics["test_loss"] == pytest.approx(total / weight, rel=1e-4)
    if name == "char_mrnn":
        assert metrics["test_loss"] == pytest.approx(metrics["bits_per_char"] * math.log(2), rel=1e-4)
