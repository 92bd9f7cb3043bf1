"""Cost of one iteration of AHF, HF and L-BFGS on the arm controller (thesis §6.2, §6.7.1).

On the centre-out task (64 reaches, T = 40) the closed-loop controller (`--units` per layer)
is trained from the same initial weights by each optimizer; every iteration is one `fit`
step (one `run_step` in one graph). After `--warmup` iterations (tracing included) the next
`--iterations` are timed. Reports, per optimizer: median seconds per iteration, the work
done inside one (HF: CG steps; AHF: conjugate directions and objective evaluations of its
line searches; L-BFGS: stored pairs), the loss after the warm-up and after the timed
iterations, and tracing time (the first iteration).

    python benchmarks/arm_optimizers.py --output benchmarks/results/arm_optimizers.json
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from output import write_json  # noqa: E402  (benchmarks/output.py)

from rnnzoo import Model  # noqa: E402
from rnnzoo.optimizers import LBFGS, AugmentedHessianFree, HessianFree  # noqa: E402
from rnnzoo.zoo.arm_controller.closed_loop import INPUT_NAMES, ClosedLoop, closed_loop_model  # noqa: E402

flags.DEFINE_integer("units", 32, "Units per controller layer (thesis §6.4: 100).")
flags.DEFINE_integer("warmup", 2, "Untimed iterations first (the first traces).")
flags.DEFINE_integer("iterations", 5, "Timed iterations per optimizer.")
flags.DEFINE_integer("max_directions", 50, "HF's CG step cap and AHF's direction cap.")
flags.DEFINE_string("output", None, "JSON path to write (printed either way).")
FLAGS = flags.FLAGS


def optimizers():
    cap = FLAGS.max_directions
    return {
        "hf": lambda: HessianFree(max_cg_iterations=cap),
        "ahf": lambda: AugmentedHessianFree(max_directions=cap),
        "lbfgs": lambda: LBFGS(memory=100),
    }


def run(name, make):
    keras.utils.set_random_seed(0)
    layer = ClosedLoop(FLAGS.units, "center_out", {}, name="closed_loop")
    model = closed_loop_model(layer, Model)
    batch = layer.task.batch(None)
    x = {key: np.asarray(getattr(batch, key), np.float32) for key in INPUT_NAMES}
    y = np.zeros((len(batch.target), layer.task.residual_size()), np.float32)
    model.compile(optimizer=make(), loss="mse")
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    seconds, records = [], []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, step, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, step, logs=None):
            seconds.append(time.perf_counter() - self.start)
            records.append({k: float(v) for k, v in (logs or {}).items()})

    model.fit(data, steps_per_epoch=FLAGS.warmup + FLAGS.iterations, epochs=1, verbose=0,
              callbacks=[Timer()])
    final = float(model.evaluate(x, y, batch_size=len(y), verbose=0))
    timed = records[FLAGS.warmup:]
    work = {key: float(np.median([entry[key] for entry in timed]))
            for key in ("cg_steps", "directions", "evaluations", "pairs") if key in timed[0]}
    return {
        "seconds_per_iteration": round(float(np.median(seconds[FLAGS.warmup:])), 4),
        "first_iteration_seconds": round(seconds[0], 2),
        "median_work_per_iteration": work,
        "loss_before_timed": timed[0]["loss"],
        "loss_after": final,
    }


def main(argv):
    del argv
    report = {
        "task": "center_out", "batch": 64, "steps": 40, "units": FLAGS.units,
        "warmup": FLAGS.warmup, "iterations": FLAGS.iterations,
        "max_directions": FLAGS.max_directions,
        "optimizers": {name: run(name, make) for name, make in optimizers().items()},
    }
    base = report["optimizers"]["lbfgs"]["seconds_per_iteration"]
    report["seconds_relative_to_lbfgs"] = {
        name: round(entry["seconds_per_iteration"] / base, 2)
        for name, entry in report["optimizers"].items()}
    report.update(tensorflow=tf.__version__, cpu_count=os.cpu_count(),
                  load_average_1min=round(os.getloadavg()[0], 2))
    write_json(report, FLAGS.output)


if __name__ == "__main__":
    app.run(main)
