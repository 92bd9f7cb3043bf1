"""Every model family learns: a short run of its smallest configuration, with a fixed seed,
improves its primary held-out metric (`rnnzoo.training.evaluation.primary_metric`) by a stated
margin over the value of the same initial model.

The initial value is the evaluation of the model `build_run` builds for the run's config
(`build_run` seeds Keras with `config.seed`, so `train` starts from the same weights, which the
test checks at the start of `fit`); the final value is the run's last evaluation. Margins were
chosen from measured runs (see each case) to hold with a wide gap at these seeds, and each case
fails when its learning rate is 1e-9 (checked by hand when the margins were set): a model that does
not learn stays at its initial value. The families that train before `fit` (layer-wise and static
RBM pretraining) run without pretraining here, so the improvement is the training loop's.
"""

import dataclasses
import math

import keras
import numpy as np
import pytest

from rnnzoo.training import evaluation
from rnnzoo.training.loop import TrainConfig, build_run, train

TEXT = "the cat sat on the mat. a dog ran to the log. " * 60
"""The char-LM corpus (tests/test_char_lm.py's); its last 460 characters are held out."""

COLOURS = {"red": "rouge", "blue": "bleu", "green": "vert", "black": "noir", "white": "blanc", "grey": "gris"}
NUMBERS = {"one": "un", "two": "deux", "three": "trois", "four": "quatre", "five": "cinq", "six": "six"}
STATES = {"open": "ouvert", "closed": "ferme", "empty": "vide", "full": "plein"}
PAIRS = [(f"the {c} file {n} is {s}", f"le fichier {cf} {nf} est {sf}")
         for n, nf in NUMBERS.items() for c, cf in COLOURS.items() for s, sf in STATES.items()]
"""144 English-French pairs; the corpus's hash split holds out 5 of them (unseen combinations of
seen words) as the test split that BLEU is measured on."""


@dataclasses.dataclass(frozen=True)
class Case:
    """A family's learning test: `TrainConfig` fields, family options, and the margin by which
    the primary metric must improve (an absolute difference, or, when `relative`, a fraction of
    the initial value)."""

    fields: dict
    options: dict
    margin: float
    relative: bool = False


CASES = {
    # Measured (load ~4 on 2 cores): test error rate 1.0 -> 0.90 (step 200), 0.69, 0.175, 0.01 (800).
    "pathological-irnn-addition": Case(
        dict(model="irnn", task="addition", seq_len=5, batch_size=32, optimizer="adam", learning_rate=0.01,
             clip_norm=1.0, train_steps=800, eval_every=200, test_size=200),
        dict(units=32),
        margin=0.5),  # the error rate falls by at least 0.5
    # Measured: test error rate 0.872 -> 0.394 (step 100), 0.208, 0.131 (300).
    "sequence_classifier-deep_lstm-digits": Case(
        dict(model="deep_lstm", task="digits", batch_size=32, optimizer="adam", learning_rate=0.01,
             train_steps=300, eval_every=100),
        dict(units=16, layers=1),
        margin=0.4),  # the error rate falls by at least 0.4
    # Measured: squared reconstruction error per image 21.3 -> 4.24 (step 100), 3.68 (200).
    "autoencoder-deep_autoencoder-digits": Case(
        dict(model="deep_autoencoder", task="digits", batch_size=32, optimizer="adam", learning_rate=0.01,
             train_steps=200, eval_every=100),
        dict(encoder_sizes="16,4"),
        margin=0.5, relative=True),  # the reconstruction error falls by at least 50%
    # Measured: held-out bits/char 4.00 -> 0.063 (step 200).
    "char_lm-char_lstm": Case(
        dict(model="char_lstm", seq_len=40, batch_size=16, optimizer="adam", learning_rate=0.01,
             train_steps=200, eval_every=100),
        dict(corpus="TEXT", context=10, units=16, embedding_dim=8, holdout_chars=460),
        margin=2.0),  # bits/char falls by at least 2
    # Measured: BLEU (beam 2) on the 5 held-out pairs 0.0 -> 30.7 (step 200).
    "seq2seq": Case(
        dict(model="seq2seq", batch_size=16, optimizer="adam", learning_rate=0.02, train_steps=200,
             eval_every=200),
        dict(corpus="PAIRS", vocab_size=60, layers=1, units=16, embedding_dim=8, max_decode_length=16,
             eval_beam_width=2),
        margin=15.0),  # BLEU rises by at least 15 points
    # Measured: final hand error (m) 0.1002 -> 0.0993 (step 100), 0.0988, 0.0763, 0.0703 (400); the
    # test loss 0.083 -> 0.016. Adam breaks out of the zero-torque plateau between steps 200 and 300.
    "arm_controller-center_out": Case(
        dict(model="arm_controller", task="center_out", seq_len=20, optimizer="adam", learning_rate=0.01,
             train_steps=400, eval_every=100),
        dict(units=8),
        margin=0.15, relative=True),  # the final hand error falls by at least 15%
    # Measured: next-frame MSE per pixel 0.233 -> 0.131 (update 20), 0.087, 0.086 (60).
    "rtrbm-bouncing_balls": Case(
        dict(model="rtrbm", optimizer="momentum", learning_rate=0.01, batch_size=2, seq_len=8, test_size=4,
             train_steps=60, eval_every=20),
        dict(units=16, resolution=10, pretrain_steps=0, initial_cd_updates=0, cd_steps=2,
             prediction_gibbs_steps=2),
        margin=0.4, relative=True),  # the next-frame error falls by at least 40%
}


