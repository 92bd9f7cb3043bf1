"""Hessian-free's CG warm start and evaluation batch: which solves addition fastest per second.

Four variants of `rnnzoo.optimizers.HessianFree` (lambda = 1, structural
damping mu = 1/30, CG cap 250, gradient batch 1000, curvature batch 100):

- `backtracked/gradient`: the defaults: CG warm-started from 0.95 x the step
  backtracking chose, backtracking and rho on the whole batch;
- `final/gradient`: warm start from 0.95 x the final CG iterate (Martens
  2010 §4.5, drasmuss/hessianfree, theano-hf);
- `backtracked/curvature`: backtracking and rho on the curvature batch
  (theano-hf);
- `final/curvature`: both.

For each seed, the four train a 100-unit tanh RNN on the thesis's addition
problem (§4.4.1, T' ~ i[T, 11T/10] pre-padded with zeros to 11T/10 steps)
from the same initial weights on the same batches, their iterations
interleaved (one of each in turn) so that the machine's load falls on all
alike; each stops once solved (the project's criterion, `Task.succeeded`, on
2000 test sequences after every iteration) or after `--steps`. Seconds are
the iterations' wall time, test evaluation excluded.

    python benchmarks/hf_variants.py --seeds 0,1,2 --output benchmarks/results/hf_variants.json
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from output import write_json  # noqa: E402  (benchmarks/output.py)

import rnnzoo  # noqa: E402
from rnnzoo.data import get_task  # noqa: E402
from rnnzoo.machine import machine_description  # noqa: E402
from rnnzoo.optimizers import HessianFree  # noqa: E402

UNITS = 100
VARIANTS = {
    "backtracked/gradient": {"cg_warm_start": "backtracked", "evaluation_batch": "gradient"},
    "final/gradient": {"cg_warm_start": "final", "evaluation_batch": "gradient"},
    "backtracked/curvature": {"cg_warm_start": "backtracked", "evaluation_batch": "curvature"},
    "final/curvature": {"cg_warm_start": "final", "evaluation_batch": "curvature"},
}


def _load():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def addition_data(seq_len, seed, steps, batch_size=1000, test_size=2000):
    """`steps` training batches and the test set, pre-padded with zeros to 11T/10 steps."""
    task = get_task("addition_thesis", seq_len=seq_len, seed=seed)
    padded = task.max_time_steps

    def pre_pad(x, y):
        x = tf.pad(x, [[0, 0], [padded - tf.shape(x)[1], 0], [0, 0]])
        return tf.ensure_shape(x, [None, padded, 2]), y

    train = [(x.numpy(), y.numpy()) for x, y in
             task.train_dataset(batch_size).map(pre_pad).take(steps)]
    test = list(task.test_dataset(batch_size=test_size, size=test_size).map(pre_pad))
    x_test = np.concatenate([x for x, _ in test])
    y_test = np.concatenate([y for _, y in test])
    return task, train, x_test, y_test


def _model(padded, seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((padded, 2))
    return rnnzoo.Model(inputs, keras.layers.Dense(1)(keras.layers.SimpleRNN(UNITS)(inputs)))


def run_seed(seq_len, seed, steps, max_cg_iterations):
    task, train, x_test, y_test = addition_data(seq_len, seed, steps)
    weights = _model(x_test.shape[1], seed).get_weights()
    models, curves, done = {}, {name: [] for name in VARIANTS}, set()
    for name, options in VARIANTS.items():
        model = _model(x_test.shape[1], seed)
        model.set_weights(weights)
        model.compile(optimizer=HessianFree(damping=1.0, structural_damping=1.0 / 30,
                                            curvature_fraction=0.1,
                                            max_cg_iterations=max_cg_iterations, **options),
                      loss="mse")
        models[name] = model
    seconds, cpu = dict.fromkeys(VARIANTS, 0.0), dict.fromkeys(VARIANTS, 0.0)
    for step, (x, y) in enumerate(train):
        for name, model in models.items():
            if name in done:
                continue
            started, process = time.perf_counter(), time.process_time()
            logs = model.train_on_batch(x, y, return_dict=True)
            seconds[name] += time.perf_counter() - started
            cpu[name] += time.process_time() - process
            predictions = model.predict_on_batch(x_test)
            solved = task.succeeded(y_test, predictions)
            curves[name].append({
                "step": step + 1,
                "seconds": round(seconds[name], 3),
                "cpu_seconds": round(cpu[name], 3),
                "loss": float(logs["loss"]),
                "test_error": task.error_rate(y_test, predictions),
                "test_mse": float(np.mean((predictions - y_test) ** 2)),
                "cg_steps": int(logs["cg_steps"]),
                "step_size": float(logs["step_size"]),
                "damping": float(logs["damping"]),
            })
            if solved:
                done.add(name)
        print(seed, step + 1, {n: c[-1]["test_error"] for n, c in curves.items() if c},
              _load(), file=sys.stderr, flush=True)
        if len(done) == len(models):
            break
    runs = []
    for name, curve in curves.items():
        per_step = np.diff([0.0] + [p["seconds"] for p in curve])
        runs.append({
            "variant": name,
            "seed": seed,
            "solved": name in done,
            "steps": curve[-1]["step"],
            "seconds": curve[-1]["seconds"],
            "cpu_seconds": curve[-1]["cpu_seconds"],
            "first_step_seconds": round(float(per_step[0]), 3),
            "median_seconds_per_iteration": round(float(np.median(per_step[1:])), 3),
            "total_cg_steps": sum(p["cg_steps"] for p in curve),
            "final_test_error": curve[-1]["test_error"],
            "curve": curve,
        })
    return runs


def summarise(runs):
    summary = {}
    for name in VARIANTS:
        mine = [r for r in runs if r["variant"] == name]
        solved = [r for r in mine if r["solved"]]
        summary[name] = {
            "seeds": len(mine),
            "solved": len(solved),
            "median_seconds_to_solve": (
                statistics.median(r["seconds"] for r in solved) if solved else None),
            "median_cpu_seconds_to_solve": (
                statistics.median(r["cpu_seconds"] for r in solved) if solved else None),
            "median_steps_to_solve": (
                statistics.median(r["steps"] for r in solved) if solved else None),
            "median_seconds_per_iteration": statistics.median(
                r["median_seconds_per_iteration"] for r in mine),
            "median_cg_steps_per_iteration": statistics.median(
                r["total_cg_steps"] / r["steps"] for r in mine),
            # Per seed, this variant's time to solve over the defaults' (both solved).
            "seconds_to_solve_over_default": [
                round(r["seconds"] / d["seconds"], 3)
                for r in mine for d in runs
                if d["variant"] == "backtracked/gradient" and d["seed"] == r["seed"]
                and r["solved"] and d["solved"]
            ],
        }
    return summary


def plot(runs, seq_len, path):
    """Test MSE against wall time and against iterations, one colour per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = dict(zip(VARIANTS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    labelled = set()
    for run in runs:
        label = None if run["variant"] in labelled else run["variant"]
        labelled.add(run["variant"])
        for axis, key in zip(axes, ("seconds", "step")):
            axis.plot([p[key] for p in run["curve"]], [p["test_mse"] for p in run["curve"]],
                      color=colors[run["variant"]], alpha=0.7, label=label)
    for axis, name in zip(axes, ("training wall time (s), interleaved", "HF iteration")):
        axis.set_xlabel(name)
        axis.set_ylabel("test MSE")
        axis.set_yscale("log")
    axes[0].legend(title="warm start / evaluation batch", fontsize=8)
    figure.suptitle(f"Hessian-free variants, addition T = {seq_len}, {UNITS} tanh units, "
                    "batch 1000 (curvature 100); one line per seed")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq_len", type=int, default=30)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=120, help="step cap per run")
    parser.add_argument("--max_cg_iterations", type=int, default=250)
    parser.add_argument("--output", default=None, help="JSON file to write (also printed)")
    args = parser.parse_args()
    load = _load()
    runs = [run for seed in args.seeds.split(",")
            for run in run_seed(args.seq_len, int(seed), args.steps, args.max_cg_iterations)]
    result = {
        "benchmark": "hf_variants",
        "machine": machine_description(),
        "problem": f"addition_thesis, T = {args.seq_len}, batch 1000, curvature batch 100, "
                   f"{UNITS} tanh units, CG cap {args.max_cg_iterations}, step cap {args.steps}",
        "load_before": load,
        "load_after": _load(),
        "summary": summarise(runs),
        "runs": runs,
    }
    write_json(result, args.output)
    if args.output:
        plot(runs, args.seq_len, os.path.splitext(args.output)[0] + ".png")


if __name__ == "__main__":
    main()
