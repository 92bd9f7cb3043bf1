"""Costs of rnnzoo's optimizers against their anchors, and time to solve the addition problem.

1. `gauss_newton_operator`: time of one `product` call of
   `gauss_newton_operator` (the forward pass run once, every call reusing
   its states, as in HF's CG loop; and with structural damping), divided by
   the time of the fastest Keras gradient of the same loss on the same
   batch: through Keras's default loop, the unrolled loop, each also
   XLA-compiled. A 100-unit tanh RNN (Keras `SimpleRNN`, output at every
   step), T = 100, batch 100 and 1000. Per-call time = (11 calls - 1 call) /
   10, the calls chained as CG chains them. Also one product including its
   forward pass (what each CG step cost before the operator) and the
   operator under XLA. Target (issue 13): <= 1.0x, <= 1.1x with structural
   damping.
2. `hf_step_xla`: seconds per Hessian-free iteration (one `fit` step: gradient,
   CG, backtracking, line search) on the addition problem at T = 30 (100
   tanh units, batch 1000, curvature batch 100, structural damping, CG run
   to a fixed 50 steps), compiled with XLA (`jit_compile=True`) and without,
   over the same batches: whether XLA helps the whole step on this machine.
3. `nag_step`: one `rnnzoo.optimizers.NAG` update with a momentum schedule
   divided by one Keras `SGD(nesterov=True)` update (the anchor), on the
   gradients of the T = 100 model; also the whole training step
   (forward, backward, update). Target <= 1.05.
4. `addition_t30`: wall time and steps until a 100-unit tanh RNN solves the
   thesis's addition problem (§4.4.1, T = 30: fewer than 1% of 2000 test
   sequences off by more than 0.04) with HF (structural damping, gradient
   batch 1000, curvature batch 100), NAG (ESN initialisation and the §7.4.2
   schedules, batch 100) and Adam (batch 100), each within a wall-time budget
   on the same machine, for each seed; the test error is checked every HF
   iteration and every 500 NAG/Adam steps. Sequences of length
   T' ~ i[30, 33] are pre-padded with zero inputs to 33 steps so that every
   batch has one shape. `sequences` counts gradient-batch sequences.

Timings are medians of interleaved repetitions (other jobs share the CPU).

    python benchmarks/optimizers.py --seeds 0,1,2 --output benchmarks/results/optimizers.json
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from output import write_json  # noqa: E402  (benchmarks/output.py)

import rnnzoo  # noqa: E402
from rnnzoo.data import get_task  # noqa: E402
from rnnzoo.initializers import Sparse, SpectralRadius  # noqa: E402
from rnnzoo.machine import machine_description  # noqa: E402
from rnnzoo.optimizers import NAG, HessianFree, gauss_newton_operator, schedules  # noqa: E402

UNITS = 100
FEATURES = 10


def _sequence_model(seq_len, unroll=False):
    inputs = keras.Input((seq_len, FEATURES))
    hidden = keras.layers.SimpleRNN(UNITS, return_sequences=True, unroll=unroll)(inputs)
    return keras.Model(inputs, keras.layers.Dense(FEATURES)(hidden))


def _median_times(functions, repeats):
    """Median seconds per call of each function, measured in interleaved rounds."""
    for function in functions.values():  # trace and warm up
        for _ in range(2):
            tf.nest.map_structure(lambda t: t.numpy(), function())
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), function())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _chained_products(model, x, vector, calls, structural_damping=0.0, jit_compile=False):
    """A function building the operator once and chaining `calls` products, as CG does."""

    @tf.function(jit_compile=jit_compile)
    def run():
        product = gauss_newton_operator(model, "mse", x, structural_damping)

        def body(i, vectors):
            out = product(vectors)
            norm = tf.sqrt(tf.add_n([tf.reduce_sum(o * o) for o in out]))
            return i + 1, [o / norm for o in out]

        return tf.while_loop(lambda i, _: i < calls, body, (0, vector))[1]

    return run


def gauss_newton_costs(seq_len, batch_size, repeats, chained=11):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch_size, seq_len, FEATURES)), tf.float32)
    y = tf.constant(rng.normal(size=(batch_size, seq_len, FEATURES)), tf.float32)
    model = _sequence_model(seq_len)
    unrolled = _sequence_model(seq_len, unroll=True)
    unrolled.set_weights(model.get_weights())
    vector = [tf.constant(rng.normal(size=v.shape), tf.float32) for v in model.trainable_variables]
    loss = keras.losses.MeanSquaredError()

    def gradient_of(net, jit_compile=False):
        @tf.function(jit_compile=jit_compile)
        def gradient():
            with tf.GradientTape() as tape:
                value = loss(y, net(x))
            return tape.gradient(value, net.trainable_variables)

        return gradient

    gradients = {
        "gradient_keras_loop": gradient_of(model),
        "gradient_unrolled": gradient_of(unrolled),
        "gradient_keras_loop_xla": gradient_of(model, jit_compile=True),
        "gradient_unrolled_xla": gradient_of(unrolled, jit_compile=True),
    }
    variants = {"product": {}, "product_structural_damping": {"structural_damping": 0.3},
                "product_xla": {"jit_compile": True}}
    functions = dict(gradients)
    for name, options in variants.items():
        for calls in (1, chained):
            functions[f"{name}_x{calls}"] = _chained_products(model, x, vector, calls, **options)
    times = _median_times(functions, repeats)
    fastest = min(gradients, key=times.get)
    anchor = times[fastest]
    per_call = {
        name: (times[f"{name}_x{chained}"] - times[f"{name}_x1"]) / (chained - 1)
        for name in variants
    }
    return {
        "seq_len": seq_len,
        "batch_size": batch_size,
        "seconds": {k: round(v, 5) for k, v in times.items()},
        "fastest_gradient": fastest,
        "product_over_fastest_gradient": round(per_call["product"] / anchor, 3),
        "structurally_damped_product_over_fastest_gradient": round(
            per_call["product_structural_damping"] / anchor, 3
        ),
        "xla_product_over_fastest_gradient": round(per_call["product_xla"] / anchor, 3),
        "product_with_its_forward_pass_over_fastest_gradient": round(
            times["product_x1"] / anchor, 3
        ),
        "target": "product <= 1.0x, structurally damped <= 1.1x",
        "met": per_call["product"] <= anchor and per_call["product_structural_damping"] <= 1.1 * anchor,
    }


def hf_step_xla(steps):
    """Median seconds per HF iteration with and without XLA, interleaved over the same batches."""
    task = get_task("addition_thesis", seq_len=ADDITION_T, seed=0)
    batches = list(task.train_dataset(1000).map(_pre_pad).take(steps + 1))
    models = {}
    for jit in (False, True):
        model = _addition_model("hf", seed=0)
        model.compile(
            optimizer=HessianFree(damping=1.0, structural_damping=1.0 / 30, max_cg_iterations=50,
                                  cg_tolerance=1e-12),
            loss="mse", jit_compile=jit,
        )
        started = time.perf_counter()
        model.train_on_batch(*batches[0])
        models[jit] = (model, time.perf_counter() - started)
    times = {False: [], True: []}
    for x, y in batches[1:]:
        for jit, (model, _) in models.items():
            started = time.perf_counter()
            logs = model.train_on_batch(x, y, return_dict=True)
            times[jit].append(time.perf_counter() - started)
            assert logs["cg_steps"] == 50, logs
    no_xla, xla = (statistics.median(times[jit]) for jit in (False, True))
    return {
        "steps": steps,
        "cg_steps_per_iteration": 50,
        "first_step_seconds": {"graph": round(models[False][1], 2), "xla": round(models[True][1], 2)},
        "seconds_per_iteration": {"graph": round(no_xla, 4), "xla": round(xla, 4)},
        "xla_over_graph": round(xla / no_xla, 3),
    }


def nag_costs(seq_len, batch_size, repeats):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(batch_size, seq_len, FEATURES)), tf.float32)
    y = tf.constant(rng.normal(size=(batch_size, seq_len, FEATURES)), tf.float32)
    loss = keras.losses.MeanSquaredError()
    optimizers = {
        "keras_sgd_nesterov": keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
        "rnnzoo_nag": NAG(0.01, momentum=schedules.NesterovMomentum(0.99)),
    }
    updates, steps = {}, {}
    for name, optimizer in optimizers.items():
        model = _sequence_model(seq_len)
        optimizer.build(model.trainable_variables)
        gradients = [tf.constant(rng.normal(size=v.shape) * 1e-3, tf.float32)
                     for v in model.trainable_variables]

        def update(optimizer=optimizer, model=model, gradients=gradients):
            optimizer.apply(gradients, model.trainable_variables)
            return optimizer.iterations

        def step(optimizer=optimizer, model=model):
            with tf.GradientTape() as tape:
                value = loss(y, model(x))
            optimizer.apply(tape.gradient(value, model.trainable_variables),
                            model.trainable_variables)
            return value

        updates[name] = tf.function(update)
        steps[name] = tf.function(step)
    update_times = _median_times(updates, repeats * 20)
    step_times = _median_times(steps, repeats)
    return {
        "seq_len": seq_len,
        "batch_size": batch_size,
        "update_seconds": {k: round(v, 6) for k, v in update_times.items()},
        "train_step_seconds": {k: round(v, 5) for k, v in step_times.items()},
        "nag_update_over_sgd_nesterov_update": round(
            update_times["rnnzoo_nag"] / update_times["keras_sgd_nesterov"], 3
        ),
        "nag_train_step_over_sgd_nesterov_train_step": round(
            step_times["rnnzoo_nag"] / step_times["keras_sgd_nesterov"], 3
        ),
    }


# ----------------------------------------------------------------- addition
ADDITION_T = 30
PADDED_T = (11 * ADDITION_T) // 10


def _pre_pad(x, y):
    pad = PADDED_T - tf.shape(x)[1]
    x = tf.pad(x, [[0, 0], [pad, 0], [0, 0]])
    return tf.ensure_shape(x, [None, PADDED_T, 2]), y


def _addition_model(method, seed):
    keras.utils.set_random_seed(seed)
    if method == "nag":  # thesis §7.4.1: ESN-style sparse init, spectral radius 1.2
        rnn = keras.layers.SimpleRNN(
            UNITS,
            kernel_initializer=Sparse(15, scale=0.02, seed=seed),
            recurrent_initializer=SpectralRadius(Sparse(15, seed=seed + 1), radius=1.2),
        )
    else:
        rnn = keras.layers.SimpleRNN(UNITS)
    inputs = keras.Input((PADDED_T, 2))
    return rnnzoo.Model(inputs, keras.layers.Dense(1)(rnn(inputs)))


def _addition_optimizer(method):
    if method == "hf":
        # Thesis §4.3-4.4: lambda starts at 1 (0.1 T for per-step targets),
        # structural damping mu = 1/30 for these problems, curvature on 1/10.
        return HessianFree(damping=1.0, structural_damping=1.0 / 30, curvature_fraction=0.1)
    if method == "nag":  # thesis §7.4.2 schedules
        learning_rate = keras.optimizers.schedules.PiecewiseConstantDecay(
            [1500, 3000, 6000, 30000], [3e-5, 3e-4, 3e-3, 1e-3, 1e-4]
        )
        momentum = schedules.PiecewiseConstantMomentum([4000], [0.9, 0.98])
        return NAG(learning_rate=learning_rate, momentum=momentum)
    return keras.optimizers.Adam(1e-3)


class _SolveMonitor(keras.callbacks.Callback):
    """Stops training once the test error is below 1% or the time budget is spent."""

    def __init__(self, task, x_test, y_test, budget, started):
        super().__init__()
        self.task, self.x_test, self.y_test = task, x_test, y_test
        self.budget, self.started = budget, started
        self.curve = []
        self.solved_at = None

    def on_epoch_end(self, epoch, logs=None):
        predictions = self.model.predict(self.x_test, verbose=0)
        error = self.task.error_rate(self.y_test, predictions)
        elapsed = time.perf_counter() - self.started
        steps = int(self.model.optimizer.iterations.numpy())
        self.curve.append({"steps": steps, "seconds": round(elapsed, 1),
                           "test_error": error, "loss": float(logs["loss"])})
        if self.task.succeeded(self.y_test, predictions):
            self.solved_at = self.curve[-1]
            self.model.stop_training = True
        elif elapsed > self.budget:
            self.model.stop_training = True


def addition_run(method, budget, seed=0):
    task = get_task("addition_thesis", seq_len=ADDITION_T, seed=seed)
    test = list(task.test_dataset(batch_size=2000, size=2000).map(_pre_pad))  # one batch per T'
    x_test = np.concatenate([x for x, _ in test])
    y_test = np.concatenate([y for _, y in test])
    batch_size, steps_per_check = {"hf": (1000, 1), "nag": (100, 500), "adam": (100, 500)}[method]
    train = task.train_dataset(batch_size).map(_pre_pad)
    model = _addition_model(method, seed)
    model.compile(optimizer=_addition_optimizer(method), loss="mse")
    started = time.perf_counter()
    monitor = _SolveMonitor(task, x_test, y_test, budget, started)
    model.fit(train, steps_per_epoch=steps_per_check, epochs=10**6, callbacks=[monitor],
              shuffle=False, verbose=0)
    last = monitor.curve[-1]
    return {
        "method": method,
        "seed": seed,
        "batch_size": batch_size,
        "solved": monitor.solved_at is not None,
        "seconds": (monitor.solved_at or last)["seconds"],
        "steps": (monitor.solved_at or last)["steps"],
        "sequences": (monitor.solved_at or last)["steps"] * batch_size,
        "final_test_error": last["test_error"],
        "test_sequences": len(y_test),
        "budget_seconds": budget,
        "curve": monitor.curve[:: max(1, len(monitor.curve) // 40)] + monitor.curve[-1:],
    }


def _median_or_none(values):
    return statistics.median(values) if values else None


def plot_addition(runs, path):
    """Test error against wall time for each method of `addition_t30`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    colors = {"hf": "tab:blue", "nag": "tab:orange", "adam": "tab:green"}
    labelled = set()
    for run in runs:
        curve = run["curve"]
        label = None if run["method"] in labelled else f"{run['method']} (batch {run['batch_size']})"
        labelled.add(run["method"])
        axis.plot([p["seconds"] for p in curve], [p["test_error"] for p in curve],
                  marker=".", color=colors[run["method"]], alpha=0.8, label=label)
    axis.axhline(0.01, color="gray", linestyle="--", linewidth=1, label="solved (1%)")
    axis.set_xlabel("wall time (s)")
    axis.set_ylabel("test sequences off by > 0.04")
    axis.set_yscale("log")
    axis.set_title(f"Addition problem, T = {ADDITION_T}, 100 tanh units")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=100, help="batch of the NAG costs")
    parser.add_argument("--product_batch_sizes", default="100,1000",
                        help="comma-separated batch sizes of the Gauss-Newton product costs")
    parser.add_argument("--addition_budget", type=float, default=900.0,
                        help="wall-time budget in seconds per addition-problem run")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds of the addition runs")
    parser.add_argument("--parts", default="gauss_newton,hf_step_xla,nag,addition",
                        help="comma-separated subset of gauss_newton, hf_step_xla, nag, addition")
    parser.add_argument("--output", default=None, help="JSON file to write (also printed)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    result = {
        "benchmark": "optimizers",
        "machine": machine_description(),
    }
    if "gauss_newton" in parts:
        result["gauss_newton_operator"] = [
            gauss_newton_costs(100, int(batch), args.repeats)
            for batch in args.product_batch_sizes.split(",")
        ]
    if "hf_step_xla" in parts:
        result["hf_step_xla"] = hf_step_xla(args.repeats)
    if "nag" in parts:
        result["nag_step"] = nag_costs(100, args.batch_size, args.repeats)
    if "addition" in parts:
        seeds = [int(seed) for seed in args.seeds.split(",")]
        runs = [
            addition_run(method, args.addition_budget, seed)
            for seed in seeds
            for method in ("hf", "nag", "adam")
        ]
        result["addition_t30"] = runs
        result["addition_t30_summary"] = {
            method: {
                "seeds": len(seeds),
                "solved": sum(r["solved"] for r in runs if r["method"] == method),
                "median_seconds_solved": _median_or_none(
                    [r["seconds"] for r in runs if r["method"] == method and r["solved"]]
                ),
                "median_steps_solved": _median_or_none(
                    [r["steps"] for r in runs if r["method"] == method and r["solved"]]
                ),
            }
            for method in ("hf", "nag", "adam")
        }
        if args.output:
            plot_addition(result["addition_t30"], os.path.splitext(args.output)[0] + "_addition.png")
    write_json(result, args.output)


if __name__ == "__main__":
    main()