def _corpus_options(options, tmp_path):
    """`options` with the placeholder corpora written into `tmp_path`."""
    files = {"TEXT": ("text.txt", TEXT), "PAIRS": ("pairs.tsv", "\n".join(f"{s}\t{t}" for s, t in PAIRS))}
    if options.get("corpus") not in files:
        return options
    name, content = files[options["corpus"]]
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return {**options, "corpus": str(path)}


class _InitialWeights(keras.callbacks.Callback):
    """Records the trained model's weights before its first step."""

    def on_train_begin(self, logs=None):
        self.weights = [np.array(w) for w in self.model.get_weights()]


def _improvement(initial, final, direction, relative):
    gain = initial - final if direction == evaluation.LOWER else final - initial
    return gain / abs(initial) if relative else gain


@pytest.mark.parametrize("name", list(CASES))
def test_the_family_learns(name, tmp_path):
    case = CASES[name]
    options = _corpus_options(case.options, tmp_path)
    # Every run takes all its steps (a pathological or digits run meeting its success criterion
    # would otherwise stop early, which is learning too, but the margins are set at train_steps).
    config = TrainConfig(model_dir=str(tmp_path / "run"), verbose=0, early_stop=False, **case.fields)
    _, built = build_run(config, **options)
    metric, direction = evaluation.primary_metric(built)
    initial = evaluation.evaluate(built.model, built)[metric]
    initial_weights = built.model.get_weights()

    recorder = _InitialWeights()
    metrics = train(config, callbacks=(recorder,), **options)

    assert len(recorder.weights) == len(initial_weights)
    for before, trained_from in zip(initial_weights, recorder.weights):
        np.testing.assert_array_equal(before, trained_from)  # training starts from the evaluated model
    final = metrics[metric]
    assert metrics["step"] == config.train_steps and not metrics["diverged"]
    assert metrics["degraded"] is False
    assert isinstance(metrics["best_step"], int) and metrics["best_step"] > 0
    assert initial is not None and final is not None and math.isfinite(initial) and math.isfinite(final)
    improvement = _improvement(initial, final, direction, case.relative)
    print(f"{name}: {metric} ({direction} is better) {initial:.4g} -> {final:.4g}, improvement "
          f"{improvement:.3g} (margin {case.margin:g}{' relative' if case.relative else ''})")
    assert improvement >= case.margin, (
        f"{name}: {metric} went from {initial:.4g} to {final:.4g} in {metrics['step']} steps, an improvement of "
        f"{improvement:.3g}{' of its initial value' if case.relative else ''}, less than the margin {case.margin:g}; "
        f"history: {[(e['step'], e[metric]) for e in metrics['history']]}")
