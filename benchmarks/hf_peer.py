"""rnnzoo's Hessian-free against the numpy peer drasmuss/hessianfree on addition, T = 30.

One benchmark run trains, on the same data from the same initial weights, a
100-unit tanh RNN with a linear output on the thesis's addition problem
(§4.4.1, T' ~ i[30, 33] pre-padded with zeros to 33 steps, as
`benchmarks/optimizers.py` does) with

- `rnnzoo`: `rnnzoo.optimizers.HessianFree` as the addition benchmark runs it
  (lambda = 1, structural damping mu = 1/30, CG cap 250, gradient batch
  1000, curvature batch 100), until solved or `--rnnzoo_steps`;
- `rnnzoo_full_curvature`: the same with curvature on the whole batch of
  1000, as the peer computes it, for `--peer_steps` iterations;
- `peer`: `hessianfree.RNNet` + `hessianfree.opt.HessianFree` (PyPI
  `hessianfree` 0.4.0, numpy < 2; it imports matplotlib) in its own venv, run as a subprocess
  (`hf_peer_run.py`) on the same arrays, for `--peer_steps` iterations.

Every iteration uses a fresh batch of 1000 sequences (the same batches for
all runs); after each, the 2000-sequence test set decides "solved" with the
project's criterion (`Task.succeeded`: fewer than 1% of the test sequences
off by more than 0.04). Seconds per HF iteration are the step's wall time
(and process CPU time) without the test evaluation; time to solve adds them
up, the first (tracing) step included. `matched` and `differs` in the JSON
say how the configurations correspond.

The peer's venv (created once, outside rnnzoo's dependencies):

    python3.11 -m venv ~/.cache/rnnzoo/hessianfree-peer
    ~/.cache/rnnzoo/hessianfree-peer/bin/pip install hessianfree "numpy<2" matplotlib
    python benchmarks/hf_peer.py --output benchmarks/results/hf_peer.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from optimizers import ADDITION_T, UNITS, _addition_model, _pre_pad  # noqa: E402
from output import write_json  # noqa: E402  (benchmarks/output.py)

from rnnzoo.data import get_task  # noqa: E402
from rnnzoo.machine import machine_description  # noqa: E402
from rnnzoo.optimizers import HessianFree  # noqa: E402

PEER_PYTHON = os.path.expanduser("~/.cache/rnnzoo/hessianfree-peer/bin/python")
PEER_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf_peer_run.py")
DAMPING = 1.0
STRUCTURAL_DAMPING = 1.0 / 30


def _load():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def addition_data(seed, steps, batch_size):
    """`(x_train, y_train, x_test, y_test, task)`: `steps` training batches and the test set."""
    task = get_task("addition_thesis", seq_len=ADDITION_T, seed=seed)
    batches = list(task.train_dataset(batch_size).map(_pre_pad).take(steps))
    x_train = np.stack([x.numpy() for x, _ in batches]).astype(np.float32)
    y_train = np.stack([y.numpy().reshape(-1) for _, y in batches]).astype(np.float32)
    test = list(task.test_dataset(batch_size=2000, size=2000).map(_pre_pad))
    x_test = np.concatenate([x for x, _ in test]).astype(np.float32)
    y_test = np.concatenate([y for _, y in test]).reshape(-1).astype(np.float32)
    return x_train, y_train, x_test, y_test, task


def peer_weights(model):
    """The Keras model's weights in the peer's flat layout (`RNNet.compute_offsets`).

    Input->hidden `(W, b)`, hidden->output `(W, b)`, then the recurrent
    `(W, b)` whose `b` is the peer's first-step input (the initial state's
    contribution), zero here as Keras's initial state is zero.
    """
    kernel, recurrent, bias = model.layers[1].get_weights()
    out_kernel, out_bias = model.layers[2].get_weights()
    parts = [kernel, bias, out_kernel, out_bias, recurrent, np.zeros_like(bias)]
    return np.concatenate([p.reshape(-1) for p in parts]).astype(np.float32)


def _point(step, seconds, cpu, logs, task, y_test, predictions):
    return {
        "step": step,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "test_error": task.error_rate(y_test, predictions),
        "test_mse": float(np.mean((predictions.reshape(-1) - y_test) ** 2)),
        **logs,
    }


def _summary(name, curve, task, y_test, predictions_of, load_before):
    solved_at = next((p for p, pred in zip(curve, predictions_of)
                      if task.succeeded(y_test, pred)), None)
    per_step = [b["seconds"] - a["seconds"] for a, b in zip([{"seconds": 0.0}] + curve, curve)]
    cpu_per_step = [b["cpu_seconds"] - a["cpu_seconds"]
                    for a, b in zip([{"cpu_seconds": 0.0}] + curve, curve)]
    steady = per_step[1:] or per_step
    return {
        "run": name,
        "steps": len(curve),
        "solved": solved_at is not None,
        "solved_at_step": solved_at and solved_at["step"],
        "seconds_to_solve": solved_at and solved_at["seconds"],
        "first_step_seconds": round(per_step[0], 3),
        "median_seconds_per_iteration": round(statistics.median(steady), 3),
        "median_cpu_seconds_per_iteration": round(
            statistics.median(cpu_per_step[1:] or cpu_per_step), 3),
        "median_cg_steps": statistics.median(p["cg_steps"] for p in curve),
        # Each CG step is one curvature product; the gradient, backtracking and line
        # search are shared out over them.
        "median_seconds_per_cg_step": round(statistics.median(
            s / p["cg_steps"] for s, p in zip(steady, curve[len(curve) - len(steady):])), 4),
        "median_cpu_seconds_per_cg_step": round(statistics.median(
            s / p["cg_steps"] for s, p in zip(cpu_per_step[1:] or cpu_per_step,
                                              curve[len(curve) - len(steady):])), 4),
        "final_test_error": curve[-1]["test_error"],
        "final_test_mse": curve[-1]["test_mse"],
        "load_before": load_before,
        "load_after": _load(),
        "curve": curve,
    }


def run_rnnzoo(name, data, seed, steps, curvature_fraction, max_cg_iterations):
    x_train, y_train, x_test, y_test, task = data
    model = _addition_model("hf", seed)
    model.compile(optimizer=HessianFree(damping=DAMPING, structural_damping=STRUCTURAL_DAMPING,
                                        curvature_fraction=curvature_fraction,
                                        max_cg_iterations=max_cg_iterations), loss="mse")
    load = _load()
    curve, predictions_of = [], []
    seconds = cpu = 0.0
    for step in range(steps):
        wall, process = time.perf_counter(), time.process_time()
        logs = model.train_on_batch(x_train[step], y_train[step][:, None], return_dict=True)
        seconds += time.perf_counter() - wall
        cpu += time.process_time() - process
        predictions = model.predict_on_batch(x_test)
        predictions_of.append(predictions)
        curve.append(_point(step + 1, seconds, cpu, {
            "loss_before_step": float(logs["loss"]), "cg_steps": int(logs["cg_steps"]),
            "step_size": float(logs["step_size"]), "damping": float(logs["damping"]),
        }, task, y_test, predictions))
        print(name, json.dumps(curve[-1]), file=sys.stderr, flush=True)
        if task.succeeded(y_test, predictions):
            break
    return _summary(name, curve, task, y_test, predictions_of, load)


def run_peer(data, initial_weights, seed, steps, max_cg_iterations):
    x_train, y_train, x_test, y_test, task = data
    config = {"units": UNITS, "damping": DAMPING / 2, "structural_damping": STRUCTURAL_DAMPING,
              "max_cg_iterations": max_cg_iterations, "seed": seed,
              "tolerance": task.tolerance, "success_error_rate": task.success_error_rate}
    with tempfile.TemporaryDirectory() as folder:
        problem, result = os.path.join(folder, "problem.npz"), os.path.join(folder, "result.npz")
        np.savez(problem, x_train=x_train[:steps], y_train=y_train[:steps], x_test=x_test,
                 y_test=y_test, initial_weights=initial_weights, config=json.dumps(config))
        load = _load()
        subprocess.run([PEER_PYTHON, PEER_RUNNER, problem, result], check=True,
                       stdout=sys.stderr)
        output = np.load(result)
        records = json.loads(str(output["records"]))
        predictions = output["predictions"]
    curve, seconds, cpu = [], 0.0, 0.0
    for step, (record, prediction) in enumerate(zip(records, predictions)):
        seconds += record.pop("seconds")
        cpu += record.pop("cpu_seconds")
        curve.append(_point(step + 1, seconds, cpu, record, task, y_test, prediction))
    summary = _summary("peer", curve, task, y_test, list(predictions), load)
    summary["config"] = config
    return summary


def plot(runs, path):
    """Test MSE and test error against training wall time, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        seconds = [p["seconds"] for p in run["curve"]]
        label = f"{run['run']} ({run['median_seconds_per_iteration']} s/iter)"
        axes[0].plot(seconds, [p["test_mse"] for p in run["curve"]], marker=".", label=label)
        axes[1].plot(seconds, [p["test_error"] for p in run["curve"]], marker=".", label=label)
    axes[0].axhline(1 / 24, color="gray", linestyle=":", linewidth=1, label="predict the mean")
    axes[1].axhline(0.01, color="gray", linestyle="--", linewidth=1, label="solved (1%)")
    for axis, name in zip(axes, ("test MSE", "test sequences off by > 0.04")):
        axis.set_xlabel("training wall time (s), test evaluation excluded")
        axis.set_ylabel(name)
        axis.set_yscale("log")
        axis.legend(fontsize=8)
    figure.suptitle(f"Hessian-free, addition T = {ADDITION_T}, {UNITS} tanh units, batch 1000: "
                    "rnnzoo vs drasmuss/hessianfree")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


