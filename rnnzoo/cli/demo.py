"""`rnnzoo-demo`: rnnzoo end to end on this machine's own data.

`--demo=char_lm` (the default, `make demo`): trains a small char_mrnn on the
Python standard library's source with a progress bar, exports it as a
SavedModel, serves it with the TF-Serving-compatible server and prints a
generated sample and its bits per character (thesis ch. 5).

`--demo=addition` (`make demo-addition`): generates the addition problem
(longer-rnns §5.1) at T=50, trains a small ResRNN and a small MRNN for a fixed
wall-clock budget each with a Keras progress bar, and prints their test MSE
next to the predict-the-mean baseline (0.1767 as quoted by longer-rnns §5.1;
1/6 exactly).

`--demo=translation`: trains a small reversed-source LSTM seq2seq on English -> French pairs
from the system's gettext catalogs for `--steps` steps, exports its `translate` signature,
serves it and translates a few sentences with beam search (rnn-critical-review §5.3).
"""

import json
import time

from rnnzoo.cli.quiet import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from rnnzoo.data import get_task  # noqa: E402
from rnnzoo.layers import MRNN, ResRNN  # noqa: E402

flags.DEFINE_enum("demo", "char_lm", ["char_lm", "addition", "translation"], "Which demo to run.")
flags.DEFINE_integer("steps", 300, "translation: training steps.")
flags.DEFINE_float("minutes", 3.0, "char_lm: training budget in minutes.")
flags.DEFINE_integer("seq_len", 50, "addition: problem length T.")
flags.DEFINE_integer("units", 64, "addition: hidden units of each model.")
flags.DEFINE_integer("batch_size", 50, "addition: training sequences per step.")
flags.DEFINE_float("seconds_per_model", 90.0, "addition: wall-clock training budget of each model.")
flags.DEFINE_float("learning_rate", 1e-3, "addition: Adam learning rate.")
flags.DEFINE_integer("test_size", 2000, "addition: test sequences.")
flags.DEFINE_integer("seed", 0, "Seed of the data and the weights.")
FLAGS = flags.FLAGS

PAPER_BASELINE_MSE = 0.1767


def build_model(name, task, units):
    layer = ResRNN(units) if name == "ResRNN" else MRNN(units, factors=units)
    return keras.Sequential(
        [keras.Input((task.time_steps, task.input_dim)), layer, keras.layers.Dense(task.output_dim)],
        name=name,
    )


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of wall time have passed; counts the steps taken."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.monotonic() - self.start > self.seconds:
            self.model.stop_training = True


def train_and_evaluate(name, task, test):
    model = build_model(name, task, FLAGS.units)
    model.compile(keras.optimizers.Adam(FLAGS.learning_rate, clipnorm=1.0), task.loss)
    print(f"\n== {name}: {model.count_params()} parameters, {FLAGS.seconds_per_model:.0f} s budget")
    budget = TimeBudget(FLAGS.seconds_per_model)
    model.fit(
        task.train_dataset(FLAGS.batch_size),
        steps_per_epoch=200,
        epochs=10_000,
        callbacks=[budget],
        verbose=1,
    )
    seconds = time.monotonic() - budget.start
    x_test, y_test = test
    predictions = model.predict(x_test, batch_size=500, verbose=0)
    return {
        "model": name,
        "parameters": int(model.count_params()),
        "train_steps": budget.steps,
        "wall_time_s": round(seconds, 1),
        "test_mse": float(np.mean((predictions - y_test) ** 2)),
        "test_error_rate": float(task.error_rate(y_test, predictions)),
    }


def main(argv):
    del argv
    if FLAGS.demo == "char_lm":
        from rnnzoo.cli.char_lm_demo import char_lm_demo

        char_lm_demo(minutes=FLAGS.minutes, seed=FLAGS.seed)
        return
    if FLAGS.demo == "translation":
        from rnnzoo.cli.translation_demo import translation_demo

        translation_demo(steps=FLAGS.steps, seed=FLAGS.seed)
        return
    keras.utils.set_random_seed(FLAGS.seed)
    task = get_task("addition", seq_len=FLAGS.seq_len, seed=FLAGS.seed)
    batches = list(task.test_dataset(batch_size=FLAGS.test_size, size=FLAGS.test_size))
    test = tuple(np.concatenate([np.asarray(b[i]) for b in batches]) for i in range(2))
    baseline = task.baseline()
    print(f"Addition problem, T={FLAGS.seq_len}: {task.reference}.")
    results = [train_and_evaluate(name, task, test) for name in ("ResRNN", "MRNN")]
    print("\nTest MSE (predict-the-mean baseline: "
          f"{PAPER_BASELINE_MSE} as quoted by the paper, {baseline.mse:.4f} exactly)")
    for r in results:
        print(
            f"  {r['model']:7s} {r['test_mse']:.4f}  ({r['test_mse'] / PAPER_BASELINE_MSE:.1%} of the "
            f"baseline; {r['test_error_rate']:.1%} of test sequences off by more than "
            f"{task.tolerance}; {r['train_steps']} steps in {r['wall_time_s']} s)"
        )
    print(json.dumps({"task": "addition", "seq_len": FLAGS.seq_len, "baseline_mse": PAPER_BASELINE_MSE,
                      "results": results}))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