MATCHED = [
    "problem and data: the same arrays (rnnzoo's addition_thesis generator, T = 30, T' ~ i[30, 33] "
    "pre-padded with zeros to 33 steps, a fresh batch of 1000 per iteration, 2000 test sequences)",
    "network: 2 inputs, 100 tanh units, a linear output read at the last step; the same initial "
    "weights (Keras's SimpleRNN/Dense initialisation copied into the peer's layout)",
    "loss scale: the peer's sum (o - t)^2 / 2 is half of Keras's MSE, so its Gauss-Newton matrix "
    "is half of ours and its lambda is set to half of ours (0.5 vs 1.0): the same damped system",
    "structural damping: mu = 1/30 scaled by lambda (the peer's StructuralDamping(1/30, "
    "optimizer=...) on the hidden layer)",
    "CG cap 250; warm start 0.95 x the previous solution; CG backtracking over iterates saved on "
    "a 1.3 geometric grid; Levenberg-Marquardt 3/4 and 1/4 thresholds; Armijo line search from "
    "step 1 shrinking by 0.8 with constant 1e-2",
    "float32 on both sides; the same 'solved' test (Task.succeeded) on both predictions",
]
DIFFERS = [
    "curvature batch: rnnzoo computes G on the first 1/10 of the batch (100, thesis §4.5); the "
    "peer has no separate curvature batch and uses all 1000 (the run rnnzoo_full_curvature "
    "matches it)",
    "structural damping matrix: rnnzoo's is the thesis's eq. 4.7 (D matched to tanh, on the "
    "hidden units' input: J_x^T diag(1 - h^2) J_x); the peer's is J_h^T J_h on the tanh outputs "
    "(its docstring: 'not exactly the same as the structural damping in Martens'), smaller by a "
    "factor 1 - h^2 per unit",
    "the peer's Gauss-Newton matrix includes the output at every step: its SquaredError's second "
    "derivative is 1 where the target is NaN (undefined) too, while its loss and gradient count "
    "the last step only; rnnzoo's model has one output",
    "CG stopping: rnnzoo uses Martens's relative-progress rule with epsilon 5e-4; the peer "
    "hard-codes 5e-6 (100x stricter, so more CG steps per iteration)",
    "warm start: the peer starts CG from 0.95 x its final CG iterate, rnnzoo from 0.95 x the "
    "backtracked step it accepted",
    "Levenberg-Marquardt: the peer's decrease factor is 0.66, rnnzoo's 2/3; rho = 1 when the "
    "quadratic predicts no change",
    "line search: the peer tries up to 60 step sizes, rnnzoo 20",
    "the peer's RNN has a trainable first-step input (initial-state bias, 100 parameters, zero at "
    "the start); Keras's SimpleRNN has a fixed zero initial state",
    "implementation: rnnzoo runs the whole iteration as one TensorFlow graph (the forward states "
    "stored once per iteration); the peer is numpy with Python loops over time steps",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=1000)
    parser.add_argument("--max_cg_iterations", type=int, default=250)
    parser.add_argument("--rnnzoo_steps", type=int, default=200,
                        help="step cap of the rnnzoo run (stops earlier once solved)")
    parser.add_argument("--peer_steps", type=int, default=6,
                        help="step cap of the peer and of rnnzoo_full_curvature")
    parser.add_argument("--output", default=None, help="JSON file to write (also printed)")
    args = parser.parse_args()
    if not os.path.exists(PEER_PYTHON):
        raise SystemExit(f"The peer's venv is missing ({PEER_PYTHON}); create it as the "
                         "module docstring shows.")

    data = addition_data(args.seed, max(args.rnnzoo_steps, args.peer_steps), args.batch_size)
    initial = peer_weights(_addition_model("hf", args.seed))
    runs = [
        run_peer(data, initial, args.seed, args.peer_steps, args.max_cg_iterations),
        run_rnnzoo("rnnzoo_full_curvature", data, args.seed, args.peer_steps, 1.0,
                   args.max_cg_iterations),
        run_rnnzoo("rnnzoo", data, args.seed, args.rnnzoo_steps, 0.1, args.max_cg_iterations),
    ]
    by_name = {run["run"]: run for run in runs}
    result = {
        "benchmark": "hf_peer",
        "machine": machine_description(),
        "peer": "drasmuss/hessianfree 0.4.0 (PyPI hessianfree, numpy 1.26) in a separate venv",
        "problem": f"addition_thesis, T = {ADDITION_T}, seed {args.seed}, batch {args.batch_size}, "
                   f"{UNITS} tanh units, CG cap {args.max_cg_iterations}",
        "step_caps": {"rnnzoo": args.rnnzoo_steps, "peer": args.peer_steps,
                      "rnnzoo_full_curvature": args.peer_steps},
        "matched": MATCHED,
        "differs": DIFFERS,
        "peer_over_rnnzoo_seconds_per_iteration": round(
            by_name["peer"]["median_seconds_per_iteration"]
            / by_name["rnnzoo"]["median_seconds_per_iteration"], 2),
        "peer_over_rnnzoo_full_curvature_seconds_per_iteration": round(
            by_name["peer"]["median_seconds_per_iteration"]
            / by_name["rnnzoo_full_curvature"]["median_seconds_per_iteration"], 2),
        "peer_over_rnnzoo_full_curvature_seconds_per_cg_step": round(
            by_name["peer"]["median_seconds_per_cg_step"]
            / by_name["rnnzoo_full_curvature"]["median_seconds_per_cg_step"], 2),
        "peer_over_rnnzoo_full_curvature_cpu_seconds_per_cg_step": round(
            by_name["peer"]["median_cpu_seconds_per_cg_step"]
            / by_name["rnnzoo_full_curvature"]["median_cpu_seconds_per_cg_step"], 2),
        "peer_over_rnnzoo_cpu_seconds_per_iteration": round(
            by_name["peer"]["median_cpu_seconds_per_iteration"]
            / by_name["rnnzoo"]["median_cpu_seconds_per_iteration"], 2),
        "runs": runs,
    }
    write_json(result, args.output)
    if args.output:
        plot(runs, os.path.splitext(args.output)[0] + ".png")


if __name__ == "__main__":
    main()
